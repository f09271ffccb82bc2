"""Fault injection for the AWS tests: S3 answering 500 / 503 / SlowDown.

Two ways in, for two kinds of test:

* :class:`BotocoreFaults` hooks ``before-send`` on one client in this process. Returning
  a response there skips the network, and botocore's retry handler sees it exactly as it
  would see S3's answer, so the store's retries are exercised for real.
* :class:`FaultProxy` is a small HTTP proxy in front of moto for the worker running as a
  subprocess (where no hook can reach). It forwards everything, answers chosen PUTs with
  an error instead, and records the order in which objects were written.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse, HTTPHeaders

#: S3 error bodies for the statuses S3 uses when it wants the client to back off.
ERRORS: dict[int, tuple[str, str]] = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
    # What S3 answers a GetObject for a missing key when s3:ListBucket does not apply, and any
    # call IAM denies: moto enforces no IAM, so tests inject it at the HTTP layer.
    403: ("AccessDenied", "Access Denied"),
}


def error_body(status: int) -> bytes:
    code, message = ERRORS[status]
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>FAULT</RequestId></Error>"
    ).encode()


class _Raw:
    """Just enough of urllib3's response for botocore to read an injected body."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *_args: Any, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body


@dataclass
class BotocoreFaults:
    """Answer the first ``failures`` matching requests of a client with ``status``.

    ``failures=None`` fails every matching request (retries exhausted). ``attempts``
    counts every matching request botocore tried to send, injected or not.
    """

    status: int = 503
    failures: int | None = 2
    operation: str = "PutObject"
    key_pattern: str = ".*"
    attempts: int = 0
    injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, client: Any) -> BotocoreFaults:
        client.meta.events.register_first(f"before-send.s3.{self.operation}", self._before_send)
        return self

    def _before_send(self, request: Any, **_kwargs: Any) -> AWSResponse | None:
        if not re.search(self.key_pattern, urlsplit(request.url).path):
            return None
        with self._lock:
            self.attempts += 1
            if self.failures is not None and self.injected >= self.failures:
                return None
            self.injected += 1
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/xml"
        return AWSResponse(request.url, self.status, headers, _Raw(error_body(self.status)))


@dataclass
class PutRecord:
    path: str
    status: int


class FaultProxy:
    """HTTP proxy to moto: injected errors on PUTs whose path matches, a PUT log, a call log.

    See :meth:`fail_puts` for the injection rule.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fail_pattern: str | None = None
        self.fail_statuses: list[int] = []
        self.fail_forever = False
        self.injected = 0
        self._tries: dict[str, int] = {}
        self.puts: list[PutRecord] = []
        #: (X-Amz-Target, JSON body) of every JSON-protocol call, e.g. Step Functions callbacks.
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_puts(self, pattern: str, *statuses: int, forever: bool = False) -> None:
        """Answer the first PUTs of each matching object with ``statuses`` in order, then pass them.

        ``forever=True``: every matching PUT gets ``statuses[0]`` (retries never succeed).
        """
        with self._lock:
            self.fail_pattern, self.fail_statuses, self.fail_forever = pattern, list(statuses), forever
            self.injected = 0
            self._tries.clear()

    def reset(self) -> None:
        """Forget records and stop injecting (between tests)."""
        with self._lock:
            self.fail_pattern, self.fail_statuses, self.injected = None, [], 0
            self.puts.clear()
            self.calls.clear()

    def targets(self, suffix: str) -> list[dict[str, Any]]:
        """Bodies of the recorded calls whose X-Amz-Target ends with ``suffix`` (e.g. ``SendTaskFailure``)."""
        return [body for target, body in self.calls if target.endswith(suffix)]

    def successful_puts(self, pattern: str = ".*") -> list[str]:
        """Paths of PUTs that moto accepted, in the order they completed."""
        return [p.path for p in self.puts if p.status == 200 and re.search(pattern, p.path)]

    def _fault_for(self, method: str, path: str) -> int | None:
        """The status to inject for this request, or ``None`` to forward it."""
        with self._lock:
            if method != "PUT" or self.fail_pattern is None or not re.search(self.fail_pattern, path):
                return None
            tries = self._tries.get(path, 0)
            self._tries[path] = tries + 1
            if self.fail_forever:
                status = self.fail_statuses[0]
            elif tries < len(self.fail_statuses):
                status = self.fail_statuses[tries]
            else:
                return None
            self.injected += 1
            return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _forward(self) -> None:
                body = self._body()
                target = self.headers.get("X-Amz-Target")
                if target:
                    with proxy._lock:
                        proxy.calls.append((target, json.loads(body or b"{}")))
                status = proxy._fault_for(self.command, self.path)
                if status is not None:
                    self._reply(status, [("Content-Type", "application/xml")], error_body(status))
                    with proxy._lock:
                        proxy.puts.append(PutRecord(self.path, status))
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                headers["Content-Length"] = str(len(body))
                connection = http.client.HTTPConnection(*proxy._upstream, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    self._reply(response.status, response.getheaders(), data)
                finally:
                    connection.close()
                if self.command == "PUT":
                    with proxy._lock:
                        proxy.puts.append(PutRecord(self.path, response.status))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 - http.server names

        return Handler
