"""The process-wide limiter and retry policy, driven by plain callables."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from ccapi_monitor.detection.ee_quota import (
    AdaptiveLimiter,
    FailureKind,
    RequestStats,
    RetryPolicy,
    classify,
    run_with_retries,
    shared_limiter,
)
from ccapi_monitor.errors import AbortedError, CredentialsError, DetectionError

FAST = RetryPolicy(base_delay_s=0.001, max_delay_s=0.004)


class FakeResp(dict[str, Any]):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status


class HttpLikeError(Exception):
    """Shaped like googleapiclient's HttpError: the status lives on ``resp``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.resp = FakeResp(status)


def ee_exception_from(status: int, message: str) -> Exception:
    """An EEException raised the way ee.data does it: inside ``except HttpError``."""
    import ee

    try:
        raise HttpLikeError(status, message)
    except HttpLikeError:
        try:
            raise ee.EEException(message)  # as ee.data._execute_cloud_call does
        except ee.EEException as translated:
            return translated


class RefreshError(Exception):
    """Same name as google.auth.exceptions.RefreshError, which classify() recognizes by name."""


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ee_exception_from(429, "Too many concurrent aggregations."), FailureKind.QUOTA),
        (ee_exception_from(400, "Too many concurrent aggregations."), FailureKind.QUOTA),
        (ee_exception_from(429, "Quota exceeded for quota metric"), FailureKind.QUOTA),
        (ee_exception_from(503, "The service is currently unavailable."), FailureKind.TRANSIENT),
        (ee_exception_from(500, "An internal error has occurred"), FailureKind.TRANSIENT),
        (ee_exception_from(400, "Computation timed out."), FailureKind.HEAVY),
        (ee_exception_from(400, "User memory limit exceeded."), FailureKind.HEAVY),
        (ee_exception_from(504, "Deadline exceeded"), FailureKind.DEADLINE),
        (TimeoutError("read timed out"), FailureKind.DEADLINE),
        (ConnectionError("reset by peer"), FailureKind.TRANSIENT),
        (ee_exception_from(401, "Request had invalid authentication credentials."), FailureKind.AUTH),
        (ee_exception_from(403, "Caller does not have required permission"), FailureKind.AUTH),
        (RefreshError("invalid_grant: Invalid JWT Signature."), FailureKind.AUTH),
        (ee_exception_from(400, "Image.load: Asset 'X' not found."), FailureKind.FATAL),
    ],
)
def test_classify(exc: Exception, kind: FailureKind) -> None:
    assert classify(exc).kind is kind


def test_backoff_is_exponential_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    rng = random.Random(1)
    for retry, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = [policy.backoff(retry, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) < ceiling
        assert len(set(delays)) > 100  # jittered, not a fixed schedule


def test_window_shrinks_while_429s_continue_and_grows_back() -> None:
    limiter = AdaptiveLimiter(16, decrease_factor=0.5)
    windows = []
    for _ in range(3):  # three waves of 429s, each from a request admitted after the last shrink
        with limiter.slot() as epoch:
            pass
        limiter.on_throttle(epoch)
        windows.append(limiter.window)
    assert windows == [8.0, 4.0, 2.0]
    for _ in range(200):
        limiter.on_success()
    assert limiter.window == 16.0


def test_one_wave_of_429s_shrinks_once() -> None:
    limiter = AdaptiveLimiter(16, decrease_factor=0.5)
    epochs = []
    for _ in range(10):
        with limiter.slot() as epoch:
            epochs.append(epoch)
    for epoch in epochs:  # ten requests admitted in the same epoch all get 429
        limiter.on_throttle(epoch)
    assert limiter.window == 8.0
    assert limiter.counters["throttled"] == 10


def test_concurrency_never_exceeds_the_window() -> None:
    limiter = AdaptiveLimiter(4)
    active = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal active, peak
        with limiter.slot():
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.01)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 4 == limiter.peak_in_flight


def _service_order(requests: list[tuple[str, float, bool]]) -> list[str]:
    """Names of ``(name, priority, retry)`` requests in the order a 1-slot limiter serves them.

    The slot is held until every request is queued, so the order is the limiter's choice
    alone, not the threads' start order.
    """
    limiter = AdaptiveLimiter(1)
    order: list[str] = []
    gate = threading.Event()

    def holder() -> None:
        with limiter.slot():
            gate.wait(5)

    def waiter(name: str, priority: float, retry: bool) -> None:
        with limiter.slot(priority=priority, retry=retry):
            order.append(name)

    first = threading.Thread(target=holder)
    first.start()
    while limiter.in_flight == 0:
        time.sleep(0.001)
    waiters = [threading.Thread(target=waiter, args=request) for request in requests]
    for t in waiters:
        t.start()
    while limiter.waiting < len(requests):
        time.sleep(0.001)
    gate.set()
    for t in [first, *waiters]:
        t.join()
    return order


def test_larger_priority_is_served_first() -> None:
    requests = [(str(p), p, False) for p in (1.0, 50.0, 7.0)]
    assert _service_order(requests) == ["50.0", "7.0", "1.0"]


def _failing(*errors: Exception) -> tuple[list[int], Any]:
    """A request that raises ``errors`` in turn, then returns "done"; records escalations."""
    seen: list[int] = []
    queue = list(errors)

    def request(escalation: int) -> str:
        seen.append(escalation)
        if queue:
            raise queue.pop(0)
        return "done"

    return seen, request


def test_quota_storm_is_retried_counted_and_bounded() -> None:
    limiter = AdaptiveLimiter(8)
    stats = RequestStats()
    _, request = _failing(*[ee_exception_from(429, "Too many concurrent aggregations.")] * 3)
    assert run_with_retries(request, limiter=limiter, policy=FAST, what="x", stats=stats) == "done"
    assert stats.attempts == 4
    assert stats.retries == {"quota": 3}
    assert limiter.window < 8

    stats = RequestStats()
    _, endless = _failing(*[ee_exception_from(429, "Too many concurrent aggregations.")] * 50)
    with pytest.raises(DetectionError, match=r"after 8 attempts: Too many concurrent aggregations\."):
        run_with_retries(endless, limiter=limiter, policy=FAST, what="statistics request", stats=stats)
    assert stats.attempts == FAST.max_attempts


def test_heavy_failure_escalates_once_then_fails() -> None:
    limiter = AdaptiveLimiter(4)
    seen, request = _failing(ee_exception_from(400, "User memory limit exceeded."))
    assert run_with_retries(request, limiter=limiter, policy=FAST, what="x") == "done"
    assert seen == [0, 1]

    stats = RequestStats()
    seen, request = _failing(*[ee_exception_from(400, "Computation timed out.")] * 2)
    with pytest.raises(DetectionError, match=r"after 2 attempts: Computation timed out\."):
        run_with_retries(request, limiter=limiter, policy=FAST, what="x", stats=stats)
    assert seen == [0, 1]
    assert stats.retries == {"heavy": 1}
    assert limiter.window == 4  # heavy failures are not a quota signal


def test_fatal_errors_are_not_retried() -> None:
    stats = RequestStats()
    seen, request = _failing(ee_exception_from(400, "Image.load: Asset 'X' not found."))
    with pytest.raises(DetectionError, match=r"after 1 attempt: Image\.load"):
        run_with_retries(request, limiter=AdaptiveLimiter(4), policy=FAST, what="x", stats=stats)
    assert seen == [0]


def test_auth_failure_trips_the_whole_process() -> None:
    limiter = AdaptiveLimiter(4)
    _, request = _failing(RefreshError("invalid_grant: Invalid JWT Signature."))
    with pytest.raises(CredentialsError, match="GEE_SERVICE_ACCOUNT_KEY"):
        run_with_retries(request, limiter=limiter, policy=FAST, what="x")
    calls, healthy = _failing()
    with pytest.raises(CredentialsError):
        run_with_retries(healthy, limiter=limiter, policy=FAST, what="y")
    assert calls == []  # failed fast, no request sent


def test_cancel_stops_backoff() -> None:
    cancel = threading.Event()
    slow = RetryPolicy(base_delay_s=30.0, max_delay_s=30.0)
    _, request = _failing(ee_exception_from(503, "Service unavailable"))
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(AbortedError):
        run_with_retries(request, limiter=AdaptiveLimiter(2), policy=slow, what="x", cancel=cancel)
    assert time.monotonic() - started < 5


def test_shared_limiter_is_one_per_process() -> None:
    first = shared_limiter(16)
    assert shared_limiter(16) is first
    assert shared_limiter(12) is first
    assert first.max_concurrency == 12
    shared_limiter(16)
    with pytest.raises(ValueError, match=r"1\.\.40"):
        shared_limiter(41)


def test_retries_go_before_fresh_requests() -> None:
    requests = [("fresh-large", 900.0, False), ("retry-small", 100.0, True), ("fresh-small", 100.0, False)]
    assert _service_order(requests) == ["retry-small", "fresh-large", "fresh-small"]


def test_a_burst_at_an_idle_limiter_is_served_largest_first() -> None:
    """Without the gather window the first arrival takes a free slot whatever its size.

    Two free slots, and the small request arrives first at an idle limiter: it opens the
    window, the two large ones queue behind it within the window, and they get the slots.
    """
    limiter = AdaptiveLimiter(2, gather_s=2.0)
    order: list[str] = []
    lock = threading.Lock()
    gate = threading.Event()

    def request(name: str, priority: float) -> None:
        with limiter.slot(priority=priority):
            with lock:
                order.append(name)
            gate.wait(5)

    small = threading.Thread(target=request, args=("small", 1.0))
    small.start()
    while limiter.waiting < 1:
        time.sleep(0.001)
    large = [threading.Thread(target=request, args=(f"large{i}", 100.0)) for i in range(2)]
    for t in large:
        t.start()
    while len(order) < 2:
        time.sleep(0.001)
    assert sorted(order) == ["large0", "large1"]  # the small one waits although it came first
    assert limiter.waiting == 1
    gate.set()
    for t in [small, *large]:
        t.join()
    assert order[2] == "small"


def test_no_gather_window_while_requests_are_in_flight() -> None:
    """Only an idle limiter gathers: a request arriving beside a running one is served at once."""
    limiter = AdaptiveLimiter(2, gather_s=0.0)
    entered = threading.Event()

    def second() -> None:
        with limiter.slot():
            entered.set()

    with limiter.slot():
        limiter.gather_s = 600.0  # would hold the second request for 10 minutes if it applied
        t = threading.Thread(target=second)
        t.start()
        assert entered.wait(60)
    t.join()
