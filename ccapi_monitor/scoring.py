"""Investment score: measured change, infrastructure and market tier into one 0..100 figure.

The formula is documented in ``docs/scoring.md``; the constants below are the only
place its numbers live. Everything here is a pure function of its arguments, so the
score of a region can be recomputed from ``report.json`` alone.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.market.models import MarketFigures
from ccapi_monitor.models import InfrastructureResult, InvestmentScore, RegionResult
from ccapi_monitor.params import CLASSES

#: Human labels of the change classes: the one map the score rationale and report.html use.
CLASS_LABELS: Final[dict[str, str]] = {
    "vegetation_clearing": "vegetation clearing",
    "built_up": "built-up",
}
if set(CLASS_LABELS) != set(CLASSES):  # pragma: no cover - guards a future class added to params.py
    raise RuntimeError(f"CLASS_LABELS must name exactly {CLASSES}")

#: Weighted new hectares per km² of region at which activity reaches 63 % (1 - 1/e) of its range.
#: A 0.2° x 0.2° Java region is ~480 km², so 24 weighted new ha in a week scores 63.
ACTIVITY_SCALE_HA_PER_KM2: Final = 0.05
#: Built-up land is construction under way; a clearing may still be plantation turnover.
CLASS_WEIGHTS: Final[dict[str, float]] = {"vegetation_clearing": 0.6, "built_up": 1.0}
#: Shares of the 0..100 score; the market term only counts in proportion to activity.
WEIGHT_ACTIVITY: Final = 0.45
WEIGHT_INFRASTRUCTURE: Final = 0.30
WEIGHT_MARKET: Final = 0.25
#: Live market figures replace the tier price only with at least this many listings behind them.
MIN_MARKET_LISTINGS: Final = 5
BUY_AT: Final = 60.0
WATCH_AT: Final = 35.0

Label = Literal["BUY", "WATCH", "PASS"]


class LandPrice(BaseModel):
    """Benchmark price of developable land in one market tier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: int = Field(ge=1)
    idr_per_m2: float = Field(gt=0, allow_inf_nan=False)
    usd_per_m2: float = Field(gt=0, allow_inf_nan=False)
    description: str = ""
    source: str = ""
    as_of: str = ""


def default_land_prices_path() -> Path:
    """The packaged benchmark table (``ccapi_monitor/data/land_prices.json``)."""
    return Path(str(resources.files("ccapi_monitor") / "data" / "land_prices.json"))


def _rows_from_json(text: str) -> tuple[list[Any], dict[str, str]]:
    document = json.loads(text)
    if isinstance(document, list):
        return document, {}
    if not isinstance(document, dict) or not isinstance(document.get("tiers"), list):
        raise ValueError('expected a list of tiers or an object with a "tiers" list')
    meta = {key: str(document.get(key, "")) for key in ("source", "as_of")}
    return document["tiers"], meta


def _rows_from_csv(text: str) -> list[Any]:
    reader = csv.DictReader(io.StringIO(text))
    required = {"tier", "idr_per_m2", "usd_per_m2"}
    if reader.fieldnames is None or not required <= set(reader.fieldnames):
        raise ValueError(f"CSV header must include {', '.join(sorted(required))}")
    return [{key: value for key, value in row.items() if key and value not in (None, "")} for row in reader]


def load_land_prices(path: Path | None = None) -> dict[int, LandPrice]:
    """Benchmark land price per tier: the packaged table, or a CSV/JSON override file.

    Any problem with the file is an :class:`InvalidInputError` (exit 3 before the run
    starts), since a silently wrong price would skew every score.
    """
    file = path if path is not None else default_land_prices_path()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"land prices: cannot read {file}: {exc.strerror or exc}") from None
    try:
        if file.suffix.lower() == ".csv":
            rows, meta = _rows_from_csv(text), {"source": f"override file {file.name}"}
        else:
            rows, meta = _rows_from_json(text)
        prices: dict[int, LandPrice] = {}
        for row in rows:
            if not isinstance(row, dict):
                raise ValueError(f"tier entry is not an object: {row!r}")
            price = LandPrice.model_validate({**meta, **row})
            if price.tier in prices:
                raise ValueError(f"tier {price.tier} appears twice")
            prices[price.tier] = price
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidInputError(f"land prices: {file}: {exc}") from None
    if not prices:
        raise InvalidInputError(f"land prices: {file} defines no tier")
    return dict(sorted(prices.items()))


def require_tiers(tiers: Iterable[int], prices: Mapping[int, LandPrice]) -> None:
    """Fail before the run (exit 3) when a region's tier has no benchmark price, not mid-run."""
    missing = sorted(set(tiers) - set(prices))
    if missing:
        raise InvalidInputError(
            f"land prices: no benchmark for tier(s) {', '.join(map(str, missing))} (have {sorted(prices)})"
        )


def activity_score(new_area_ha: Mapping[str, float], area_km2: float) -> tuple[float, float]:
    """(weighted new ha per km², activity 0..100): saturating, so one huge site cannot dominate."""
    weighted_ha = sum(CLASS_WEIGHTS[c] * max(0.0, float(new_area_ha.get(c, 0.0))) for c in CLASSES)
    intensity = weighted_ha / area_km2
    return intensity, 100.0 * (1.0 - math.exp(-intensity / ACTIVITY_SCALE_HA_PER_KM2))


def _log_position(price: float, low: float, high: float) -> float:
    """0 at ``high``, 100 at ``low``, on a log scale, clamped (a live price may leave the range)."""
    if high == low:
        return 50.0
    return min(100.0, max(0.0, 100.0 * math.log(high / price) / math.log(high / low)))


def affordability(tier: int, prices: Mapping[int, LandPrice]) -> float:
    """0 for the dearest tier, 100 for the cheapest, on a log scale of the USD price.

    Log scale because tier prices differ by multiples: tier 3 against tier 4 is as much
    a step as tier 1 against tier 2.
    """
    usd = [p.usd_per_m2 for p in prices.values()]
    return _log_position(prices[tier].usd_per_m2, min(usd), max(usd))


def live_affordability(idr_per_m2: float, prices: Mapping[int, LandPrice]) -> float:
    """A live IDR price on the same scale: the table's dearest and cheapest tiers are 0 and 100."""
    idr = [p.idr_per_m2 for p in prices.values()]
    return _log_position(idr_per_m2, min(idr), max(idr))


def uses_live_market(market: MarketFigures | None) -> bool:
    """Live figures count when they are live and at least ``MIN_MARKET_LISTINGS`` listings back them."""
    return market is not None and market.source != "static" and market.listing_count >= MIN_MARKET_LISTINGS


def _market_note(
    tier: int, prices: Mapping[int, LandPrice], market: MarketFigures | None
) -> tuple[float, str]:
    """The market term's input 0..100 and how the rationale names its source and listings."""
    if market is not None and uses_live_market(market):
        value = live_affordability(market.median_idr_per_m2, prices)
        trend = f", {market.trend.pct_per_week:+.1f} %/week" if market.trend is not None else ""
        return value, (
            f"land at a median IDR {market.median_idr_per_m2:,.0f}/m² from {market.label} "
            f"({market.listing_count} listings{trend}; market {value:.0f}/100)"
        )
    price = prices[tier]
    value = affordability(tier, prices)
    if market is None or market.requested == "static":
        why = "static tier table"
    elif market.source != "static":
        why = f"static tier table: {market.label} had {market.listing_count} listings, {MIN_MARKET_LISTINGS} needed"
    else:
        why = f"static tier table: {market.requested} unavailable, {market.fallback_reason}"
    return value, (
        f"tier {tier} land at about IDR {price.idr_per_m2:,.0f}/m² "
        f"(USD {price.usd_per_m2:,.0f}, {why}; market {value:.0f}/100)"
    )


def label_for(value: float) -> Label:
    if value >= BUY_AT:
        return "BUY"
    if value >= WATCH_AT:
        return "WATCH"
    return "PASS"


def _infrastructure_note(infrastructure: InfrastructureResult | None) -> tuple[float | None, str]:
    """The usable infrastructure score, and how the rationale describes it."""
    if infrastructure is None:
        return None, "infrastructure not used (no infrastructure result)"
    if infrastructure.status == "off" or infrastructure.source == "off":
        return None, "infrastructure not used (source off)"
    if infrastructure.status == "error":
        return None, f"infrastructure not used ({infrastructure.source} failed)"
    if infrastructure.score is None or not math.isfinite(infrastructure.score):
        return None, "infrastructure not used (no score)"
    score = min(100.0, max(0.0, infrastructure.score))
    stale = " from stale cache" if infrastructure.status == "stale" else ""
    return score, f"infrastructure {score:.0f}/100{stale}"


def score_region(
    *,
    new_area_ha: dict[str, float] | None,
    area_km2: float,
    infrastructure: InfrastructureResult | None,
    tier: int,
    prices: Mapping[int, LandPrice],
    market: MarketFigures | None = None,
) -> InvestmentScore:
    """Score one region (docs/scoring.md).

    ``score = 0.45 A + 0.30 I + 0.25 M * A / 100`` with activity ``A``, infrastructure
    ``I`` and market affordability ``M`` all 0..100; without ``I`` the other weights are
    rescaled to fill 0..100. ``M`` comes from live ``market`` figures where
    :func:`uses_live_market`, else from the tier table. ``new_area_ha`` is ``None`` for a
    failed or insufficiently observed region: no score, and the rationale says so.
    """
    if tier not in prices:
        raise InvalidInputError(f"no land-price benchmark for tier {tier} (have {sorted(prices)})")
    if not area_km2 > 0:
        raise InvalidInputError(f"region area must be positive, got {area_km2!r} km2")
    if new_area_ha is None:
        return InvestmentScore(
            value=None,
            label=None,
            rationale="Not scored: the region has no usable detection result this week "
            "(failed or too few clear observations).",
        )
    intensity, activity = activity_score(new_area_ha, area_km2)
    market_value, market_note = _market_note(tier, prices, market)
    infra, infra_note = _infrastructure_note(infrastructure)
    market_term = WEIGHT_MARKET * market_value * activity / 100.0
    if infra is None:
        value = (WEIGHT_ACTIVITY * activity + market_term) / (WEIGHT_ACTIVITY + WEIGHT_MARKET)
    else:
        value = WEIGHT_ACTIVITY * activity + WEIGHT_INFRASTRUCTURE * infra + market_term
    value = round(min(100.0, max(0.0, value)), 1)
    label = label_for(value)
    live = uses_live_market(market)
    new_parts = " and ".join(f"{new_area_ha.get(c, 0.0):.1f} ha new {CLASS_LABELS[c]}" for c in CLASSES)
    rationale = (
        f"{label} at {value:.0f}/100: {new_parts} in {area_km2:,.0f} km² "
        f"(activity {activity:.0f}/100), {infra_note}, {market_note}."
    )
    components = {
        "activity": round(activity, 2),
        "weighted_new_ha_per_km2": round(intensity, 5),
        "market": round(market_value, 2),
        "market_live": 1.0 if live else 0.0,
        "land_price_usd_per_m2": prices[tier].usd_per_m2,
        "land_price_idr_per_m2": market.median_idr_per_m2
        if market is not None and live
        else prices[tier].idr_per_m2,
        **{f"new_{c}_ha_per_km2": round(new_area_ha.get(c, 0.0) / area_km2, 5) for c in CLASSES},
    }
    if infra is not None:
        components["infrastructure"] = round(infra, 2)
    return InvestmentScore(
        value=value,
        label=label,
        rationale=rationale,
        components=components,
        infrastructure_used=infra is not None,
    )


def rank_order(regions: Iterable[RegionResult]) -> list[RegionResult]:
    """Scored regions by score (highest first), then unscored ok, insufficient, failed: the
    order of the report page, the terminal summary and the callback's ``top_regions``."""
    status_order = {"ok": 0, "insufficient_observations": 1, "failed": 2}

    def key(r: RegionResult) -> tuple[int, float, str]:
        value = r.score.value if r.score is not None else None
        if value is not None:
            return (0, -value, r.name)
        return (1 + status_order[r.status], 0.0, r.name)

    return sorted(regions, key=key)
