"""A fault-injecting HTTP proxy for the tests: it stands between lpgen's AWS clients and moto's server
and answers chosen requests with a fault instead of forwarding them.

Faults, as AWS gives them: ``throttle`` (S3 ``503 SlowDown``, or ``400 ThrottlingException`` /
``Throttling`` for JSON and query services), ``5xx`` (``500 InternalError``), ``timeout`` (no answer
before the client's read timeout), ``reset`` (the connection closed without an answer) and
``expired`` (``400 ExpiredToken``: the credentials expired mid-run). Every request is logged.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("throttle", "5xx", "timeout", "reset", "expired")


@dataclass
class Fault:
    """Answer requests whose method and path match with ``kind``, ``times`` times (None: always),
    after letting ``after`` matching requests through."""

    kind: str
    path: str = ""  # a substring of the request path ('' matches every request)
    method: str | None = None
    target: str = ""  # a substring of X-Amz-Target or the query Action (JSON and query services)
    times: int | None = 1
    after: int = 0
    seen: int = 0
    injected: int = 0

    def matches(self, method: str, path: str, target: str) -> bool:
        return (self.method in (None, method) and self.path in path and self.target in target)


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, what happened
    stall: float = 3.0  # seconds a ``timeout`` fault keeps the client waiting

    def decide(self, method: str, path: str, target: str) -> str | None:
        for fault in self.faults:
            if not fault.matches(method, path, target):
                continue
            fault.seen += 1
            if fault.seen > fault.after and (fault.times is None or fault.injected < fault.times):
                fault.injected += 1
                return fault.kind
        return None

    def requests_for(self, path: str) -> list[str]:
        """What happened to each request whose path contains ``path``, in order."""
        return [what for _, p, what in self.log if path in p]


def _error(kind: str, json_service: bool) -> tuple[int, bytes, str]:
    if json_service:
        code = {"throttle": "ThrottlingException", "5xx": "InternalFailure", "expired": "ExpiredTokenException"}[kind]
        body = f'{{"__type": "{code}", "message": "injected {kind}"}}'.encode()
        return (500 if kind == "5xx" else 400), body, "application/x-amz-json-1.1"
    code, status = {"throttle": ("SlowDown", 503), "5xx": ("InternalError", 500),
                     "expired": ("ExpiredToken", 400)}[kind]
    body = f"<Error><Code>{code}</Code><Message>injected {kind}</Message><RequestId>0</RequestId></Error>".encode()
    return status, body, "application/xml"


def _query_error(kind: str) -> tuple[int, bytes, str]:
    """IAM and the other query-protocol services wrap errors in an ErrorResponse."""
    code, status = {"throttle": ("Throttling", 400), "5xx": ("ServiceUnavailable", 503),
                    "expired": ("ExpiredToken", 403)}[kind]
    body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected {kind}</Message>"
            "</Error><RequestId>0</RequestId></ErrorResponse>").encode()
    return status, body, "text/xml"


def _handler(proxy: FaultProxy):
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            target = self.headers.get("X-Amz-Target", "")
            query = self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
            if query:
                target = body.decode(errors="replace")
            kind = proxy.decide(self.command, self.path, target)
            proxy.log.append((self.command, self.path, kind or "forwarded"))
            if kind == "reset":
                self.close_connection = True
                self.connection.close()
                return
            if kind == "timeout":
                time.sleep(proxy.stall)
                self.close_connection = True
                return
            if kind is not None:
                status, data, content_type = _query_error(kind) if query else _error(kind, bool(
                    self.headers.get("X-Amz-Target")))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            finally:
                connection.close()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

    return Handler


@contextlib.contextmanager
def fault_proxy(upstream: str):
    """A :class:`FaultProxy` in front of ``upstream`` on a free loopback port; yields (proxy, its URL)."""
    proxy = FaultProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
