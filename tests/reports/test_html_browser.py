"""report.html in headless Chromium: no request leaves the page, no console error, every row present.

Chromium is driven through its DevTools protocol over ``--remote-debugging-pipe``
(NUL-separated JSON on file descriptors 3 and 4), so the test needs no websocket
library and opens no port. Debian's ``chromium`` package is installed by ``make test``
where missing; without it this module is skipped with a message saying so.
Screenshots go to ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccapi_monitor.reports.html import render_html
from ccapi_monitor.reports.maps import LAND_FILL, java_land
from tests.reports.test_html import build_summary, sample_chips
from tests.reports.test_maps import close_to, pixel_at

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_S = 30.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent: install Debian's chromium package (make test does) "
        "to run the browser test of report.html",
    ),
]


class Chromium:
    """Headless Chromium with a minimal DevTools-protocol client over a pipe."""

    def __init__(self, user_data_dir: Path) -> None:
        cmd_read, self._cmd_write = os.pipe()
        self._out_read, out_write = os.pipe()

        def wire_fds() -> None:  # runs in the child: the pipe ends become fds 3 and 4
            to_browser = fcntl.fcntl(cmd_read, fcntl.F_DUPFD, 10)
            from_browser = fcntl.fcntl(out_write, fcntl.F_DUPFD, 10)
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.log_path = user_data_dir / "chromium.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(CHROMIUM),
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    f"--user-data-dir={user_data_dir}",
                    "--remote-debugging-pipe",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=wire_fds,
                close_fds=False,
            )
        os.close(cmd_read)
        os.close(out_write)
        self._next_id = 0
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buffer = b""
        while chunk := os.read(self._out_read, 65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        """Send one command and return its result; events arriving meanwhile are kept in ``events``."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event
            self.events.append(self._messages.get(timeout=max(0.1, deadline - time.monotonic())))

    def drain(self, seconds: float) -> None:
        """Collect events for a moment (late console messages, lazy image decoding)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(self._messages.get(timeout=left))
            except queue.Empty:
                return

    def open_page(self, url: str, width: int = 1280, height: int = 900, mobile: bool = False) -> str:
        """A new tab with network, console and log events on; returns its session id after load."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = str(self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=session)
        self.resize(session, width, height, mobile)
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        self.drain(0.5)
        return session

    def resize(self, session: str, width: int, height: int, mobile: bool) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session=session)

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str, path: Path, full_page: bool) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
            params |= {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            }
        data = self.send("Page.captureScreenshot", params, session=session)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, queue.Empty, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._cmd_write)


def problems(events: list[dict[str, Any]], session: str, page_url: str) -> dict[str, list[str]]:
    """One tab's requests other than the page itself and data: URIs, and its console errors or exceptions."""
    found: dict[str, list[str]] = {"requests": [], "errors": []}
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith("data:") and url != page_url:
                found["requests"].append(url)
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found["errors"].append(json.dumps(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            found["errors"].append(json.dumps(params.get("exceptionDetails")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            found["errors"].append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
    return found


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chromium
    except BaseException:
        print(chromium.log_path.read_text(errors="replace")[-3000:])
        raise
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    summary, geometries = build_summary()
    page = tmp_path_factory.mktemp("report") / "report.html"
    html = render_html(summary, region_geometries=geometries, chips=sample_chips(summary))
    page.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report.html").write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    return [r.name for r in summary.regions], page.as_uri()


def test_report_in_chromium(browser: Chromium, report: tuple[list[str], str]):
    names, url = report
    session = browser.open_page(url)
    found = problems(browser.events, session, url)
    assert found["requests"] == [], "the page must not request anything"
    assert found["errors"] == [], "the page must not log console errors"
    # The page itself was seen loading, so the event stream of this tab is live.
    assert any(
        e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session
        for e in browser.events
    )

    rows = browser.evaluate(
        session, "[...document.querySelectorAll('#ranking tbody tr')].map(r => r.dataset.region)"
    )
    assert sorted(rows) == sorted(names)
    sections = browser.evaluate(session, "document.querySelectorAll('section.region').length")
    assert sections == len(names)
    broken = browser.evaluate(
        session, "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"
    )
    assert broken == []
    banner = browser.evaluate(
        session, "document.getElementById('demo-banner').getBoundingClientRect().height"
    )
    assert banner > 0
    chips = browser.evaluate(
        session, "[...document.querySelectorAll('.site img')].filter(i => i.naturalWidth > 0).length"
    )
    assert chips >= 2, "the chips of the top sites are shown"
    browser.screenshot(session, ARTIFACTS / "report.png", full_page=True)
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_overview_map_draws_java_on_screen(browser: Chromium, report: tuple[list[str], str]):
    """What the browser paints: land colour on Java away from any region, white sea north of it."""
    _, url = report
    session = browser.open_page(url)
    rect = browser.evaluate(
        session,
        "(() => { const i = document.querySelector('#overview img'); i.scrollIntoView();"
        " const r = i.getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY,"
        " width: r.width, height: r.height}; })()",
    )
    shot = ARTIFACTS / "overview.png"
    data = browser.send(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**rect, "scale": 1}},
        session=session,
    )["data"]
    shot.write_bytes(base64.b64decode(data))
    bounds = _frame_bounds()
    png = shot.read_bytes()
    assert close_to(pixel_at(png, 110.0, -7.45, bounds=bounds), LAND_FILL, 16)  # central Java, no region
    assert close_to(pixel_at(png, 111.0, -8.6, bounds=bounds), "#ffffff", 8)  # Indian Ocean
    assert close_to(pixel_at(png, 109.0, -6.0, bounds=bounds), "#ffffff", 8)  # Java Sea


def _frame_bounds() -> tuple[float, float, float, float]:
    """The overview's lon/lat frame: Java's land and the regions together (as render_overview_map frames it)."""
    from shapely.geometry import shape
    from shapely.ops import unary_union

    from ccapi_monitor.regions import load_regions

    shapes = [shape(f["geometry"]) for f in java_land()["features"]] + [r.geometry for r in load_regions()]
    bounds: tuple[float, float, float, float] = unary_union(shapes).bounds
    return bounds


def test_report_fits_a_phone(browser: Chromium, report: tuple[list[str], str]):
    _, url = report
    session = browser.open_page(url, width=390, height=844, mobile=True)
    overflow = browser.evaluate(session, "document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a phone screen"
    # The table scrolls inside its own box instead, and the map never exceeds the screen.
    widest_img = browser.evaluate(
        session, "Math.max(...[...document.images].map(i => i.getBoundingClientRect().right))"
    )
    assert widest_img <= 390
    browser.screenshot(session, ARTIFACTS / "report-phone.png", full_page=False)
    assert problems(browser.events, session, url) == {"requests": [], "errors": []}


def test_harness_catches_requests_and_console_errors(browser: Chromium, tmp_path: Path):
    """The checks above are only worth something if they would see a leak: prove they do."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text(
        "<!DOCTYPE html><html><body><img src='http://127.0.0.1:9/tile.png'>"
        "<script>console.error('boom')</script></body></html>",
        encoding="utf-8",
    )
    session = browser.open_page(leaky.as_uri())
    found = problems(browser.events, session, leaky.as_uri())
    assert "http://127.0.0.1:9/tile.png" in found["requests"]
    assert any("boom" in error for error in found["errors"])
