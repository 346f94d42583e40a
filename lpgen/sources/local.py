"""Local inputs: a file, a directory tree of any depth, or standard input."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from lpgen.filters import Window
from lpgen.model import Problem
from lpgen.sources.base import Blob, BlobSource, Listing, delivery_day, is_digest


class LocalSource(BlobSource):
    """A file or a directory tree; every regular file in it is an input."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.label = str(path)
        self.root = Path(path).absolute()

    def _walk(self) -> tuple[list[Path], list[Problem]]:
        if self.root.is_file():
            return [self.root], []
        if not self.root.exists():
            return [], [Problem(path=self.label, reason="no such file or directory")]
        found: list[Path] = []
        problems: list[Problem] = []

        def unreadable(error: OSError) -> None:
            problems.append(Problem(path=str(error.filename or self.label), reason=f"cannot list: {error.strerror}"))

        for folder, dirs, files in os.walk(self.root, onerror=unreadable):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(Path(folder) / name for name in sorted(files) if not name.startswith("."))
        return found, problems

    def list(self) -> Listing:
        return self._listing(*self._walk(), digests=False)

    def digest_blobs(self) -> Listing:
        return self._listing(*self._walk(), digests=True)

    def _listing(self, paths: list[Path], problems: list[Problem], *, digests: bool) -> Listing:
        blobs, skipped = [], 0
        for path in paths:
            text = path.as_posix()
            if is_digest(text) != digests:
                skipped += not digests
                continue
            try:
                st = path.stat()
            except OSError as exc:
                problems.append(Problem(path=text, reason=f"cannot read: {exc.strerror}"))
                continue
            blobs.append(Blob(key=text, size=st.st_size, version=str(st.st_mtime_ns), day=delivery_day(text)))
        return Listing(blobs=tuple(blobs), digests=skipped, problems=tuple(problems))

    def read(self, blob: Blob) -> bytes:
        with open(blob.key, "rb") as f:
            return f.read()


class StdinSource(BlobSource):
    """Standard input (``-``), read once; known to the ledger by its content hash."""

    label = "-"

    def __init__(self, data: bytes | None = None) -> None:
        self._data = data

    def _bytes(self) -> bytes:
        if self._data is None:
            self._data = sys.stdin.buffer.read()
        return self._data

    def list(self) -> Listing:
        data = self._bytes()
        return Listing(blobs=(Blob(key=f"stdin:{hashlib.sha256(data).hexdigest()}", size=len(data)),))

    def read(self, blob: Blob) -> bytes:
        return self._bytes()


def open_source(spec: str, *, window: Window = Window(), accounts: tuple[str, ...] = (), regions: tuple[str, ...] = (),
                client_options: dict | None = None, cache: str | os.PathLike[str] | None = None,
                query: dict | None = None) -> BlobSource:
    """The source a command-line argument names.

    A path, ``-`` for stdin, ``s3://bucket[/prefix]`` (filtered by ``accounts`` and ``regions``,
    kept under ``cache`` when given), ``cloudtrail:lookup[:ATTRIBUTE=VALUE]`` or
    ``logs:LOG_GROUP[:STREAM_PREFIX]`` (both in the first of ``regions``), or a query source
    (``athena:DATABASE.TABLE``, ``lake:EVENT_DATA_STORE``, with ``query`` holding its options).
    """
    if spec == "-":
        return StdinSource()
    api_region = regions[0] if regions else None
    if spec.startswith(("athena:", "lake:")):
        from lpgen.sources.query import QuerySource

        return QuerySource(spec, accounts=accounts, regions=regions, client_options=client_options, **(query or {}))
    if spec.startswith("s3://"):
        from lpgen.sources.s3 import S3Source

        return S3Source(spec, window=window, accounts=accounts, regions=regions, client_options=client_options,
                        cache=cache)
    if spec == "cloudtrail:lookup" or spec.startswith("cloudtrail:lookup:"):
        from lpgen.sources.lookup import LookupSource

        return LookupSource(spec, window=window, region=api_region, client_options=client_options)
    if spec.startswith("logs:"):
        from lpgen.sources.logs import LogsSource

        return LogsSource(spec, window=window, region=api_region, client_options=client_options)
    return LocalSource(spec)
