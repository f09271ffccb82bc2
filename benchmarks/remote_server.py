"""A local HTTP server for COGs with injected latency and a bandwidth cap (benchmarks only).

Serves one directory on 127.0.0.1 like an object store: ``HEAD``, ``GET`` with a single
``Range`` or several (``multipart/byteranges``), keep-alive. Every response waits one
round trip before its first byte; bytes then leave through one token bucket shared by
all connections, so concurrency cannot beat the cap. The server stops by itself after
``lifetime_s`` even if its owner never calls :meth:`RemoteServer.stop`.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 64 * 1024
_RANGE = re.compile(r"(\d*)-(\d*)")


@dataclass
class TokenBucket:
    """``rate`` bytes per second for everyone together (no burst beyond one chunk)."""

    rate: float
    _next: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + size / self.rate
            wait = self._next - now
        if wait > 0:
            time.sleep(wait)


@dataclass
class Traffic:
    requests: int = 0
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, requests: int, sent: int) -> None:
        with self.lock:
            self.requests += requests
            self.bytes_sent += sent


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as object stores do
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # the benchmark prints JSON only
        return

    def _file(self) -> Path | None:
        path = (self.server.root / self.path.split("?")[0].lstrip("/")).resolve()
        if self.server.root not in path.parents or not path.is_file():
            self._respond_empty(404)
            return None
        return path

    def _respond_empty(self, status: int) -> None:
        time.sleep(self.server.round_trip_s)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.traffic.add(1, 0)

    def _send(self, payload: bytes) -> None:
        for start in range(0, len(payload), CHUNK):
            piece = payload[start : start + CHUNK]
            self.server.bucket.take(len(piece))
            self.wfile.write(piece)
        self.server.traffic.add(0, len(payload))

    def do_HEAD(self) -> None:
        path = self._file()
        if path is None:
            return
        time.sleep(self.server.round_trip_s)
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.server.traffic.add(1, 0)

    def do_GET(self) -> None:
        path = self._file()
        if path is None:
            return
        size = path.stat().st_size
        ranges = []
        header = self.headers.get("Range", "")
        if header.startswith("bytes="):
            for part in header[6:].split(","):
                match = _RANGE.fullmatch(part.strip())
                if match is None:
                    continue
                first, last = match.groups()
                if first == "":  # suffix range
                    start, end = max(0, size - int(last)), size - 1
                else:
                    start, end = int(first), min(size - 1, int(last) if last else size - 1)
                if start <= end:
                    ranges.append((start, end))
        time.sleep(self.server.round_trip_s)
        self.server.traffic.add(1, 0)
        with path.open("rb") as fh:
            if not ranges:
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self._send(fh.read())
                return
            if len(ranges) == 1:
                start, end = ranges[0]
                fh.seek(start)
                body = fh.read(end - start + 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self._send(body)
                return
            boundary = "ccapi-bench-boundary"
            parts = []
            for start, end in ranges:
                fh.seek(start)
                head = (
                    f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n"
                ).encode()
                parts.append(head + fh.read(end - start + 1) + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            self.send_response(206)
            self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._send(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    round_trip_s: float
    bucket: TokenBucket
    traffic: Traffic


class RemoteServer:
    """Serve ``root`` on 127.0.0.1 (a free port) until :meth:`stop` or ``lifetime_s``."""

    def __init__(self, root: Path, *, round_trip_s: float, bytes_per_s: float, lifetime_s: float) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.root = root.resolve()
        self._server.round_trip_s = round_trip_s
        self._server.bucket = TokenBucket(bytes_per_s)
        self._server.traffic = Traffic()
        self._thread = threading.Thread(target=self._server.serve_forever, name="remote-cogs", daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def traffic(self) -> Traffic:
        return self._server.traffic

    def reset(self) -> None:
        self._server.traffic = Traffic()

    def start(self) -> RemoteServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> RemoteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
