"""A real HTTP server on 127.0.0.1 for the market tests, with routes and injected faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import shapely

from ccapi_monitor.regions import Region


@dataclass
class Hit:
    path: str
    at: float
    done: float
    headers: dict[str, str]


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    #: Answer 503 this many times before the real answer (retries under test).
    fail_first: int = 0


@dataclass
class Site:
    """Routes by path; every request is recorded with its arrival time (server clock)."""

    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def page(self, path: str, body: str | bytes, **kwargs: object) -> str:
        self.routes[path] = Route(body=body.encode() if isinstance(body, str) else body, **kwargs)  # type: ignore[arg-type]
        return self.url + path

    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]


@contextmanager
def serve_site() -> Iterator[Site]:
    """A real HTTP server on 127.0.0.1 (a port of its own: a host of its own to the fetcher)."""
    holder: dict[str, Site] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = holder["site"]
            arrived = time.monotonic()
            if state.delay_s:
                time.sleep(state.delay_s)
            route = state.routes.get(self.path.partition("?")[0])
            if route is None:
                status, body, ctype = 404, b"not found", "text/plain"
            elif route.fail_first > 0:
                route.fail_first -= 1
                status, body, ctype = 503, b"busy", "text/plain"
            else:
                status, body, ctype = route.status, route.body, route.content_type
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with state.lock:
                state.hits.append(Hit(self.path, arrived, time.monotonic(), dict(self.headers.items())))

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["site"] = Site(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["site"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    with serve_site() as served:
        yield served


def make_region(name: str, west: float, south: float, tier: int = 2) -> Region:
    """A 0.2° square region, like the packaged ones."""
    return Region(
        name=name,
        province="Test",
        focus="test",
        priority=1,
        tier=tier,
        geometry=shapely.box(west, south, west + 0.2, south + 0.2),
    )


@pytest.fixture
def regions() -> list[Region]:
    return [make_region("north_plot", 106.8, -6.2, tier=1), make_region("south_plot", 110.0, -7.9, tier=4)]
