"""Polite HTTP: robots.txt honoured, one request per second per host, timeouts, bounded retries.

Every listing page and robots.txt goes through :class:`PoliteFetcher`. Requests to one
host are serialised: the next one starts at least ``min_interval_s`` (or the host's
``Crawl-delay``, if longer) after the previous one *finished*, retries included, so the
host never sees more than one request per interval however many threads ask.
robots.txt follows RFC 9309: a 4xx answer allows everything, a 5xx or an unreachable
host disallows everything.
"""

from __future__ import annotations

import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ccapi_monitor import __version__
from ccapi_monitor.market.errors import MarketError, RobotsDisallowedError

USER_AGENT: Final = (
    f"ccapi-monitor/{__version__} (land-market figures; reads schema.org data; honours robots.txt)"
)
#: The product token robots.txt groups are matched against.
ROBOTS_AGENT: Final = "ccapi-monitor"
MAX_BODY_BYTES: Final = 5 * 1024 * 1024
RETRY_STATUSES: Final = (429, 500, 502, 503, 504)


class HostRetry(Retry):
    """urllib3 retries the first failure at once; a polite client waits at least the host interval."""

    min_backoff_s: float = 1.0

    def new(self, **kwargs: Any) -> HostRetry:
        retry = super().new(**kwargs)
        retry.min_backoff_s = self.min_backoff_s
        return retry

    def get_backoff_time(self) -> float:
        return max(self.min_backoff_s, super().get_backoff_time())


def redact_url(url: str) -> str:
    """The URL without user:password and without its query (signed URLs carry tokens there)."""
    parts = urlsplit(url)
    if not parts.scheme or parts.scheme == "file":
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "…" if parts.query else "", ""))


@dataclass(frozen=True)
class Fetched:
    """A finished GET: status, type and the whole body (at most ``MAX_BODY_BYTES``)."""

    url: str
    status: int
    content_type: str
    encoding: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")


class _Host:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready_at = 0.0
        self.robots: urllib.robotparser.RobotFileParser | None = None


class PoliteFetcher:
    """GET with an identifying User-Agent, robots.txt, a per-host interval and bounded retries."""

    def __init__(
        self,
        *,
        user_agent: str = USER_AGENT,
        min_interval_s: float = 1.0,
        timeout_s: tuple[float, float] = (5.0, 20.0),
        retries: int = 3,
        backoff_s: float = 1.0,
        headers: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.user_agent = user_agent
        self.min_interval_s = min_interval_s
        self.timeout_s = timeout_s
        self._clock, self._sleep = clock, sleep
        retry = HostRetry(
            total=retries,
            backoff_factor=backoff_s,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        retry.min_backoff_s = min_interval_s
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": user_agent, **(headers or {})})
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        #: Requests sent per host (robots.txt included, retries not): the benchmark's count.
        self.requests_sent: dict[str, int] = {}

    def _host(self, origin: str) -> _Host:
        with self._hosts_lock:
            return self._hosts.setdefault(origin, _Host())

    def _send(self, host: _Host, origin: str, url: str) -> Fetched:
        """One GET under the host's slot; the caller holds ``host.lock``."""
        wait = host.ready_at - self._clock()
        if wait > 0:
            self._sleep(wait)
        try:
            self.requests_sent[origin] = self.requests_sent.get(origin, 0) + 1
            with self.session.get(url, timeout=self.timeout_s, stream=True) as response:
                body = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise MarketError(f"{redact_url(url)}: response larger than {MAX_BODY_BYTES} bytes")
                return Fetched(
                    url=url,
                    status=response.status_code,
                    content_type=response.headers.get("Content-Type", ""),
                    encoding=response.encoding or "utf-8",
                    body=bytes(body),
                )
        except requests.RequestException as exc:
            raise MarketError(f"{redact_url(url)}: {type(exc).__name__}") from None
        finally:
            delay = self.min_interval_s
            if host.robots is not None:
                delay = max(delay, float(host.robots.crawl_delay(ROBOTS_AGENT) or 0))
            host.ready_at = self._clock() + delay

    def _robots(self, host: _Host, origin: str) -> urllib.robotparser.RobotFileParser:
        if host.robots is None:
            parser = urllib.robotparser.RobotFileParser(f"{origin}/robots.txt")
            try:
                response = self._send(host, origin, f"{origin}/robots.txt")
                status = response.status
            except MarketError:
                status = 599  # unreachable: RFC 9309 says assume complete disallow
            if status >= 500:
                parser.parse(["User-agent: *", "Disallow: /"])
            elif status >= 400:
                parser.parse([])
            else:
                parser.parse(response.text.splitlines())
            host.robots = parser
        return host.robots

    def allowed(self, url: str) -> bool:
        """Whether robots.txt of the URL's host lets us fetch it (fetches robots.txt once per host)."""
        origin = _origin(url)
        host = self._host(origin)
        with host.lock:
            return self._robots(host, origin).can_fetch(ROBOTS_AGENT, url)

    def get(self, url: str, *, robots: bool = True) -> Fetched:
        """The response to a GET; raises :class:`MarketError` on network failure or a non-2xx answer."""
        origin = _origin(url)
        host = self._host(origin)
        with host.lock:
            if robots and not self._robots(host, origin).can_fetch(ROBOTS_AGENT, url):
                raise RobotsDisallowedError(f"{redact_url(url)}: disallowed by robots.txt")
            response = self._send(host, origin, url)
        if not 200 <= response.status < 300:
            raise MarketError(f"{redact_url(url)}: HTTP {response.status}")
        return response

    def close(self) -> None:
        self.session.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MarketError(f"not an http(s) URL: {redact_url(url)}")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
