"""The ``feed`` source: an operator's price feed at a URI (local, ``s3://`` or ``https://``).

Formats: CSV, JSON (a list of objects, or ``{"rows": [...]}``) or Parquet, chosen by the
file's suffix, else by its first bytes. Columns (docs/market.md, "Feed"): ``region`` or
``lon`` + ``lat``, ``date``, ``price_idr_per_m2``, ``listing_count``, ``source``.

Validation: a feed without the required columns, in no format we read, or without one
valid row is invalid input (:class:`FeedFormatError`, exit 3, one line). A bad row is
dropped with one line naming the row and the field; good rows are kept. Credentials
(a bearer token, or a signed URL's query) never appear in logs, reports or cache keys'
readable form: the URI is shown through :func:`redact_url`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import urlsplit

import shapely
from pydantic import SecretStr

from ccapi_monitor.errors import StoreError
from ccapi_monitor.logs import register_secret
from ccapi_monitor.market.base import MarketData, MarketSource, cache_key, now_utc, read_cached, write_cached
from ccapi_monitor.market.errors import FeedFormatError, MarketError
from ccapi_monitor.market.fetch import PoliteFetcher, redact_url
from ccapi_monitor.market.models import PricePoint
from ccapi_monitor.regions import Region
from ccapi_monitor.storage import Store
from ccapi_monitor.store_factory import open_store

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: Final = ("date", "price_idr_per_m2", "listing_count", "source")
#: Rejected rows named one by one in the log; the rest are counted.
MAX_LOGGED_PROBLEMS: Final = 20


def is_remote(uri: str) -> bool:
    return uri.startswith(("s3://", "http://", "https://"))


def _records(raw: bytes, name: str) -> tuple[list[dict[str, Any]], set[str]]:
    """Rows and column names of a CSV, JSON or Parquet document."""
    suffix = PurePosixPath(urlsplit(name).path).suffix.lower()
    head = raw.lstrip()[:1]
    kind = suffix.lstrip(".") if suffix in (".csv", ".json", ".parquet") else None
    if kind is None:
        kind = "parquet" if raw.startswith(b"PAR1") else "json" if head in (b"[", b"{") else "csv"
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq  # only for Parquet feeds: pyarrow is slow to import

            table = pq.ParquetFile(io.BytesIO(raw)).read()
            return table.to_pylist(), set(table.column_names)
        if kind == "json":
            document = json.loads(raw)
            rows = document.get("rows") if isinstance(document, dict) else document
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError('expected a list of objects or {"rows": [...]}')
            return rows, set().union(*(r.keys() for r in rows)) if rows else set()
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
        rows = list(reader)
        return rows, set(reader.fieldnames or ())
    except (ValueError, UnicodeDecodeError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise FeedFormatError(f"market feed {redact_url(name)}: not readable as {kind}: {exc}") from None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _row_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(_text(value)[:10])
    except ValueError:
        raise ValueError(f"date {_text(value)!r} is not YYYY-MM-DD") from None


def _row_price(value: Any) -> float:
    try:
        price = float(_text(value))
    except ValueError:
        raise ValueError(f"price_idr_per_m2 {_text(value)!r} is not a number") from None
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price_idr_per_m2 {_text(value)!r} must be a positive number")
    return price


def _row_count(value: Any) -> int:
    try:
        count = float(_text(value))
    except ValueError:
        count = -1.0
    if not (count >= 1 and count.is_integer()):
        raise ValueError(f"listing_count {_text(value)!r} must be a whole number >= 1")
    return int(count)


class RegionLocator:
    """Names the regions holding a lon/lat (all of them where regions overlap)."""

    def __init__(self, regions: Sequence[Region]) -> None:
        self.names = {r.name for r in regions}
        self._regions = list(regions)
        for region in self._regions:
            shapely.prepare(region.geometry)

    def at(self, lon: float, lat: float) -> list[str]:
        return [r.name for r in self._regions if shapely.contains_xy(r.geometry, lon, lat)]


def _row_regions(row: dict[str, Any], locator: RegionLocator, columns: set[str]) -> list[str] | None:
    """Region names of a row; ``None`` for a region named but not in this run."""
    name = _text(row.get("region"))
    if name:
        return [name] if name in locator.names else None
    if not {"lon", "lat"} <= columns:
        raise ValueError("region is empty and the feed has no lon/lat columns")
    try:
        lon, lat = float(_text(row.get("lon"))), float(_text(row.get("lat")))
    except ValueError:
        raise ValueError(
            f"lon/lat {_text(row.get('lon'))!r}/{_text(row.get('lat'))!r} are not numbers"
        ) from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"lon/lat {lon}/{lat} out of range")
    return locator.at(lon, lat)


def parse_feed(raw: bytes, name: str, regions: Sequence[Region]) -> tuple[list[PricePoint], list[str]]:
    """Valid points of the feed's rows for ``regions``, and one line per rejected row."""
    rows, columns = _records(raw, name)
    shown = redact_url(name)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if "region" not in columns and not {"lon", "lat"} <= columns:
        missing.append("region (or lon and lat)")
    if missing:
        have = ", ".join(sorted(columns)) or "none"
        raise FeedFormatError(f"market feed {shown}: missing column(s) {', '.join(missing)} (have: {have})")
    if not rows:
        raise FeedFormatError(f"market feed {shown}: no rows")
    locator = RegionLocator(regions)
    points: list[PricePoint] = []
    problems: list[str] = []
    elsewhere = 0
    for number, row in enumerate(rows, start=1):
        try:
            names = _row_regions(row, locator, columns)
            fields = {
                "date": _row_date(row.get("date")),
                "idr_per_m2": _row_price(row.get("price_idr_per_m2")),
                "listings": _row_count(row.get("listing_count")),
                "source": _text(row.get("source")),
            }
            if not fields["source"]:
                raise ValueError("source is empty")
        except ValueError as exc:
            problems.append(f"market feed {shown} row {number}: {exc}")
            continue
        if not names:
            elsewhere += 1
            continue
        points.extend(PricePoint(region=region, **fields) for region in names)
    if elsewhere:
        log.info("market feed %s: %d rows are for regions outside this run", shown, elsewhere)
    valid = len(rows) - len(problems)
    if valid == 0:
        raise FeedFormatError(
            f"market feed {shown}: no valid row ({len(problems)} rejected; first: {problems[0]})"
        )
    return points, problems


class FeedSource(MarketSource):
    """Prices from an operator's feed; cached with the fetch time, reused when offline."""

    name = "feed"

    def __init__(
        self,
        uri: str,
        *,
        cache: Store | None,
        allow_network: bool,
        token: SecretStr | None = None,
        synthetic: bool = False,
        fetcher: Callable[[], PoliteFetcher] | None = None,
    ) -> None:
        self.uri = uri
        # Logs are scrubbed of registered secrets: the token and a URL's password or signed query.
        parts = urlsplit(uri)
        for secret in (token.get_secret_value() if token else None, parts.password, parts.query):
            register_secret(secret)
        self.cache = cache
        self.allow_network = allow_network
        self.token = token
        self.synthetic = synthetic
        self._fetcher = fetcher

    @property
    def origin(self) -> str:
        if self.synthetic:
            return f"packaged synthetic sample ({PurePosixPath(self.uri).name})"
        return redact_url(self.uri)

    def _read(self) -> bytes:
        if self.uri.startswith(("http://", "https://")):
            headers = {"Authorization": f"Bearer {self.token.get_secret_value()}"} if self.token else None
            fetcher = self._fetcher() if self._fetcher else PoliteFetcher(headers=headers)
            try:
                return fetcher.get(self.uri, robots=False).body
            finally:
                fetcher.close()
        if self.uri.startswith("s3://"):
            parent, _, key = self.uri.rpartition("/")
            try:
                data = open_store(parent).read_bytes(key)
            except StoreError as exc:
                raise MarketError(f"market feed {self.origin}: {exc}") from None
            if data is None:
                raise MarketError(f"market feed {self.origin}: no such object")
            return data
        path = Path(self.uri.removeprefix("file://")).expanduser()
        try:
            return path.read_bytes()
        except OSError as exc:
            raise FeedFormatError(f"market feed {path}: cannot read: {exc.strerror or exc}") from None

    def _loaded(self, raw: bytes, regions: Sequence[Region], fetched_at: str, from_cache: bool) -> MarketData:
        points, problems = parse_feed(raw, self.uri, regions)
        _log_problems(problems)
        return MarketData(
            source="feed",
            points=points,
            history=points,
            fetched_at=fetched_at,
            from_cache=from_cache,
            synthetic=self.synthetic,
            origin=self.origin,
            problems=problems,
        )

    def _from_cache(self, key: str, why: str, regions: Sequence[Region]) -> MarketData:
        """The last fetched copy of the feed, or a failure saying why there is none."""
        meta = read_cached(self.cache, key + ".json")
        raw = self.cache.read_bytes(key + ".data") if meta is not None and self.cache is not None else None
        if meta is None or raw is None:
            return MarketData(source="feed", synthetic=self.synthetic, origin=self.origin, failure=why)
        log.warning("market feed %s: %s; using the copy fetched at %s", self.origin, why, meta["fetched_at"])
        return self._loaded(raw, regions, str(meta["fetched_at"]), from_cache=True)

    def load(self, regions: Sequence[Region], run_date: date) -> MarketData:
        key = cache_key("feed", self.uri).removesuffix(".json")
        if is_remote(self.uri) and not self.allow_network:
            return self._from_cache(key, "scraping disabled (no network)", regions)
        try:
            raw = self._read()
        except MarketError as exc:
            return self._from_cache(key, f"unreachable: {exc}", regions)
        fetched_at = now_utc().isoformat(timespec="seconds")
        data = self._loaded(raw, regions, fetched_at, from_cache=False)
        if is_remote(self.uri) and self.cache is not None:
            try:
                self.cache.write_bytes(key + ".data", raw)
            except StoreError as exc:
                log.warning("market feed %s: cache copy not written: %s", self.origin, exc)
            else:
                write_cached(self.cache, key + ".json", {"origin": self.origin, "fetched_at": fetched_at})
        return data


def _log_problems(problems: Iterable[str]) -> None:
    problems = list(problems)
    for line in problems[:MAX_LOGGED_PROBLEMS]:
        log.warning("%s", line)
    if len(problems) > MAX_LOGGED_PROBLEMS:
        log.warning("market: %d more rejected rows not shown", len(problems) - MAX_LOGGED_PROBLEMS)
