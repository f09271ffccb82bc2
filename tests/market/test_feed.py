"""The price feed: formats, row validation, lon/lat, HTTPS with a token, S3, cache and offline."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from ccapi_monitor.logs import scrub
from ccapi_monitor.market import sample_feed_path
from ccapi_monitor.market.base import region_figures
from ccapi_monitor.market.errors import FeedFormatError
from ccapi_monitor.market.feed import FeedSource, parse_feed
from ccapi_monitor.market.sample import SAMPLE_SOURCE, sample_rows
from ccapi_monitor.regions import Region, load_regions
from ccapi_monitor.scoring import load_land_prices
from ccapi_monitor.storage import LocalStore
from tests.market.conftest import Site

RUN = date(2026, 6, 1)
HEADER = "region,lon,lat,date,price_idr_per_m2,listing_count,source\n"
GOOD = (
    "north_plot,,,2026-05-25,9500000,12,portal A\n"
    ",106.85,-6.15,2026-05-30,10500000,3,portal B\n"  # located by lon/lat
    ",110.05,-7.85,2026-05-31,310000,4,portal B\n"
)
BAD = (
    "north_plot,,,2026-5-xx,9500000,12,portal A\n"
    "north_plot,,,2026-05-25,abc,12,portal A\n"
    "north_plot,,,2026-05-25,-1,12,portal A\n"
    "north_plot,,,2026-05-25,1000000,0,portal A\n"
    "north_plot,,,2026-05-25,1000000,2.5,portal A\n"
    "north_plot,,,2026-05-25,1000000,2,\n"
    ",999,-6.1,2026-05-25,1000000,2,portal A\n"
    ",,,2026-05-25,1000000,2,portal A\n"
)
ELSEWHERE = "elsewhere,,,2026-05-25,1000000,2,portal A\n"  # a region of another run: not an error


def test_good_rows_kept_bad_rows_named(regions: list[Region]) -> None:
    points, problems = parse_feed((HEADER + GOOD + BAD + ELSEWHERE).encode(), "feed.csv", regions)
    assert [(p.region, p.idr_per_m2, p.listings) for p in points] == [
        ("north_plot", 9_500_000, 12),
        ("north_plot", 10_500_000, 3),
        ("south_plot", 310_000, 4),
    ]
    assert problems == [
        "market feed feed.csv row 4: date '2026-5-xx' is not YYYY-MM-DD",
        "market feed feed.csv row 5: price_idr_per_m2 'abc' is not a number",
        "market feed feed.csv row 6: price_idr_per_m2 '-1' must be a positive number",
        "market feed feed.csv row 7: listing_count '0' must be a whole number >= 1",
        "market feed feed.csv row 8: listing_count '2.5' must be a whole number >= 1",
        "market feed feed.csv row 9: source is empty",
        "market feed feed.csv row 10: lon/lat 999.0/-6.1 out of range",
        "market feed feed.csv row 11: lon/lat ''/'' are not numbers",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "region,date,price\nnorth_plot,2026-05-25,1\n",
            "missing column(s) price_idr_per_m2, listing_count, source (have: date, price, region)",
        ),
        (
            "date,price_idr_per_m2,listing_count,source\n2026-05-25,1,1,x\n",
            "missing column(s) region (or lon and lat) (have: date, listing_count, price_idr_per_m2, source)",
        ),
        (HEADER, "no rows"),
        (
            HEADER + BAD,
            "no valid row (8 rejected; first: market feed feed.csv row 1: date '2026-5-xx' is not YYYY-MM-DD)",
        ),
    ],
)
def test_a_feed_that_is_not_a_feed_is_invalid_input(regions: list[Region], body: str, message: str) -> None:
    with pytest.raises(FeedFormatError) as caught:
        parse_feed(body.encode(), "feed.csv", regions)
    assert str(caught.value) == f"market feed feed.csv: {message}"
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 3


def _rows() -> list[dict[str, object]]:
    return [
        {
            "region": "north_plot",
            "date": "2026-05-25",
            "price_idr_per_m2": 9.5e6,
            "listing_count": 12,
            "source": "A",
        },
        {
            "region": "south_plot",
            "date": "2026-05-26",
            "price_idr_per_m2": 3.1e5,
            "listing_count": 4,
            "source": "A",
        },
    ]


@pytest.mark.parametrize("form", ["csv", "json", "json-rows", "parquet", "parquet-dates", "sniffed-parquet"])
def test_formats(tmp_path: Path, regions: list[Region], form: str) -> None:
    rows = _rows()
    if form == "csv":
        path = tmp_path / "f.csv"
        path.write_text(
            "region,date,price_idr_per_m2,listing_count,source\n"
            + "".join(
                f"{r['region']},{r['date']},{r['price_idr_per_m2']},{r['listing_count']},{r['source']}\n"
                for r in rows
            )
        )
    elif form.startswith("json"):
        path = tmp_path / "f.json"
        path.write_text(json.dumps({"rows": rows} if form == "json-rows" else rows))
    else:
        if form == "parquet-dates":
            rows = [{**r, "date": date.fromisoformat(str(r["date"]))} for r in rows]
        path = tmp_path / ("feed" if form == "sniffed-parquet" else "f.parquet")
        pq.write_table(pa.Table.from_pylist(rows), path)
    data = FeedSource(str(path), cache=None, allow_network=False).load(regions, RUN)
    assert [(p.region, p.date, p.idr_per_m2) for p in data.points] == [
        ("north_plot", date(2026, 5, 25), 9.5e6),
        ("south_plot", date(2026, 5, 26), 3.1e5),
    ]


def test_unreadable_format_is_one_line(tmp_path: Path, regions: list[Region]) -> None:
    path = tmp_path / "f.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(FeedFormatError, match=r"^market feed .*f\.parquet: not readable as parquet: "):
        FeedSource(str(path), cache=None, allow_network=True).load(regions, RUN)
    with pytest.raises(FeedFormatError, match=r"cannot read: No such file"):
        FeedSource(str(tmp_path / "missing.csv"), cache=None, allow_network=True).load(regions, RUN)


TOKEN = "feed-token-7d1c0b9e"


def test_https_feed_with_token_cached_and_reused_offline(
    site: Site, tmp_path: Path, regions: list[Region], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ccapi_monitor")
    url = site.page("/prices.csv", HEADER + GOOD + BAD, content_type="text/csv") + f"?sig={TOKEN}"
    cache = LocalStore(tmp_path / "cache")
    prices = load_land_prices()
    online = FeedSource(url, cache=cache, allow_network=True, token=SecretStr(TOKEN)).load(regions, RUN)
    assert site.hits[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert site.paths() == [f"/prices.csv?sig={TOKEN}"]  # an operator's feed: no robots.txt
    assert len(online.points) == 3
    assert len(online.problems) == 8
    live = region_figures(regions[0], online, RUN, prices)
    assert live.source == "feed"
    assert live.listing_count == 15

    offline = FeedSource(url, cache=cache, allow_network=False, token=SecretStr(TOKEN)).load(regions, RUN)
    assert len(site.hits) == 1
    assert offline.from_cache
    cached = region_figures(regions[0], offline, RUN, prices)
    assert cached.median_idr_per_m2 == live.median_idr_per_m2
    assert cached.fetched_at == live.fetched_at
    assert cached.label == "feed (cached)"

    site.routes.clear()  # the feed goes away: the cached copy again, marked
    gone = FeedSource(url, cache=cache, allow_network=True).load(regions, RUN)
    assert gone.from_cache

    everything = (
        [r.getMessage() for r in caplog.records]
        + [live.model_dump_json(), cached.model_dump_json(), *(str(p) for p in cache.root.rglob("*"))]
        + [p.read_text(errors="replace") for p in cache.root.rglob("*.json")]
    )
    assert not [line for line in everything if TOKEN in line]
    assert TOKEN not in scrub(
        f"urllib3 would log GET /prices.csv?sig={TOKEN}"
    )  # the app's log filter knows it
    assert live.origin == f"{site.url}/prices.csv?…"


def test_unreachable_feed_without_cache_is_a_marked_static_fallback(regions: list[Region]) -> None:
    data = FeedSource("https://127.0.0.1:9/feed.csv", cache=None, allow_network=False).load(regions, RUN)
    figures = region_figures(regions[0], data, RUN, load_land_prices())
    assert (figures.source, figures.requested) == ("static", "feed")
    assert figures.median_idr_per_m2 == 10_000_000
    assert figures.fallback_reason == "scraping disabled (no network)"


def test_region_without_recent_rows_falls_back(regions: list[Region]) -> None:
    points, _ = parse_feed((HEADER + GOOD).encode(), "f.csv", regions)
    from ccapi_monitor.market.base import MarketData

    data = MarketData(source="feed", points=points, history=points)
    later = date(2026, 9, 1)
    figures = region_figures(regions[0], data, later, load_land_prices())
    assert figures.source == "static"
    assert figures.fallback_reason == f"no feed prices for this region in the 28 days to {later}"


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield endpoint
    finally:
        server.stop()


def test_s3_feed(moto_s3: str, regions: list[Region]) -> None:
    s3 = boto3.client("s3", region_name="ap-southeast-3")
    s3.create_bucket(Bucket="feeds", CreateBucketConfiguration={"LocationConstraint": "ap-southeast-3"})
    s3.put_object(Bucket="feeds", Key="market/prices.csv", Body=(HEADER + GOOD).encode())
    data = FeedSource("s3://feeds/market/prices.csv", cache=None, allow_network=True).load(regions, RUN)
    assert len(data.points) == 3
    missing = FeedSource("s3://feeds/market/none.csv", cache=None, allow_network=True).load(regions, RUN)
    assert missing.failure == "unreachable: market feed s3://feeds/market/none.csv: no such object"


def test_packaged_sample_is_what_the_generator_makes() -> None:
    table = pq.read_table(sample_feed_path())
    assert table.to_pylist() == sample_rows(load_regions())
    assert set(table.column("source").to_pylist()) == {SAMPLE_SOURCE}
