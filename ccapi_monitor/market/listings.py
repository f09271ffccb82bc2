"""The ``listings`` source: schema.org structured data on operator-configured listing pages.

Pages are read through the structured data they publish for search engines (JSON-LD and
microdata, extracted by ``extruct``), never through site-specific HTML: a
``RealEstateListing`` / ``Offer`` / ``Product`` / ``Accommodation`` with an ``Offer``
price (or a ``PriceSpecification`` per m², are or hectare), a ``QuantitativeValue``
land (``lotSize``) or floor size (``floorSize``), and ``GeoCoordinates``. Prices may be in
Indonesian notation (:mod:`ccapi_monitor.market.parsing`).

A listing is assigned to the regions holding its coordinates; without coordinates, to the
region its page was configured for (``REGION=URL``); else it is dropped with a line.
Pages go through :class:`~ccapi_monitor.market.fetch.PoliteFetcher` and are cached
for ``PAGE_TTL`` in the cache store; each run's points are kept as history for the trend.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import extruct

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.market.base import (
    CACHE_PREFIX,
    MarketData,
    MarketSource,
    cache_key,
    now_utc,
    read_cached,
    write_cached,
)
from ccapi_monitor.market.errors import MarketError
from ccapi_monitor.market.feed import RegionLocator
from ccapi_monitor.market.fetch import PoliteFetcher, redact_url
from ccapi_monitor.market.figures import TREND_WEEKS
from ccapi_monitor.market.models import PricePoint
from ccapi_monitor.market.parsing import NotationError, Price, parse_area, parse_number, parse_price
from ccapi_monitor.regions import Region
from ccapi_monitor.storage import Store

log = logging.getLogger(__name__)

PAGE_TTL: Final = timedelta(days=7)
LISTING_TYPES: Final = frozenset(
    {"RealEstateListing", "Offer", "Product", "Accommodation", "House", "SingleFamilyResidence", "Apartment"}
)
#: UN/CEFACT area codes schema.org uses in ``unitCode``, in m².
UNIT_CODES: Final[dict[str, float]] = {"MTK": 1.0, "ARE": 100.0, "HAR": 10_000.0, "FTK": 0.09290304}
#: Land size first: the price per m² of a plot is what the score compares.
SIZE_KEYS: Final = ("lotSize", "landSize", "floorSize", "size")
PAGE_WORKERS: Final = 4
SYNTAXES: Final = ("json-ld", "microdata")


@dataclass(frozen=True)
class ListingPage:
    """A configured page: ``URL`` or ``REGION=URL``."""

    url: str
    region: str | None = None


def parse_listing_pages(values: Sequence[str]) -> list[ListingPage]:
    """Validate ``URL`` / ``REGION=URL`` entries (invalid input, exit 3, on the first bad one)."""
    pages = []
    for value in values:
        region, sep, url = value.strip().partition("=")
        if not sep or region.startswith(("http://", "https://")):
            region, url = "", value.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"market listing URL must be http(s)://host/...: {redact_url(url)!r}")
        pages.append(ListingPage(url=url, region=region.strip() or None))
    return pages


@dataclass(frozen=True)
class Listing:
    """One priced listing read from a page."""

    url: str
    idr_per_m2: float
    lon: float | None = None
    lat: float | None = None


def _types(node: dict[str, Any]) -> set[str]:
    raw = node.get("@type", [])
    names = raw if isinstance(raw, list) else [raw]
    return {str(n).rstrip("/").rsplit("/", 1)[-1] for n in names}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every object below ``node``, breadth first (nearest properties win)."""
    queue = deque([node])
    while queue:
        item = queue.popleft()
        if isinstance(item, dict):
            yield item
            queue.extend(item.values())
        elif isinstance(item, list):
            queue.extend(item)


def _first(node: Any, key: str) -> Any:
    return next((item[key] for item in _walk(node) if item.get(key) not in (None, "", [])), None)


def _candidates(items: Sequence[Any]) -> Iterator[dict[str, Any]]:
    """Top-level listing nodes: items, ``@graph`` members and ``ItemList`` elements."""
    for item in items:
        if not isinstance(item, dict):
            continue
        if "@graph" in item:
            yield from _candidates(item["@graph"] if isinstance(item["@graph"], list) else [item["@graph"]])
        elif "ItemList" in _types(item):
            elements = item.get("itemListElement") or []
            elements = elements if isinstance(elements, list) else [elements]
            yield from _candidates(
                [e.get("item", e) if isinstance(e, dict) and "ListItem" in _types(e) else e for e in elements]
            )
        elif _types(item) & LISTING_TYPES:
            yield item


def _unit_m2(code: Any, text: Any) -> float | None:
    if code and str(code).upper() in UNIT_CODES:
        return UNIT_CODES[str(code).upper()]
    if text:
        try:
            return parse_area("1 " + str(text).strip().removeprefix("per ").removeprefix("/").strip())
        except NotationError:
            return None
    return None


def _price(node: dict[str, Any]) -> Price:
    """The listing's price from its Offer or PriceSpecification, with its per-area basis."""
    holder = next((item for item in _walk(node) if "price" in item or "priceSpecification" in item), None)
    if holder is None:
        raise NotationError("no price")
    spec = holder.get("priceSpecification")
    specs = spec if isinstance(spec, list) else [spec] if isinstance(spec, dict) else []
    source = next((s for s in specs if s.get("price") not in (None, "")), holder)
    currency = source.get("priceCurrency") or holder.get("priceCurrency")
    if currency and str(currency).upper() != "IDR":
        raise NotationError(f"price in {currency}, not IDR")
    value = source.get("price")
    if value in (None, ""):
        raise NotationError("no price")
    price = Price(float(value)) if isinstance(value, int | float) else parse_price(str(value))
    reference = source.get("referenceQuantity")
    reference = reference if isinstance(reference, dict) else {}
    unit = _unit_m2(
        source.get("unitCode") or reference.get("unitCode"),
        source.get("unitText") or reference.get("unitText"),
    )
    if price.basis == "total" and unit is not None:
        amount = float(reference.get("value") or 1)
        return Price(price.idr / (unit * amount), "m2")
    return price


def _size_m2(node: dict[str, Any]) -> float | None:
    for key in SIZE_KEYS:
        value = _first(node, key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, dict):
            number = value.get("value")
            if number in (None, ""):
                continue
            scale = _unit_m2(value.get("unitCode"), value.get("unitText")) or 1.0
            amount = float(number) if isinstance(number, int | float) else parse_number(str(number))
            return amount * scale
        return parse_area(str(value))
    return None


def _geo(node: dict[str, Any]) -> tuple[float, float] | None:
    for item in _walk(node):
        if "latitude" in item and "longitude" in item:
            try:
                return float(item["longitude"]), float(item["latitude"])
            except (TypeError, ValueError):
                return None
    return None


def extract_listings(html: str, page_url: str) -> tuple[list[Listing], list[str]]:
    """Priced listings in a page's JSON-LD and microdata, and one line per listing skipped."""
    items: list[Any] = []
    problems: list[str] = []
    # One syntax at a time: a broken JSON-LD block must not hide the page's microdata.
    for syntax in SYNTAXES:
        try:
            items += extruct.extract(html, base_url=page_url, syntaxes=[syntax], uniform=True).get(syntax, [])
        except Exception as exc:  # extruct surfaces lxml / json errors of many kinds for broken markup
            problems.append(f"{redact_url(page_url)}: {syntax} unreadable: {type(exc).__name__}")
    listings: list[Listing] = []
    for index, node in enumerate(_candidates(items), start=1):
        url = urljoin(page_url, str(node.get("url") or _first(node, "url") or page_url))
        try:
            price = _price(node)
            per_m2 = price.per_m2(None if price.basis != "total" else _size_m2(node))
        except (NotationError, ValueError) as exc:
            problems.append(f"{redact_url(page_url)} listing {index}: {exc}")
            continue
        geo = _geo(node)
        listings.append(
            Listing(url=url, idr_per_m2=per_m2, lon=geo[0] if geo else None, lat=geo[1] if geo else None)
        )
    return listings, problems


class ListingsSource(MarketSource):
    """Prices of listings on configured pages, politely fetched and cached for a week."""

    name = "listings"

    def __init__(
        self,
        pages: Sequence[ListingPage],
        *,
        cache: Store | None,
        allow_network: bool,
        fetcher: PoliteFetcher | None = None,
        now: Callable[[], datetime] = now_utc,
    ) -> None:
        self.pages = list(pages)
        self.cache = cache
        self.allow_network = allow_network
        self.fetcher = fetcher
        self.now = now

    def _page(self, page: ListingPage, run_date: date) -> tuple[dict[str, Any] | None, str | None]:
        """The page's listings (cached or fetched), or why there are none."""
        key = cache_key("listings/pages", page.url)
        cached = read_cached(self.cache, key)
        fresh = cached is not None and self.now() - datetime.fromisoformat(cached["fetched_at"]) < PAGE_TTL
        if cached is not None and (fresh or not self.allow_network):
            return {**cached, "from_cache": True}, None
        if not self.allow_network:
            return None, f"{redact_url(page.url)}: not fetched (scraping disabled) and not cached"
        if self.fetcher is None:
            return None, f"{redact_url(page.url)}: no fetcher"
        try:
            fetched = self.fetcher.get(page.url)
        except MarketError as exc:
            if cached is not None:
                log.warning("market listings: %s; using the copy fetched at %s", exc, cached["fetched_at"])
                return {**cached, "from_cache": True}, None
            return None, str(exc)
        listings, problems = extract_listings(fetched.text, page.url)
        document = {
            "fetched_at": self.now().isoformat(timespec="seconds"),
            "observed_on": run_date.isoformat(),
            "listings": [asdict(item) for item in listings],
            "problems": problems,
        }
        write_cached(self.cache, key, document)
        return {**document, "from_cache": False}, None

    def load(self, regions: Sequence[Region], run_date: date) -> MarketData:
        if self.fetcher is None and self.allow_network:
            self.fetcher = PoliteFetcher()
        # One worker per host: a host's pages wait on its interval anyway, other hosts need not.
        by_host: dict[str, list[int]] = defaultdict(list)
        for index, page in enumerate(self.pages):
            by_host[urlsplit(page.url).netloc].append(index)
        found: dict[int, tuple[dict[str, Any] | None, str | None]] = {}

        def read_host(indices: list[int]) -> None:
            for index in indices:
                found[index] = self._page(self.pages[index], run_date)

        with ThreadPoolExecutor(max_workers=PAGE_WORKERS, thread_name_prefix="market") as pool:
            list(pool.map(read_host, by_host.values()))
        results = [found[index] for index in range(len(self.pages))]
        locator = RegionLocator(regions)
        points: list[PricePoint] = []
        problems: list[str] = []
        read = [doc for doc, _ in results if doc is not None]
        for page, (document, failure) in zip(self.pages, results, strict=True):
            if document is None:
                problems.append(failure or f"{redact_url(page.url)}: not read")
                continue
            problems.extend(document.get("problems", []))
            for item in document["listings"]:
                listing = Listing(**item)
                if listing.lon is not None and listing.lat is not None:
                    names = locator.at(listing.lon, listing.lat)
                else:
                    names = [page.region] if page.region in locator.names else []
                if not names and listing.lon is None and page.region is None:
                    problems.append(f"{redact_url(listing.url)}: no coordinates and no region for its page")
                points.extend(
                    PricePoint(
                        region=name,
                        date=date.fromisoformat(document["observed_on"]),
                        idr_per_m2=listing.idr_per_m2,
                        source=urlsplit(page.url).hostname or "",
                        url=listing.url,
                    )
                    for name in names
                )
        for line in problems:
            log.warning("market listings: %s", line)
        origin = f"{len(self.pages)} listing page(s)"
        if not read:
            first = problems[0] if problems else "no listing page configured"
            return MarketData(
                source="listings", origin=origin, problems=problems, failure=f"no page read: {first}"
            )
        return MarketData(
            source="listings",
            points=points,
            history=self._history(points, run_date),
            fetched_at=min(str(doc["fetched_at"]) for doc in read),
            from_cache=all(doc["from_cache"] for doc in read),
            origin=origin,
            problems=problems,
        )

    def _history(self, points: list[PricePoint], run_date: date) -> list[PricePoint]:
        """This run's points plus those kept by earlier runs of the last ``TREND_WEEKS`` weeks."""
        prefix = f"{CACHE_PREFIX}/listings/history/"
        write_cached(
            self.cache,
            f"{prefix}{run_date.isoformat()}.json",
            {"points": [p.model_dump(mode="json") for p in points]},
        )
        if self.cache is None:
            return points
        start = run_date - timedelta(weeks=TREND_WEEKS)
        seen: dict[tuple[str, str | None, date], PricePoint] = {}
        for key in self.cache.list_keys(prefix):
            stem = key.removeprefix(prefix).removesuffix(".json")
            try:
                day = date.fromisoformat(stem)
            except ValueError:
                continue
            if not start < day <= run_date:
                continue
            document = read_cached(self.cache, key) or {}
            for raw in document.get("points", []):
                point = PricePoint.model_validate(raw)
                seen[(point.region, point.url, point.date)] = point
        return list(seen.values())
