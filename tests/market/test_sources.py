"""Choosing the run's source from Settings: flags, environment, execution input, the demo's sample."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.market import sample_feed_path
from ccapi_monitor.market.base import region_figures
from ccapi_monitor.market.feed import FeedSource
from ccapi_monitor.market.listings import ListingsSource
from ccapi_monitor.market.sources import build_source, load_market
from ccapi_monitor.market.static import StaticSource
from ccapi_monitor.regions import load_regions
from ccapi_monitor.scoring import load_land_prices
from ccapi_monitor.settings import resolve
from ccapi_monitor.storage import LocalStore


def test_static_is_the_default_and_the_demo_reads_the_sample(tmp_path: Path) -> None:
    assert isinstance(build_source(resolve({}, None, {}), LocalStore(tmp_path)), StaticSource)
    demo = resolve({"imagery": "demo"}, None, {})
    assert (demo.market, demo.market_feed) == ("feed", str(sample_feed_path()))
    source = build_source(demo, LocalStore(tmp_path))
    assert isinstance(source, FeedSource)
    assert source.synthetic
    assert source.cache is None
    assert isinstance(
        build_source(resolve({"imagery": "demo", "market": "static"}, None, {}), None), StaticSource
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"market": "feed"}, "--market feed needs --market-feed (or CCAPI_MARKET_FEED)"),
        ({"market": "listings"}, "--market listings needs --market-listings (or CCAPI_MARKET_LISTINGS)"),
    ],
)
def test_a_source_without_its_address_is_invalid_input(flags: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        resolve(flags, None, {})
    assert str(caught.value) == message


def test_enable_scraping_from_every_source(tmp_path: Path) -> None:
    env = {"CCAPI_MARKET": "listings", "CCAPI_MARKET_LISTINGS": "north=https://h.test/a,https://h.test/b"}
    on = resolve({}, None, env)
    assert on.enable_scraping
    assert on.market_listings == ("north=https://h.test/a", "https://h.test/b")
    for off in (
        resolve({}, '{"enable_scraping": false}', env),
        resolve({}, None, {**env, "CCAPI_ENABLE_SCRAPING": "false"}),
        resolve({"enable_scraping": False}, '{"enable_scraping": true}', env),  # the flag wins
    ):
        source = build_source(off, LocalStore(tmp_path))
        assert isinstance(source, ListingsSource)
        assert not source.allow_network


def test_listing_urls_are_validated_before_the_run() -> None:
    settings = resolve({"market": "listings", "market_listings": ["north=ftp://h.test/a"]}, None, {})
    with pytest.raises(InvalidInputError, match="must be http"):
        build_source(settings, None)


def test_the_demo_sample_feed_is_marked_synthetic_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ccapi_monitor")
    source = build_source(resolve({"imagery": "demo"}, None, {}), None)
    regions = load_regions()
    run = date(2026, 11, 23)
    data = load_market(source, regions, run)
    figures = [region_figures(r, data, run, load_land_prices()) for r in regions]
    assert all(f.source == "feed" and f.synthetic for f in figures)
    assert all(f.label == "feed (synthetic)" for f in figures)
    assert all(f.trend is not None and f.trend.weeks == 12 for f in figures)
    assert all(f.listing_count >= 5 for f in figures)
    assert any(
        "market data: feed from" in r.getMessage() and "4524 prices" in r.getMessage() for r in caplog.records
    )
