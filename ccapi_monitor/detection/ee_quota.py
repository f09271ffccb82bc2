"""One adaptive limiter for every Earth Engine request the process makes, and the retry policy.

Earth Engine allows 40 concurrent requests per Cloud project and answers 429 beyond
that; the project may be shared with other jobs, so the share this process may use is
not known exactly. The limiter starts at the configured concurrency (default 40) and
adapts like TCP congestion control (AIMD): each wave of 429s shrinks the window (by
``decrease_factor``, or to the number of requests the server was running for us when it
refused, whichever is lower, at most halving it), each success adds ``1/window``, so the
window regrows by about one slot per round of successful requests.

Waiters are served retries first, then largest expected work first: a heavy-tailed
long request that starts last is what stretches the batch past its lower bound. When a
burst arrives at an idle limiter (a run's regions all starting), no slot is granted
until arrivals pause for ``gather_s``, so the burst queues and is ordered instead of the
first arrivals taking every slot whatever their size (statistics requests cost more
than polygons ones).

Retries are bounded per failure kind and counted, so a region that cannot be measured
fails with the Earth Engine message instead of reporting zeros.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

import structlog

from ccapi_monitor.errors import AbortedError, CredentialsError, DetectionError

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Earth Engine's per-project limit on concurrent interactive requests.
PROJECT_QUOTA: Final = 40
#: How long the first request to an idle limiter waits for the rest of its burst to queue:
#: a run's regions submit their requests within milliseconds, and 50 ms is nothing next
#: to an Earth Engine request (tens of seconds), but lets the largest ones start first.
DEFAULT_GATHER_S: Final = 0.05
#: Each arrival within the window extends it by ``gather_s`` (a burst from many threads
#: on a busy CPU spreads over hundreds of milliseconds), up to this many times ``gather_s``.
GATHER_MAX: Final = 20


class FailureKind(StrEnum):
    """How a failed request is handled."""

    QUOTA = "quota"  # 429 / "Too many concurrent aggregations": back off and shrink the window
    TRANSIENT = "transient"  # 5xx, connection reset: back off, window unchanged
    DEADLINE = "deadline"  # our request deadline expired: back off, retried a bounded number of times
    HEAVY = "heavy"  # "Computation timed out." / "User memory limit exceeded.": retry with larger tileScale
    AUTH = "auth"  # credentials expired, revoked or lacking permission: stops the run (exit 4)
    FATAL = "fatal"  # anything else (bad asset, invalid argument): the region fails at once


_HEAVY_MESSAGES: Final = ("computation timed out", "user memory limit exceeded")
_QUOTA_MESSAGES: Final = (
    "too many concurrent aggregations",
    "too many requests",
    "quota exceeded",
    "rate limit",
    "resource_exhausted",
)
_AUTH_MESSAGES: Final = (
    "invalid authentication credentials",
    "unauthenticated",
    "invalid_grant",
    "permission_denied",
    "caller does not have",
    "not signed up",
)
_TRANSIENT_MESSAGES: Final = ("service unavailable", "internal error", "backend error", "bad gateway")


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str
    status: int | None = None


def _http_status(exc: BaseException) -> int | None:
    """HTTP status of the googleapiclient error behind an ``EEException``, if any.

    ``ee.data`` raises ``EEException`` inside ``except HttpError``, so the HTTP error
    is the exception's ``__context__``; its status is more reliable than the text.
    """
    for candidate in (exc, exc.__cause__, exc.__context__):
        resp = getattr(candidate, "resp", None)
        status = getattr(resp, "status", None)
        if status is not None:
            try:
                return int(status)
            except (TypeError, ValueError):
                return None
    return None


def classify(exc: BaseException) -> Failure:
    """Map an exception from the Earth Engine client to how it is handled."""
    # google.auth's RefreshError: the token endpoint refused the key (expired, revoked, deleted).
    if type(exc).__name__ == "RefreshError":
        return Failure(FailureKind.AUTH, f"token refresh failed: {exc}")
    message = str(exc).strip() or type(exc).__name__
    lowered = message.lower()
    status = _http_status(exc)
    if isinstance(exc, TimeoutError) or "deadline exceeded" in lowered or status == 504:
        return Failure(FailureKind.DEADLINE, message or "request deadline exceeded", status)
    if any(m in lowered for m in _HEAVY_MESSAGES):
        return Failure(FailureKind.HEAVY, message, status)
    if status == 429 or any(m in lowered for m in _QUOTA_MESSAGES):
        return Failure(FailureKind.QUOTA, message, status)
    if status in (401, 403) or any(m in lowered for m in _AUTH_MESSAGES):
        return Failure(FailureKind.AUTH, message, status)
    if (
        (status is not None and status >= 500)
        or isinstance(exc, ConnectionError)
        or any(m in lowered for m in _TRANSIENT_MESSAGES)
    ):
        return Failure(FailureKind.TRANSIENT, message, status)
    return Failure(FailureKind.FATAL, message, status)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retries; delays in seconds (the benchmark scales them with its clock)."""

    max_attempts: int = 8  # all kinds together, per request
    deadline_retries: int = 1  # a request that outlived its deadline is tried once more
    heavy_retries: int = 1  # one retry with a larger tileScale, as Earth Engine's docs advise
    base_delay_s: float = 2.0
    max_delay_s: float = 60.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Exponential backoff with equal jitter: ``[d/2, d)``, ``d = base * 2**retry`` capped."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2.0**retry))
        return ceiling / 2.0 + rng.random() * ceiling / 2.0


@dataclass
class RequestStats:
    """What one logical request cost: attempts and retries by failure kind."""

    attempts: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    escalation: int = 0
    waited_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "retries": dict(sorted(self.retries.items())),
            "escalation": self.escalation,
            "waited_s": round(self.waited_s, 3),
        }


class AdaptiveLimiter:
    """AIMD concurrency window over Earth Engine requests, priority-ordered waiters."""

    def __init__(
        self,
        max_concurrency: int = 16,
        *,
        min_concurrency: int = 1,
        decrease_factor: float = 0.85,
        gather_s: float = DEFAULT_GATHER_S,
    ) -> None:
        if not 1 <= min_concurrency <= max_concurrency:
            raise ValueError("need 1 <= min_concurrency <= max_concurrency")
        self.max_concurrency = max_concurrency
        self.min_concurrency = min_concurrency
        self.decrease_factor = decrease_factor
        self.gather_s = gather_s
        self._gather_until = 0.0  # monotonic time before which no slot is granted (a burst queues)
        self._gather_opened = 0.0
        self._window = float(max_concurrency)
        self._in_flight = 0
        self._epoch = 0  # bumped on each decrease; a 429 from an older epoch does not shrink again
        self._waiters: list[tuple[bool, float, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._auth_failure: str | None = None
        self.counters: Counter[str] = Counter()
        self.peak_in_flight = 0
        self.min_window_seen = float(max_concurrency)

    @property
    def window(self) -> float:
        with self._cond:
            return self._window

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        with self._cond:
            return len(self._waiters)

    def reconfigure(self, max_concurrency: int) -> None:
        """Change the ceiling (settings are read once per run; tests build their own limiter)."""
        with self._cond:
            self.max_concurrency = max_concurrency
            self._window = min(self._window, float(max_concurrency)) or 1.0
            self._cond.notify_all()

    def trip_auth(self, message: str) -> None:
        """Credentials are dead for the whole process: fail every waiter and later request fast."""
        with self._cond:
            self._auth_failure = message
            self._cond.notify_all()

    def _check_auth(self) -> None:
        if self._auth_failure is not None:
            raise CredentialsError(self._auth_failure)

    @contextmanager
    def slot(
        self, priority: float = 0.0, cancel: threading.Event | None = None, *, retry: bool = False
    ) -> Iterator[int]:
        """Hold one request slot. Yields the epoch at entry.

        Retries go first (their request has already spent time on the critical path),
        then larger ``priority``, then first come. The first request to an idle limiter
        opens a ``gather_s`` window in which the burst it belongs to queues up; each
        arrival in the window extends it (at most ``GATHER_MAX * gather_s`` in all).
        """
        ticket = (not retry, -priority, next(self._seq))
        with self._cond:
            now = time.monotonic()
            if self.gather_s > 0 and self._in_flight == 0 and not self._waiters:
                self._gather_opened = now
                self._gather_until = now + self.gather_s
            elif now < self._gather_until:  # the burst goes on: wait for its stragglers too
                self._gather_until = min(
                    self._gather_opened + GATHER_MAX * self.gather_s, now + self.gather_s
                )
            heapq.heappush(self._waiters, ticket)
            try:
                while True:
                    self._check_auth()
                    if cancel is not None and cancel.is_set():
                        raise AbortedError("cancelled while waiting for an Earth Engine request slot")
                    gathering = self._gather_until - time.monotonic()
                    if (
                        gathering <= 0
                        and self._waiters[0] == ticket
                        and self._in_flight < max(1, int(self._window))
                    ):
                        break
                    # Timed wait so a cancel set from another thread is noticed without a notify.
                    self._cond.wait(min(0.25, gathering) if gathering > 0 else 0.25)
            finally:
                self._waiters.remove(ticket)
                heapq.heapify(self._waiters)
                self._cond.notify_all()
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            epoch = self._epoch
        try:
            yield epoch
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def count(self, event: str) -> None:
        with self._cond:
            self.counters[event] += 1

    def on_success(self) -> None:
        with self._cond:
            self.counters["success"] += 1
            self._window = min(float(self.max_concurrency), self._window + 1.0 / self._window)
            self._cond.notify_all()

    def on_throttle(self, epoch: int) -> None:
        """A 429 for a request that entered at ``epoch`` (and still holds its slot).

        Shrinks once per wave of 429s: to ``window * decrease_factor``, or lower, to the
        number of our requests the server was running when it refused this one (the
        best estimate of the share we have), but never below half the window at once.
        """
        with self._cond:
            self.counters["throttled"] += 1
            if epoch == self._epoch:
                self._epoch += 1
                accepted = float(self._in_flight - 1)
                target = min(self._window * self.decrease_factor, accepted)
                self._window = max(float(self.min_concurrency), self._window / 2.0, target)
                self.min_window_seen = min(self.min_window_seen, self._window)
                log.info("ee limiter shrinks", window=round(self._window, 2))

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {
                "max_concurrency": self.max_concurrency,
                "window": round(self._window, 2),
                "in_flight": self._in_flight,
                "peak_in_flight": self.peak_in_flight,
                "min_window_seen": round(self.min_window_seen, 2),
                "counters": dict(self.counters),
            }


_shared: AdaptiveLimiter | None = None
_shared_lock = threading.Lock()


def shared_limiter(max_concurrency: int) -> AdaptiveLimiter:
    """The process-wide limiter (created on first use, ceiling updated on later calls)."""
    global _shared
    if not 1 <= max_concurrency <= PROJECT_QUOTA:
        raise ValueError(f"Earth Engine concurrency must be 1..{PROJECT_QUOTA}, got {max_concurrency}")
    with _shared_lock:
        if _shared is None:
            _shared = AdaptiveLimiter(max_concurrency)
        elif _shared.max_concurrency != max_concurrency:
            _shared.reconfigure(max_concurrency)
        return _shared


def run_with_retries(
    request: Callable[[int], T],
    *,
    limiter: AdaptiveLimiter,
    policy: RetryPolicy,
    what: str,
    priority: float = 0.0,
    cancel: threading.Event | None = None,
    rng: random.Random | None = None,
    stats: RequestStats | None = None,
) -> T:
    """Run ``request(escalation)`` under the limiter until it succeeds or its retries run out.

    ``escalation`` starts at 0 and rises by one after each heavy failure, so the caller
    can rebuild the graph with a larger ``tileScale``. Raises ``DetectionError`` carrying
    the last Earth Engine message, ``CredentialsError`` for dead credentials (the limiter
    then fails every other request fast), or ``AbortedError`` on cancel.
    """
    rng = rng or random.Random()
    stats = stats if stats is not None else RequestStats()
    backoffs = 0
    while True:
        if cancel is not None and cancel.is_set():
            raise AbortedError(f"cancelled before {what}")
        queued = time.monotonic()
        with limiter.slot(priority, cancel, retry=stats.attempts > 0) as epoch:
            stats.waited_s += time.monotonic() - queued
            stats.attempts += 1
            try:
                result = request(stats.escalation)
            except Exception as exc:
                failure = classify(exc)
            else:
                limiter.on_success()
                return result
            if failure.kind is FailureKind.QUOTA:
                limiter.on_throttle(epoch)
        limiter.count(failure.kind.value)
        log.info(
            "ee request failed",
            what=what,
            kind=failure.kind.value,
            status=failure.status,
            attempt=stats.attempts,
            error=failure.message[:300],
        )
        if failure.kind is FailureKind.AUTH:
            text = (
                f"Earth Engine rejected the credentials during {what}: {failure.message} "
                "(check GEE_SERVICE_ACCOUNT_KEY / GEE_SERVICE_ACCOUNT_KEY_FILE and GEE_PROJECT)"
            )
            limiter.trip_auth(text)
            raise CredentialsError(text)
        budget_left = stats.attempts < policy.max_attempts
        if failure.kind is FailureKind.HEAVY:
            retry_ok = budget_left and stats.retries[failure.kind.value] < policy.heavy_retries
        elif failure.kind is FailureKind.DEADLINE:
            retry_ok = budget_left and stats.retries[failure.kind.value] < policy.deadline_retries
        else:
            retry_ok = budget_left and failure.kind is not FailureKind.FATAL
        if not retry_ok:
            suffix = f" after {stats.attempts} attempt{'s' if stats.attempts != 1 else ''}"
            raise DetectionError(f"Earth Engine {what} failed{suffix}: {failure.message}")
        stats.retries[failure.kind.value] += 1
        if failure.kind is FailureKind.HEAVY:
            stats.escalation += 1
            continue  # a heavier tiling is a different request: no need to wait
        delay = policy.backoff(backoffs, rng)
        backoffs += 1
        if cancel is not None:
            if cancel.wait(delay):
                raise AbortedError(f"cancelled while backing off from {what}")
        else:
            time.sleep(delay)
