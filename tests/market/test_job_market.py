"""Market data through the real worker: the demo's sample feed, listings, scraping off, a failed source, secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ccapi_monitor.regions import load_regions
from tests.market import pages
from tests.market.conftest import Site
from tests.worker import demo_args, run_worker

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())
RUN_DATE = "2026-11-23"
REGION = "banyuwangi_ferry_corridor"  # overlaps no other region
TOKEN = "feed-secret-0c4f2a9d71"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-cache")


def _run(tmp_path: Path, archive: Path, env: dict[str, str], *extra: str) -> tuple[dict[str, Any], str, str]:
    """One demo run of REGION; returns its report.json, report.html and stderr."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    (archive / "demo-archive").mkdir(exist_ok=True)
    if not (cache / "demo-archive").exists():
        (cache / "demo-archive").symlink_to(archive / "demo-archive", target_is_directory=True)
    proc = run_worker([*demo_args(out, cache, RUN_DATE, (REGION,)), *extra], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = max((out / "weekly" / RUN_DATE).iterdir())  # run ids sort by time
    report = json.loads((run_dir / "report.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(report)
    return report, (run_dir / "report.html").read_text(), proc.stderr


def test_demo_shows_the_synthetic_sample_feed(
    tmp_path: Path, archive: Path, worker_env: dict[str, str]
) -> None:
    report, html, _ = _run(tmp_path, archive, worker_env)
    market = report["regions"][0]["market"]
    assert (market["requested"], market["source"], market["synthetic"]) == ("feed", "feed", True)
    assert market["median_idr_per_m2"] > 0
    assert market["listing_count"] >= 5
    assert market["trend"]["weeks"] == 12
    assert market["origin"] == "packaged synthetic sample (market_sample.parquet)"
    score = report["regions"][0]["score"]
    assert score["components"]["market_live"] == 1.0
    assert "from feed (synthetic)" in score["rationale"]
    assert "feed (synthetic)" in html
    assert "Price trend" in html
    assert f"{market['median_idr_per_m2']:,.0f}" in html


def _listing_page(count: int) -> str:
    region = next(r for r in load_regions() if r.name == REGION)
    point = region.geometry.representative_point()
    geo = {"@type": "GeoCoordinates", "latitude": point.y, "longitude": point.x}
    return pages.jsonld_page(
        *[
            {
                "@context": "https://schema.org",
                "@type": "RealEstateListing",
                "url": f"/tanah/{i}",
                "offers": {"@type": "Offer", "price": f"Rp {800 + 10 * i}.000/m²", "priceCurrency": "IDR"},
                "contentLocation": {"@type": "Place", "geo": geo},
            }
            for i in range(count)
        ]
    )


def test_listings_off_then_on(site: Site, tmp_path: Path, archive: Path, worker_env: dict[str, str]) -> None:
    site.page("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    url = site.page("/cari", _listing_page(6))
    listings = ("--market", "listings", "--market-listings", url)

    report, html, _ = _run(tmp_path, archive, worker_env, *listings, "--no-enable-scraping")
    assert site.hits == []  # scraping off: not one request
    market = report["regions"][0]["market"]
    assert (market["requested"], market["source"]) == ("listings", "static")
    assert "not fetched (scraping disabled)" in market["fallback_reason"]
    assert "static (fallback)" in html

    report, html, _ = _run(tmp_path, archive, worker_env, *listings)
    assert sorted(site.paths()) == ["/cari", "/robots.txt"]
    market = report["regions"][0]["market"]
    assert (market["source"], market["listing_count"]) == ("listings", 6)
    assert market["median_idr_per_m2"] == 825_000
    assert report["regions"][0]["score"]["components"]["market_live"] == 1.0
    assert "6 listings" in report["regions"][0]["score"]["rationale"]

    # Scraping off again: the week-old-at-most cached page, no request.
    report, _, _ = _run(
        tmp_path, archive, worker_env, *listings, "--input-json", '{"enable_scraping": false}'
    )
    assert len(site.hits) == 2
    assert report["regions"][0]["market"]["from_cache"] is True


def test_failed_feed_is_a_marked_static_fallback_and_no_secret_leaks(
    site: Site, tmp_path: Path, archive: Path, worker_env: dict[str, str]
) -> None:
    feed = f"{site.url}/gone.csv?sig={TOKEN}"  # 404: nothing served there
    env = {**worker_env, "CCAPI_MARKET_FEED_TOKEN": TOKEN, "CCAPI_LOG_LEVEL": "DEBUG"}
    report, html, stderr = _run(tmp_path, archive, env, "--market", "feed", "--market-feed", feed)
    assert site.hits[0].headers["Authorization"] == f"Bearer {TOKEN}"
    region = report["regions"][0]
    assert region["status"] == "ok"
    market = region["market"]
    assert (market["requested"], market["source"]) == ("feed", "static")
    assert market["median_idr_per_m2"] == 1_000_000  # tier 3 of the table, never a zero
    assert market["fallback_reason"] == f"unreachable: {site.url}/gone.csv?…: HTTP 404"
    assert "static tier table: feed unavailable" in region["score"]["rationale"]
    assert "static (fallback)" in html
    written = [
        p.read_text(errors="replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.suffix in (".json", ".html", ".geojson")
    ]
    assert not [text for text in [stderr, *written] if TOKEN in text]
