"""Lazy access to lpgen's data files (never read at import time)."""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any


@functools.cache
def load(name: str) -> Any:
    """The parsed content of ``lpgen/data/<name>`` (``.json`` or ``.json.gz``), read once."""
    data = (resources.files("lpgen") / "data" / name).read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return json.loads(data)


def values(name: str, table: str) -> Any:
    """The ``values`` of one documented table in a data file (each table carries a note)."""
    return load(name)[table]["values"]
