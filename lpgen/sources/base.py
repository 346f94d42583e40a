"""The source protocol: where CloudTrail log files come from.

A :class:`BlobSource` lists inputs (files, S3 objects) without reading them,
then reads one input's bytes on demand, in whichever worker process mines it.
Decoding the bytes is shared by every adapter (:mod:`lpgen.sources.formats`);
normalisation happens once, downstream.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lpgen.model import Problem


class PartialRead(OSError):
    """A read that failed after part of the input came (pages of an API): ``data`` holds that part.

    Mining keeps the events in it, and the ledger marks the input as partial, so the next run reads
    it again (duplicates dropped by eventID).
    """

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        self.data = data


@dataclass(frozen=True, slots=True, kw_only=True)
class Blob:
    """One input, identified well enough for the ledger to know it again."""

    key: str  # absolute path, s3://bucket/key, stdin:<sha256>
    size: int | None = None
    version: str | None = None  # modification time (ns) of a file, ETag of an object
    day: str | None = None  # delivery day from the S3 layout or file name, for pruning by window


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """What listing a source found: inputs, digests skipped, and problems."""

    blobs: tuple[Blob, ...]
    digests: int = 0
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()  # what the user should know about this source (not problems)


class BlobSource(ABC):
    """A place holding CloudTrail log files. Implementations must be picklable."""

    #: How the user named it, for messages.
    label: str

    @abstractmethod
    def list(self) -> Listing:
        """Every input, in a stable order, without reading contents. Never raises for bad entries."""

    @abstractmethod
    def read(self, blob: Blob) -> bytes:
        """The raw bytes of one input (possibly gzipped). Raises OSError when unreadable."""

    def digest_blobs(self) -> Listing:
        """The CloudTrail digest files beside the logs (``CloudTrail-Digest/``); none for sources without them."""
        return Listing(blobs=())

    def read_digest(self, blob: Blob) -> tuple[bytes, dict[str, str] | None]:
        """A digest file's bytes and its object metadata, where the signature lives (None: a local copy has none)."""
        return self.read(blob), None


_LAYOUT_DAY = re.compile(r"/CloudTrail/[a-z0-9-]+/(\d{4})/(\d\d)/(\d\d)/")
_NAME_DAY = re.compile(r"_CloudTrail_[a-z0-9-]+_(\d{4})(\d\d)(\d\d)T\d{4}Z_")


def delivery_day(location: str) -> str | None:
    """The day in a delivery path (``.../CloudTrail/<region>/YYYY/MM/DD/...``) or file name."""
    m = _LAYOUT_DAY.search(location) or _NAME_DAY.search(location)
    return f"{m[1]}-{m[2]}-{m[3]}" if m else None


def is_digest(location: str) -> bool:
    """CloudTrail digest files (integrity validation), not log files."""
    return "/CloudTrail-Digest/" in location or "_CloudTrail-Digest_" in location


class AggregateSource(ABC):
    """A place whose engine aggregates the events itself (Athena, CloudTrail Lake): mined by one
    query into the store, with no inputs to list and read."""

    #: How the user named it, for messages.
    label: str

    @abstractmethod
    def mine_into(self, store: Any, window: Any, principals: tuple[str, ...], report: Any) -> None:
        """Run the query and write what it returns into ``store``, accounting for it in ``report``."""


class AwsSource(BlobSource):
    """A source behind an AWS API, made picklable for the worker processes.

    The client is made lazily, once per process, through :func:`lpgen.aws.client_factory`
    (``client_options``: profile, endpoint URL; ``region``), or through ``client_factory``
    when given (tests hand in a stubbed or instrumented client this way). Neither travels to
    a worker: a worker makes its own client from the options.
    """

    #: The boto3 service name.
    service: str

    def __init__(self, *, region: str | None = None, client_options: dict[str, Any] | None = None,
                 client_factory: Callable[[str], Any] | None = None) -> None:
        self.region = region
        self.client_options = dict(client_options or {})
        self._factory = client_factory
        self._client: Any = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_factory": None, "_client": None}

    def client(self) -> Any:
        if self._client is None:
            factory = self._factory
            if factory is None:
                from lpgen.aws import client_factory

                factory = client_factory(region=self.region, **self.client_options)
            self._client = factory(self.service)
        return self._client
