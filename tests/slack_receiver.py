"""A local HTTP server that plays Slack's incoming webhook: it records every POSTed body."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class SlackReceiver:
    """What the fake webhook received; ``status`` is what it answers with next."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    status: int = 200


@contextmanager
def slack_receiver() -> Iterator[SlackReceiver]:
    """Serve on 127.0.0.1 (OS-chosen port) for the duration of the block."""
    receiver = SlackReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            receiver.bodies.append(json.loads(self.rfile.read(length)))
            receiver.content_types.append(self.headers.get("Content-Type", ""))
            self.send_response(receiver.status)
            self.end_headers()
            self.wfile.write(b"ok" if receiver.status == 200 else b"invalid_payload")

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the per-request stderr line."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXXX"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
