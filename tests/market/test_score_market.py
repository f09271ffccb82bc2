"""The score's market term: live figures with enough listings, else the tier table, and the rationale says which."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccapi_monitor.market.models import MarketFigures, MarketTrend
from ccapi_monitor.scoring import (
    MIN_MARKET_LISTINGS,
    affordability,
    live_affordability,
    load_land_prices,
    score_region,
)

PRICES = load_land_prices()
AREA = {"vegetation_clearing": 4.0, "built_up": 12.0}


def figures(median: float, listings: int, **extra: object) -> MarketFigures:
    values: dict[str, object] = {
        "requested": "feed",
        "source": "feed",
        "median_idr_per_m2": median,
        "listing_count": listings,
        "static_idr_per_m2": PRICES[2].idr_per_m2,
        "tier": 2,
        **extra,
    }
    return MarketFigures.model_validate(values)


def score(market: MarketFigures | None):
    return score_region(
        new_area_ha=AREA, area_km2=480, infrastructure=None, tier=2, prices=PRICES, market=market
    )


def test_live_figures_with_enough_listings_drive_the_market_term() -> None:
    trend = MarketTrend(
        pct_per_week=0.5,
        low_pct_per_week=0.1,
        high_pct_per_week=0.9,
        confidence=0.9,
        weeks=12,
        first_week=date(2026, 3, 9),
        last_week=date(2026, 5, 25),
    )
    live = figures(1_000_000, MIN_MARKET_LISTINGS, trend=trend)
    result = score(live)
    assert result.components["market"] == pytest.approx(
        affordability(3, PRICES), abs=0.01
    )  # tier-3 price level
    assert result.components["market_live"] == 1.0
    assert result.components["land_price_idr_per_m2"] == 1_000_000
    assert (
        f"median IDR 1,000,000/m² from feed ({MIN_MARKET_LISTINGS} listings, +0.5 %/week; market"
        in result.rationale
    )
    assert result.value is not None
    assert score(None).value is not None
    assert result.value > score(None).value  # cheaper than the tier says, same activity


def test_too_few_listings_use_the_table_and_say_how_many() -> None:
    result = score(figures(1_000_000, MIN_MARKET_LISTINGS - 1))
    assert result.components["market_live"] == 0.0
    assert result.components["market"] == pytest.approx(affordability(2, PRICES), abs=0.01)
    assert (
        f"tier 2 land at about IDR 3,500,000/m² (USD 219, static tier table: feed had "
        f"{MIN_MARKET_LISTINGS - 1} listings, {MIN_MARKET_LISTINGS} needed;" in result.rationale
    )


def test_fallback_reason_reaches_the_rationale() -> None:
    fallback = figures(
        PRICES[2].idr_per_m2,
        0,
        source="static",
        fallback_reason="unreachable: https://h/feed.csv?…: HTTP 503",
    )
    result = score(fallback)
    assert result.components["market_live"] == 0.0
    assert (
        "static tier table: feed unavailable, unreachable: https://h/feed.csv?…: HTTP 503" in result.rationale
    )
    assert result.value == score(None).value


def test_static_run_is_labelled_static() -> None:
    static = figures(PRICES[2].idr_per_m2, 0, requested="static", source="static")
    assert "(USD 219, static tier table; market" in score(static).rationale


@given(
    cheaper=st.floats(min_value=1e4, max_value=5e7, allow_nan=False),
    factor=st.floats(min_value=1.0, max_value=20.0, allow_nan=False),
)
def test_cheaper_live_land_never_scores_lower(cheaper: float, factor: float) -> None:
    low, high = score(figures(cheaper, 50)), score(figures(cheaper * factor, 50))
    assert low.value is not None
    assert high.value is not None
    assert low.value >= high.value
    assert 0.0 <= live_affordability(cheaper, PRICES) <= 100.0
