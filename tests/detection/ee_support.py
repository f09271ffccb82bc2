"""Shared Earth Engine test support: offline client, fake Earth Engine server, test keys.

``offline_ee`` initializes the real ``earthengine-api`` with the algorithm list and
discovery document the package ships for its own tests; its HTTP transport raises at
once, so a test that forgets a stub fails fast instead of reaching the network.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ee
import google.oauth2.credentials
import httplib2

EE_TESTS_DIR = Path(ee.__file__).parent / "tests"
DISCOVERY_DOCUMENT = EE_TESTS_DIR / "cloud_api_discovery_document.json"
ALGORITHMS_FILE = EE_TESTS_DIR / "algorithms.json"


class NetworkForbiddenError(AssertionError):
    """Raised by the offline transport: a test tried to send a request."""


class _OfflineTransport:
    """An httplib2-style transport answering only what ``ee.Initialize`` asks for, from the
    discovery document and algorithm list ``earthengine-api`` ships for its own tests."""

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any) -> Any:
        if "$discovery" in uri:
            return _json_response(json.loads(DISCOVERY_DOCUMENT.read_text(encoding="utf-8")))
        if uri.split("?")[0].endswith("/algorithms"):
            return _json_response(json.loads(ALGORITHMS_FILE.read_text(encoding="utf-8")))
        raise NetworkForbiddenError(f"offline Earth Engine test tried to reach {uri}")


def _json_response(payload: Any) -> tuple[httplib2.Response, bytes]:
    return httplib2.Response({"status": 200, "content-type": "application/json"}), json.dumps(
        payload
    ).encode()


@cache
def algorithm_names() -> frozenset[str]:
    document = json.loads(ALGORITHMS_FILE.read_text(encoding="utf-8"))
    return frozenset(entry["name"].removeprefix("algorithms/") for entry in document["algorithms"])


@contextmanager
def offline_ee() -> Iterator[None]:
    """Initialize ``ee`` through its public API with a transport that serves the shipped
    discovery document and algorithm list and refuses every other request."""
    ee.Reset()
    credentials = google.oauth2.credentials.Credentials(token="offline")
    ee.Initialize(credentials, project="ccapi-offline-test", http_transport=_OfflineTransport())
    try:
        yield
    finally:
        ee.Reset()


# --------------------------------------------------------------------------------------
# A fake Earth Engine on 127.0.0.1: discovery, OAuth token, algorithms, value:compute.
# The real client (googleapiclient + google-auth + requests) talks to it over HTTP.
# --------------------------------------------------------------------------------------

#: A scripted answer: HTTP status and JSON body, or ("sleep", seconds) then a 200.
Reply = tuple[int, dict[str, Any]]


def ee_error(status: int, message: str, reason: str = "FAILED_PRECONDITION") -> Reply:
    """An error body in the Google API format (googleapiclient reads ``error.message``)."""
    return status, {"error": {"code": status, "message": message, "status": reason}}


def stats_value(
    *, unobserved_ha: float = 100.0, none_ha: float = 800.0, clearing_ha: float = 12.5, built_ha: float = 3.25
) -> dict[str, Any]:
    groups = [
        {"class": -1, "sum": unobserved_ha},
        {"class": 0, "sum": none_ha},
        {"class": 1, "sum": clearing_ha},
        {"class": 2, "sum": built_ha},
    ]
    return {"groups": groups, "scenes": {"baseline": 70, "persistence": 12, "current": 6}}


def polygons_value(count: int = 3) -> dict[str, Any]:
    features = []
    for i in range(count):
        lon, lat = 106.8 + i * 0.01, -6.1
        square = [[lon, lat], [lon + 0.001, lat], [lon + 0.001, lat + 0.001], [lon, lat + 0.001], [lon, lat]]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [square]},
                "properties": {"class": 1 + i % 2, "area_ha": 0.5 * (i + 1), "centroid": [lon + 0.0005, lat]},
            }
        )
    return {"count": count + 2, "features": {"type": "FeatureCollection", "features": features}}


def default_answer(body: str) -> Reply:
    """A plausible successful answer for a statistics, polygons or preflight expression."""
    if '"scenes"' in body:
        return 200, {"result": stats_value()}
    if '"features"' in body:
        return 200, {"result": polygons_value()}
    return 200, {"result": {"s2": 1, "cloud_score": 1}}


def default_pixels(body: str) -> tuple[int, bytes]:
    """A 160 x 160 JPEG of bare-soil brown, the size a report chip asks for."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (160, 160), (150, 120, 90)).save(buffer, format="JPEG")
    return 200, buffer.getvalue()


class FakeEarthEngine:
    """Threaded HTTP server imitating the Earth Engine REST API and Google's token endpoint."""

    def __init__(self) -> None:
        self.compute: Callable[[str], Reply] = default_answer
        #: ``image:computePixels`` answers: status and raw image bytes, or an error reply.
        self.pixels: Callable[[str], tuple[int, bytes] | Reply] = default_pixels
        self.pixel_bodies: list[str] = []
        self.token_reply: Reply = (
            200,
            {"access_token": "test-token", "expires_in": 3600, "token_type": "Bearer"},
        )
        self.hits: Counter[str] = Counter()
        #: Discovery requests to refuse with 503 before serving the document.
        self.discovery_failures = 0
        self.bodies: list[str] = []
        #: Paths of the compute requests: the Cloud project the client sends travels in them.
        self.compute_paths: list[str] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if "$discovery" in self.path:
                    fake.count("discovery")
                    if fake.hits["discovery"] <= fake.discovery_failures:
                        self._send(*ee_error(503, "The service is currently unavailable.", "UNAVAILABLE"))
                    else:
                        self._send(200, fake.discovery())
                elif self.path.split("?")[0].endswith("/algorithms"):
                    fake.count("algorithms")
                    self._send(200, json.loads(ALGORITHMS_FILE.read_text(encoding="utf-8")))
                else:
                    self._send(*ee_error(404, f"no route {self.path}", "NOT_FOUND"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                if self.path.startswith("/token"):
                    fake.count("token")
                    self._send(*fake.token_reply)
                    return
                if "image:computePixels" in self.path:
                    with fake._lock:
                        fake.hits["pixels"] += 1
                        fake.pixel_bodies.append(body)
                    status, payload = fake.pixels(body)
                    if isinstance(payload, bytes):
                        self.send_response(status)
                        self.send_header("Content-Type", "image/jpeg")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                    else:
                        self._send(status, payload)
                    return
                if "value:compute" not in self.path:
                    self._send(*ee_error(404, f"no route {self.path}", "NOT_FOUND"))
                    return
                with fake._lock:
                    fake.hits["compute"] += 1
                    fake.bodies.append(body)
                    fake.compute_paths.append(self.path)
                    fake.in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                try:
                    if self.headers.get("Authorization") != "Bearer test-token":
                        self._send(
                            *ee_error(
                                401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
                            )
                        )
                        return
                    self._send(*fake.compute(body))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (deadline): nothing to answer
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def count(self, what: str) -> None:
        with self._lock:
            self.hits[what] += 1

    def discovery(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(DISCOVERY_DOCUMENT.read_text(encoding="utf-8"))
        document["rootUrl"] = document["baseUrl"] = self.url + "/"
        return document

    def script(self, replies: list[Reply], then: Callable[[str], Reply] = default_answer) -> None:
        """Answer compute requests with ``replies`` in order, then with ``then``."""
        queue = list(replies)
        lock = threading.Lock()

        def answer(body: str) -> Reply:
            with lock:
                reply = queue.pop(0) if queue else None
            return reply if reply is not None else then(body)

        self.compute = answer

    def start(self) -> FakeEarthEngine:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def slow_answer(seconds: float) -> Callable[[str], Reply]:
    def answer(body: str) -> Reply:
        time.sleep(seconds)
        return default_answer(body)

    return answer


@cache
def _private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account_key(token_uri: str, project: str = "ccapi-test") -> dict[str, Any]:
    """A syntactically real service-account key whose token endpoint is the fake server."""
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0123456789abcdef",
        "private_key": _private_key_pem(),
        "client_email": f"monitor@{project}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
