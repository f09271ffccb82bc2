"""The polite fetcher against a real local server: robots.txt, rate limit, retries, User-Agent."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ccapi_monitor.market.errors import MarketError, RobotsDisallowedError
from ccapi_monitor.market.fetch import ROBOTS_AGENT, USER_AGENT, PoliteFetcher, redact_url
from tests.market.conftest import Site

FAST = 0.2  # the tests' host interval; production default is 1 s


def test_robots_disallow_is_respected_and_the_page_never_requested(site: Site) -> None:
    site.page("/robots.txt", f"User-agent: {ROBOTS_AGENT}\nDisallow: /private/\n", content_type="text/plain")
    allowed = site.page("/public/a", "ok")
    private = site.page("/private/b", "secret")
    fetcher = PoliteFetcher(min_interval_s=FAST)
    assert fetcher.get(allowed).text == "ok"
    with pytest.raises(RobotsDisallowedError, match=r"disallowed by robots\.txt"):
        fetcher.get(private)
    assert site.paths() == ["/robots.txt", "/public/a"]
    assert all(hit.headers["User-Agent"] == USER_AGENT for hit in site.hits)


def test_robots_rules_for_other_agents_do_not_apply(site: Site) -> None:
    site.page("/robots.txt", "User-agent: OtherBot\nDisallow: /\n", content_type="text/plain")
    url = site.page("/a", "ok")
    assert PoliteFetcher(min_interval_s=FAST).get(url).status == 200


@pytest.mark.parametrize(("status", "allowed"), [(404, True), (403, True), (500, False)])
def test_robots_status_follows_rfc_9309(site: Site, status: int, allowed: bool) -> None:
    site.page("/robots.txt", "x", status=status)
    url = site.page("/a", "ok")
    assert PoliteFetcher(min_interval_s=FAST, retries=0).allowed(url) is allowed


def test_rate_limit_holds_under_concurrency(site: Site) -> None:
    site.delay_s = 0.02
    urls = [site.page(f"/p{i}", f"page {i}") for i in range(8)]
    fetcher = PoliteFetcher(min_interval_s=FAST)
    barrier = threading.Barrier(8)

    def fetch(url: str) -> str:
        barrier.wait()
        return fetcher.get(url).text

    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(fetch, urls))
    assert bodies == [f"page {i}" for i in range(8)]
    hits = sorted(site.hits, key=lambda h: h.at)
    assert len(hits) == 9  # robots.txt once, then each page once
    # Each request starts at least one interval after the previous one finished.
    gaps = [later.at - earlier.done for earlier, later in itertools.pairwise(hits)]
    assert min(gaps) >= FAST * 0.9, gaps
    assert fetcher.requests_sent == {site.url: 9}


def test_hosts_have_their_own_slot(site: Site) -> None:
    site.page("/a", "a")
    fetcher = PoliteFetcher(min_interval_s=FAST)
    other = site.url.replace("127.0.0.1", "localhost")
    fetcher.get(site.url + "/a")
    fetcher.get(other + "/a")
    assert set(fetcher.requests_sent) == {site.url, other}


def test_retries_are_bounded_and_spaced(site: Site) -> None:
    site.page("/robots.txt", "", status=404)
    flaky = site.page("/flaky", "finally", fail_first=2)
    down = site.page("/down", "never", fail_first=100)
    fetcher = PoliteFetcher(min_interval_s=FAST, retries=2, backoff_s=0.01)
    assert fetcher.get(flaky).text == "finally"
    with pytest.raises(MarketError, match=r"/down: HTTP 503"):
        fetcher.get(down)
    assert site.paths().count("/flaky") == 3
    assert site.paths().count("/down") == 3  # the first try and two retries, no more
    attempts = [h for h in site.hits if h.path == "/down"]
    assert all(b.at - a.done >= FAST * 0.9 for a, b in itertools.pairwise(attempts))


def test_unreachable_host_is_a_market_error_without_secrets() -> None:
    fetcher = PoliteFetcher(min_interval_s=FAST, retries=1, timeout_s=(0.5, 0.5))
    with pytest.raises(MarketError) as caught:
        fetcher.get("http://user:hunter2@127.0.0.1:9/feed.csv?token=hunter2", robots=False)
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1:9/feed.csv" in str(caught.value)


def test_redact_url() -> None:
    assert redact_url("https://u:p@host:8443/a/b.csv?X-Amz-Signature=s") == "https://host:8443/a/b.csv?…"
    assert redact_url("https://host/a") == "https://host/a"
    assert redact_url("/local/feed.csv") == "/local/feed.csv"
