"""A local copy of S3 objects (``lpgen mine --cache DIR``), known by key and ETag.

An object ``s3://bucket/a/b.json.gz`` with ETag ``e`` is kept as ``DIR/bucket/a/b.json.gz#e``:
the bucket's layout, so the cache is itself an archive ``lpgen mine DIR/bucket`` can read.
A new ETag means a new object: the entry of the old one is replaced. Files are written under
a hidden temporary name and renamed into place, so a run killed mid-download leaves no
partial entry (a later run removes its hidden temporary file); an entry whose size differs
from the object's is read again from S3.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

_SEP = "#"
#: A temporary file this old was left by a killed run (a live download of one object takes seconds).
STALE_PART_SECONDS = 3600


class ObjectCache:
    """Objects by bucket, key and ETag under one directory. Picklable (it is a path)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, bucket: str, key: str, etag: str) -> Path:
        """Where an object lives: its key as a path, or a hash for keys no file system can hold."""
        parts = key.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") or len(p.encode()) > 200 for p in parts) \
                or "\x00" in key or _SEP in key:
            # "../x", "a//b", hidden names, over-long names: never a path outside the cache.
            parts = ["_keys", hashlib.sha256(key.encode()).hexdigest()]
        return self.root.joinpath(bucket, *parts[:-1], f"{parts[-1]}{_SEP}{_safe(etag)}")

    def get(self, bucket: str, key: str, etag: str | None, size: int | None) -> bytes | None:
        """The cached bytes of this version of the object, or None."""
        if not etag:
            return None
        try:
            data = self.path(bucket, key, etag).read_bytes()
        except OSError:
            return None
        return data if size is None or len(data) == size else None

    def put(self, bucket: str, key: str, etag: str | None, data: bytes) -> None:
        """Keep ``data`` as this version of the object, atomically; drop older versions."""
        if not etag:
            return  # without an ETag a later run could not tell the entry is current
        target = self.path(bucket, key, etag)
        stem = target.name.rsplit(_SEP, 1)[0]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            try:
                with os.fdopen(handle, "wb") as f:
                    f.write(data)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            for old in target.parent.glob(f"{_glob_escape(stem)}{_SEP}*"):
                if old != target:
                    old.unlink(missing_ok=True)
            for part in target.parent.glob(f".{_glob_escape(stem)}{_SEP}*.part"):
                if part.stat().st_mtime < time.time() - STALE_PART_SECONDS:  # left by a killed run
                    part.unlink(missing_ok=True)
        except OSError:
            # A full or read-only disk costs the cache, never the run: the bytes are mined anyway.
            return


def _safe(etag: str) -> str:
    """ETags are hex, with ``-N`` for multipart uploads; anything else is hashed."""
    return etag if etag.replace("-", "").isalnum() and len(etag) <= 80 else hashlib.sha256(etag.encode()).hexdigest()


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
