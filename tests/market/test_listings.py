"""Listings from schema.org data on local pages: extraction, politeness, cache, fallback."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.market.base import region_figures
from ccapi_monitor.market.fetch import PoliteFetcher
from ccapi_monitor.market.listings import (
    PAGE_TTL,
    Listing,
    ListingPage,
    ListingsSource,
    extract_listings,
    parse_listing_pages,
)
from ccapi_monitor.regions import Region
from ccapi_monitor.scoring import load_land_prices
from ccapi_monitor.storage import LocalStore
from tests.market import pages
from tests.market.conftest import Site

BASE = "http://portal.test/cari"
RUN = date(2026, 6, 1)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (pages.SINGLE, [Listing("http://portal.test/tanah/1", 3_000_000, 106.9, -6.1)]),
        (
            pages.GRAPH,
            [
                Listing("https://example.test/tanah/2", 3_500_000, 106.9, -6.1),
                Listing("http://portal.test/tanah/3", 450_000, 110.1, -7.8),
            ],
        ),
        (
            pages.ITEM_LIST,
            [
                Listing("http://portal.test/rumah/4", 3_400_000),
                Listing("http://portal.test/rumah/5", 3_500_000),
            ],
        ),
        (
            pages.MICRODATA,
            [
                Listing("http://portal.test/kebun/6", 200_000, 110.15, -7.85),
                Listing("http://portal.test/tanah/7", 850_000, 106.95, -6.15),
            ],
        ),
    ],
    ids=["json-ld", "graph", "item-list", "microdata"],
)
def test_extracts_listings_in_every_layout(page: str, expected: list[Listing]) -> None:
    listings, problems = extract_listings(page, BASE)
    assert listings == expected
    assert problems == []


def test_incomplete_listings_are_skipped_with_a_line_each() -> None:
    listings, problems = extract_listings(pages.INCOMPLETE, BASE)
    assert listings == []
    assert problems == [
        f"{BASE} listing 1: no price",
        f"{BASE} listing 2: a whole-plot price of IDR 1,200,000,000 needs the plot's area",
        f"{BASE} listing 3: price in USD, not IDR",
        f"{BASE} listing 4: not a price in a notation we read: 'harga nego'",
    ]


def test_broken_json_ld_keeps_the_microdata() -> None:
    page = pages.MICRODATA.replace(
        "<body>", '<body><script type="application/ld+json">{"@type": "Offer", oops</script>'
    )
    listings, problems = extract_listings(page, BASE)
    assert [item.url for item in listings] == ["http://portal.test/kebun/6", "http://portal.test/tanah/7"]
    assert problems == [f"{BASE}: json-ld unreadable: JSONDecodeError"]


def test_a_page_without_structured_data_has_no_listings() -> None:
    assert extract_listings("<html><body><p>Rp 1,5 M</p></body></html>", BASE) == ([], [])


def test_listing_page_settings() -> None:
    assert parse_listing_pages(["north_plot=https://a.test/x", "https://b.test/y?q=1"]) == [
        ListingPage("https://a.test/x", "north_plot"),
        ListingPage("https://b.test/y?q=1", None),
    ]
    with pytest.raises(InvalidInputError, match="must be http"):
        parse_listing_pages(["north_plot=ftp://a.test/x"])


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _source(
    site: Site, tmp_path: Path, clock: Clock, *, network: bool = True, paths: tuple[str, ...] = ()
) -> ListingsSource:
    configured = [ListingPage(site.url + p, "north_plot" if p == "/list" else None) for p in paths]
    return ListingsSource(
        configured,
        cache=LocalStore(tmp_path / "cache"),
        allow_network=network,
        fetcher=PoliteFetcher(min_interval_s=0.05),
        now=clock,
    )


def _serve_all(site: Site) -> tuple[str, ...]:
    site.page("/robots.txt", "User-agent: *\nDisallow: /admin\n", content_type="text/plain")
    site.page("/one", pages.SINGLE)
    site.page("/graph", pages.GRAPH)
    site.page("/list", pages.ITEM_LIST)
    site.page("/micro", pages.MICRODATA)
    return ("/one", "/graph", "/list", "/micro")


def test_source_assigns_listings_and_caches_pages(site: Site, tmp_path: Path, regions: list[Region]) -> None:
    paths = _serve_all(site)
    clock = Clock()
    data = _source(site, tmp_path, clock, paths=paths).load(regions, RUN)
    assert data.failure is None
    assert not data.from_cache
    by_region = {
        name: sorted(p.idr_per_m2 for p in data.points if p.region == name)
        for name, *_ in [("north_plot",), ("south_plot",)]
    }
    # north: SINGLE, GRAPH #2, both ITEM_LIST entries (page configured for north_plot), MICRODATA #2
    assert by_region["north_plot"] == [850_000, 3_000_000, 3_400_000, 3_500_000, 3_500_000]
    assert by_region["south_plot"] == [200_000, 450_000]
    assert all(p.date == RUN and p.source == "127.0.0.1" for p in data.points)
    assert sorted(site.paths()) == sorted(["/robots.txt", *paths])

    # A second run within the week reads the cache: no request at all.
    clock.now += PAGE_TTL - timedelta(minutes=1)
    again = _source(site, tmp_path, clock, paths=paths).load(regions, RUN + timedelta(days=6))
    assert again.from_cache
    assert sorted(p.idr_per_m2 for p in again.points) == sorted(p.idr_per_m2 for p in data.points)
    assert len(site.hits) == 5

    # After seven days the pages are fetched again.
    clock.now += timedelta(minutes=2)
    _source(site, tmp_path, clock, paths=paths).load(regions, RUN + timedelta(days=7))
    assert len(site.hits) == 10


def test_robots_disallowed_page_is_not_fetched_and_falls_back(
    site: Site, tmp_path: Path, regions: list[Region]
) -> None:
    site.page("/robots.txt", "User-agent: *\nDisallow: /one\n", content_type="text/plain")
    site.page("/one", pages.SINGLE)
    data = _source(site, tmp_path, Clock(), paths=("/one",)).load(regions, RUN)
    assert site.paths() == ["/robots.txt"]
    assert data.failure is not None
    assert "disallowed by robots.txt" in data.failure
    figures = region_figures(regions[0], data, RUN, load_land_prices())
    assert figures.source == "static"
    assert figures.requested == "listings"
    assert figures.median_idr_per_m2 == 10_000_000  # tier 1 of the table, never a zero
    assert figures.fallback_reason == data.failure


def test_network_failure_falls_back_to_static_marked(tmp_path: Path, regions: list[Region]) -> None:
    source = ListingsSource(
        [ListingPage("http://127.0.0.1:9/list")],
        cache=LocalStore(tmp_path),
        allow_network=True,
        fetcher=PoliteFetcher(min_interval_s=0.05, retries=0, timeout_s=(0.5, 0.5)),
    )
    data = source.load(regions, RUN)
    figures = region_figures(regions[1], data, RUN, load_land_prices())
    assert figures.source == "static"
    assert figures.median_idr_per_m2 == 300_000
    assert figures.fallback_reason is not None
    assert figures.fallback_reason.startswith("no page read: ")
    assert figures.label == "static (fallback)"


def test_scraping_off_uses_only_the_cache(site: Site, tmp_path: Path, regions: list[Region]) -> None:
    paths = _serve_all(site)
    clock = Clock()
    off = _source(site, tmp_path, clock, network=False, paths=paths).load(regions, RUN)
    assert site.hits == []
    assert off.failure is not None
    assert "scraping disabled" in off.failure
    _source(site, tmp_path, clock, paths=paths).load(regions, RUN)
    fetched = len(site.hits)
    clock.now += timedelta(days=30)  # stale, but with scraping off a stale copy beats nothing
    stale = _source(site, tmp_path, clock, network=False, paths=paths).load(regions, RUN + timedelta(days=30))
    assert len(site.hits) == fetched
    assert stale.from_cache
    assert len(stale.points) == 7


def test_history_accumulates_across_runs_for_the_trend(
    site: Site, tmp_path: Path, regions: list[Region]
) -> None:
    clock = Clock()
    prices = load_land_prices()
    figures = None
    for week in range(6):
        price = 1_000_000 * 1.02**week  # +2 % a week
        site.page(
            "/w",
            pages.jsonld_page(
                {
                    "@context": "https://schema.org",
                    "@type": "Offer",
                    "url": f"/w{week}",
                    "priceSpecification": {
                        "@type": "UnitPriceSpecification",
                        "price": price,
                        "priceCurrency": "IDR",
                        "unitCode": "MTK",
                    },
                    "itemOffered": {"@type": "Place", "geo": pages.NORTH},
                }
            ),
        )
        clock.now += timedelta(days=7)
        run = RUN + timedelta(weeks=week)
        data = _source(site, tmp_path, clock, paths=("/w",)).load(regions, run)
        figures = region_figures(regions[0], data, run, prices)
    assert figures is not None
    assert figures.source == "listings"
    assert figures.trend is not None
    assert figures.trend.weeks == 6
    assert figures.trend.pct_per_week == pytest.approx(2.0, abs=1e-6)
