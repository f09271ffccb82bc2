"""Benchmark: what market data costs a run (the seed's "scraping costs run time", measured).

Listing pages are served by local HTTP servers (one per simulated host, each answer
delayed by ``--latency``), with the production politeness: one request per host per
second, robots.txt first. Figures, all from the same run:
- ``listings_cold_s``: the listings source with an empty cache (every page fetched);
- ``polite_floor_s``: the floor politeness allows, per host ``requests x latency +
  (requests - 1) x interval``, the largest over hosts; ``cold_over_floor`` is the ratio;
- ``listings_cached_s``: a second run within the week (7-day cache: no request);
- ``listings_offline_s``: scraping off, cached copies only;
- ``feed_sample_s``: the packaged sample feed (Parquet, 29 regions x 156 weeks);
- ``static_s``: the tier table, the baseline every other figure is compared with;
- ``figures_s``: median, IQR and Theil-Sen trend for 29 regions from the listings.

Run: ``.venv/bin/python -m benchmarks.bench_market`` (prints JSON; about 15 s).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ccapi_monitor.market import sample_feed_path
from ccapi_monitor.market.base import MarketData, MarketSource, region_figures
from ccapi_monitor.market.feed import FeedSource
from ccapi_monitor.market.fetch import PoliteFetcher
from ccapi_monitor.market.listings import ListingPage, ListingsSource
from ccapi_monitor.market.parsing import format_idr
from ccapi_monitor.market.static import StaticSource
from ccapi_monitor.regions import Region, load_regions
from ccapi_monitor.scoring import load_land_prices
from ccapi_monitor.storage import LocalStore
from tests.market.conftest import serve_site

RUN_DATE = date(2026, 11, 23)
INTERVAL_S = 1.0


def _page(regions: list[Region], rng: random.Random, listings: int) -> str:
    """An ItemList of RealEstateListings with per-m² prices in Indonesian notation."""
    prices = load_land_prices()
    items = []
    for i in range(listings):
        region = rng.choice(regions)
        point = region.geometry.representative_point()
        price = prices[region.tier].idr_per_m2 * rng.uniform(0.6, 1.6)
        items.append(
            {
                "@type": "ListItem",
                "position": i + 1,
                "item": {
                    "@type": "RealEstateListing",
                    "url": f"/l/{rng.getrandbits(32)}",
                    "offers": {"@type": "Offer", "price": f"{format_idr(price)}/m²", "priceCurrency": "IDR"},
                    "contentLocation": {
                        "@type": "Place",
                        "geo": {"@type": "GeoCoordinates", "latitude": point.y, "longitude": point.x},
                    },
                },
            }
        )
    document = {"@context": "https://schema.org", "@type": "ItemList", "itemListElement": items}
    return f'<html><head><script type="application/ld+json">{json.dumps(document)}</script></head></html>'


def _timed(load: Callable[[], MarketData]) -> tuple[float, MarketData]:
    started = time.perf_counter()
    data = load()
    return time.perf_counter() - started, data


def _load(source: MarketSource, regions: list[Region]) -> Callable[[], MarketData]:
    return lambda: source.load(regions, RUN_DATE)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--pages-per-host", type=int, default=5)
    parser.add_argument("--listings-per-page", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds each answer is delayed")
    args = parser.parse_args(argv)
    regions = load_regions()
    prices = load_land_prices()
    rng = random.Random(7)
    result: dict[str, Any] = {"run_date": RUN_DATE.isoformat(), **vars(args), "interval_s": INTERVAL_S}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        pages = []
        for _ in range(args.hosts):
            site = stack.enter_context(serve_site())
            site.delay_s = args.latency
            site.page("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
            pages += [
                ListingPage(site.page(f"/cari/{n}", _page(regions, rng, args.listings_per_page)))
                for n in range(args.pages_per_host)
            ]
        cache = LocalStore(Path(tmp) / "cache")
        fetcher = PoliteFetcher(min_interval_s=INTERVAL_S)
        result["listings_cold_s"], data = _timed(
            _load(ListingsSource(pages, cache=cache, allow_network=True, fetcher=fetcher), regions)
        )
        requests = args.pages_per_host + 1  # robots.txt, then each page
        result["requests"] = sum(fetcher.requests_sent.values())
        result["polite_floor_s"] = requests * args.latency + (requests - 1) * INTERVAL_S
        result["cold_over_floor"] = result["listings_cold_s"] / result["polite_floor_s"]
        result["listings_cached_s"], _ = _timed(
            _load(ListingsSource(pages, cache=cache, allow_network=True), regions)
        )
        result["listings_offline_s"], _ = _timed(
            _load(ListingsSource(pages, cache=cache, allow_network=False), regions)
        )
        started = time.perf_counter()
        figures = [region_figures(r, data, RUN_DATE, prices) for r in regions]
        result["figures_s"] = time.perf_counter() - started
        result["regions_with_listings"] = sum(f.source == "listings" for f in figures)
        result["listings"] = len(data.points)
    feed = FeedSource(str(sample_feed_path()), cache=None, allow_network=False, synthetic=True)
    result["feed_sample_s"], _ = _timed(_load(feed, regions))
    result["static_s"], _ = _timed(_load(StaticSource(), regions))
    for name in ("listings_cold_s", "listings_cached_s", "listings_offline_s", "feed_sample_s"):
        result[name.removesuffix("_s") + "_minus_static_s"] = result[name] - result["static_s"]
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    json.dump(
        {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, sys.stdout, indent=2
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
