"""A local Overpass server (127.0.0.1, a thread) with scripted answers, and OSM fixtures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from ccapi_monitor.storage import LocalStore
from tests.infrastructure.osmdata import OsmData, java_scenario


@dataclass
class Reply:
    """One scripted HTTP answer; ``body`` dicts are sent as JSON."""

    status: int = 200
    body: dict[str, Any] | bytes = b""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    query: str


class OverpassStub:
    """Serves queued replies in order, then ``default``; records requests and concurrency."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default = Reply(500, b"no reply scripted")
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/interpreter"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.replies.popleft() if self.replies else self.default

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                request = Request(self.path, dict(self.headers), form.get("data", [""])[0])
                reply = stub._next(request)
                try:
                    time.sleep(reply.delay_s)
                    body = json.dumps(reply.body).encode() if isinstance(reply.body, dict) else reply.body
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    stub._done()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: requests are recorded on the stub."""

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def overpass_server() -> Iterator[OverpassStub]:
    stub = OverpassStub()
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def dead_endpoint() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/interpreter"


@pytest.fixture
def cache(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "cache")


@pytest.fixture(scope="session")
def scenario() -> OsmData:
    return java_scenario()


@pytest.fixture(scope="session")
def scenario_pbf(tmp_path_factory: pytest.TempPathFactory, scenario: OsmData) -> Path:
    return scenario.write_pbf(tmp_path_factory.mktemp("osm") / "java-test.osm.pbf")
