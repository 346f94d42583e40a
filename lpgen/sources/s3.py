"""A trail bucket: ``s3://bucket[/prefix]`` in CloudTrail's delivery layout.

Listing walks only the prefixes the window, ``--account`` and ``--region`` need:
``AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/``, one listing per day and
region (never the whole bucket when a window is given). Events of global services land in
us-east-1, so it is always listed when regions are filtered. Objects are read whole, one
at a time, in the worker processes, and never written to disk unless a cache directory is
given (:mod:`lpgen.sources.cache`); the ledger knows them by key and ETag.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lpgen.aws import error_message
from lpgen.filters import Window
from lpgen.model import Problem
from lpgen.sources.base import AwsSource, Blob, Listing, delivery_day, is_digest
from lpgen.sources.cache import ObjectCache

_ACCOUNT = re.compile(r"^\d{12}$")
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
GLOBAL_REGION = "us-east-1"


class S3Source(AwsSource):
    """CloudTrail log files in an S3 bucket. Picklable: each process makes its own client."""

    service = "s3"

    def __init__(self, url: str, *, window: Window = Window(), accounts: tuple[str, ...] = (),
                 regions: tuple[str, ...] = (), client_options: dict[str, Any] | None = None,
                 client_factory: Callable[[str], Any] | None = None, cache: str | os.PathLike[str] | None = None,
                 ) -> None:
        if not url.startswith("s3://"):
            raise ValueError(f"{url} is not an s3:// URL")
        super().__init__(client_options=client_options, client_factory=client_factory)
        self.label = url
        self.bucket, _, prefix = url[5:].partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.window, self.accounts, self.regions = window, tuple(accounts), tuple(regions)
        self.cache = ObjectCache(cache) if cache is not None else None

    # -- listing --------------------------------------------------------------

    def _folders(self, prefix: str) -> list[str]:
        """The "sub-folders" directly under ``prefix``."""
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            out += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return out

    def _objects(self, prefix: str) -> Iterator[dict]:
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def account_roots(self, folder: str = "CloudTrail") -> list[tuple[str, str]]:
        """(account, prefix of its CloudTrail/ or CloudTrail-Digest/ folder) for account and organisation trails."""
        base = f"{self.prefix}AWSLogs/"
        roots = []
        for name in self._folders(base):
            if _ACCOUNT.match(name):
                roots.append((name, f"{base}{name}/{folder}/"))
            elif _ORG.match(name):
                roots += [(a, f"{base}{name}/{a}/{folder}/") for a in self._folders(f"{base}{name}/")
                          if _ACCOUNT.match(a)]
        return [(a, p) for a, p in roots if not self.accounts or a in self.accounts]

    def day_prefixes(self, folder: str = "CloudTrail") -> list[str]:
        """Every ``.../CloudTrail/<region>/YYYY/MM/DD/`` (or region root) prefix to list."""
        days = _days(self.window)
        prefixes = []
        for _, root in self.account_roots(folder):
            regions = self._folders(root)
            if self.regions:
                wanted = set(self.regions) | {GLOBAL_REGION}
                regions = [r for r in regions if r in wanted]
            for region in regions:
                if days is None:
                    prefixes.append(f"{root}{region}/")
                else:
                    prefixes += [f"{root}{region}/{d:%Y/%m/%d}/" for d in days]
        return prefixes

    def list(self) -> Listing:
        try:
            prefixes = self.day_prefixes()
            blobs, digests = [], 0
            for prefix in prefixes:
                for obj in self._objects(prefix):
                    key = obj["Key"]
                    if is_digest(key):
                        digests += 1
                        continue
                    if key.endswith("/"):
                        continue
                    blobs.append(Blob(key=f"s3://{self.bucket}/{key}", size=obj.get("Size"),
                                      version=obj.get("ETag", "").strip('"') or None, day=delivery_day(key)))
        except (BotoCoreError, ClientError) as exc:  # one clear problem, no traceback
            return Listing(blobs=(), problems=(Problem(path=self.label, reason=f"cannot list: {error_message(exc)}"),))
        if not prefixes:
            problem = Problem(path=self.label, reason="no AWSLogs/<account>/CloudTrail/ folder found"
                              + (f" for accounts {', '.join(self.accounts)}" if self.accounts else ""))
            return Listing(blobs=(), problems=(problem,))
        return Listing(blobs=tuple(sorted(blobs, key=lambda b: b.key)), digests=digests)

    def digest_blobs(self) -> Listing:
        """The digest files of the same days, accounts and regions (``CloudTrail-Digest/``)."""
        try:
            blobs = [Blob(key=f"s3://{self.bucket}/{obj['Key']}", size=obj.get("Size"),
                          version=obj.get("ETag", "").strip('"') or None)
                     for prefix in self.day_prefixes("CloudTrail-Digest") for obj in self._objects(prefix)
                     if is_digest(obj["Key"])]
        except (BotoCoreError, ClientError) as exc:
            return Listing(blobs=(), problems=(Problem(path=self.label,
                                                       reason=f"cannot list digests: {error_message(exc)}"),))
        return Listing(blobs=tuple(sorted(blobs, key=lambda b: b.key)))

    def read(self, blob: Blob) -> bytes:
        """The object's bytes: from the cache when it holds this ETag, else from S3 (then cached)."""
        key = blob.key[len(f"s3://{self.bucket}/"):]
        if self.cache is not None:
            cached = self.cache.get(self.bucket, key, blob.version, blob.size)
            if cached is not None:
                return cached
        data = self._get(key, blob)[0]
        if self.cache is not None:
            self.cache.put(self.bucket, key, blob.version, data)
        return data

    def read_digest(self, blob: Blob) -> tuple[bytes, dict[str, str]]:
        """The object's bytes and its user metadata (``x-amz-meta-*``, where a digest's signature is);
        never from the cache, which keeps no metadata."""
        return self._get(blob.key[len(f"s3://{self.bucket}/"):], blob)

    def _get(self, key: str, blob: Blob) -> tuple[bytes, dict[str, str]]:
        try:
            extra = {"IfMatch": f'"{blob.version}"'} if blob.version else {}
            response = self.client().get_object(Bucket=self.bucket, Key=key, **extra)
            return response["Body"].read(), dict(response.get("Metadata") or {})
        except (BotoCoreError, ClientError) as exc:
            raise OSError(error_message(exc)) from None

def _days(window: Window) -> list[date] | None:
    """The delivery days a window needs (a day's slack each side), or None to list everything."""
    if window.since is None:
        return None
    first = date.fromisoformat(window.since[:10]) - timedelta(days=1)
    last = date.fromisoformat(window.until[:10]) + timedelta(days=1) if window.until else date.today() + timedelta(days=1)
    if (last - first).days > 3660:
        return None
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]

