"""Median, IQR, the outlier rule and the Theil-Sen trend on histories of known slope."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from ccapi_monitor.market.figures import (
    MIN_TREND_WEEKS,
    RECENT_DAYS,
    TREND_CONFIDENCE,
    summarize,
    theil_sen,
    trend,
    without_outliers,
)
from ccapi_monitor.market.models import PricePoint

RUN = date(2026, 6, 1)


def point(price: float, days_ago: int = 0, listings: int = 1, region: str = "r") -> PricePoint:
    return PricePoint(region=region, date=RUN - timedelta(days=days_ago), idr_per_m2=price, listings=listings)


def test_median_iqr_and_count_of_recent_points() -> None:
    points = [point(p, days_ago=i) for i, p in enumerate([1e6, 2e6, 3e6, 4e6, 5e6])]
    points.append(point(9e9, days_ago=RECENT_DAYS))  # one day too old: not in the window
    summary = summarize(points, RUN)
    assert summary is not None
    assert (summary.median, summary.q1, summary.q3) == (3e6, 2e6, 4e6)
    assert summary.listings == 5
    assert summary.outliers_removed == 0
    assert summary.as_of == RUN


def test_listing_counts_weigh_the_median() -> None:
    summary = summarize([point(1e6, listings=9), point(5e6, listings=1)], RUN)
    assert summary is not None
    assert summary.median == 1e6
    assert summary.listings == 10


def test_outliers_are_fenced_on_log_price() -> None:
    typical = [point(1e6 * f) for f in (0.8, 0.9, 1.0, 1.1, 1.2, 1.25)]
    far = [point(2e7), point(3e4)]  # 20x and 1/33 of the median
    kept, removed = without_outliers(typical + far)
    assert kept == typical
    assert removed == 2
    summary = summarize(typical + far, RUN)
    assert summary is not None
    assert summary.outliers_removed == 2
    assert summary.listings == 6


def test_few_points_keep_their_outliers() -> None:
    points = [point(1e6), point(1.1e6), point(5e7), point(1.05e6)]
    assert without_outliers(points) == (points, 0)


def test_no_recent_points_no_summary() -> None:
    assert summarize([point(1e6, days_ago=60)], RUN) is None


@pytest.mark.parametrize("pct_per_week", [-1.5, 0.0, 0.4, 2.0])
def test_trend_recovers_a_known_slope(pct_per_week: float) -> None:
    rate = math.log1p(pct_per_week / 100)
    history = [point(2e6 * math.exp(-rate * w), days_ago=7 * w) for w in range(12)]
    found, note = trend(history, RUN)
    assert note is None
    assert found is not None
    assert found.pct_per_week == pytest.approx(pct_per_week, abs=1e-6)
    assert found.weeks == 12
    assert found.confidence == TREND_CONFIDENCE
    assert found.first_week == RUN - timedelta(weeks=11)


def test_trend_interval_holds_the_slope_under_noise() -> None:
    rng = np.random.default_rng(7)
    rate = math.log1p(0.01)  # +1 % a week
    history = [
        point(
            3e6 * math.exp(-rate * w + rng.normal(0, 0.02)),
            days_ago=7 * w + int(rng.integers(0, 7)),
            listings=3,
        )
        for w in range(12)
        for _ in range(5)
    ]
    history += [point(9e7, days_ago=7 * w) for w in range(0, 12, 3)]  # a dear plot now and then
    found, _ = trend(history, RUN)
    assert found is not None
    assert found.low_pct_per_week <= 1.0 <= found.high_pct_per_week
    assert found.pct_per_week == pytest.approx(1.0, abs=0.4)
    assert found.low_pct_per_week < found.pct_per_week < found.high_pct_per_week


def test_too_few_weeks_give_no_trend_and_say_why() -> None:
    history = [point(1e6, days_ago=7 * w) for w in range(MIN_TREND_WEEKS - 1)]
    history.append(point(1e6, days_ago=7 * 13))  # older than the 12-week window
    found, note = trend(history, RUN)
    assert found is None
    assert (
        note
        == f"no trend: {MIN_TREND_WEEKS - 1} of the last 12 weeks have prices (at least {MIN_TREND_WEEKS} needed)"
    )


@pytest.mark.parametrize("seed", range(40))
def test_theil_sen_is_scipy_theilslopes(seed: int) -> None:
    """The numpy Theil-Sen (no scipy.stats import at run start) gives scipy's slope and interval,
    ties included (rounded medians repeat)."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 13))
    x = -np.sort(rng.choice(12, size=n, replace=False)).astype(float)
    y = np.round(rng.normal(0.0, 0.05, n) + 0.01 * x, int(rng.integers(1, 4)))
    confidence = float(rng.choice([0.8, 0.9, 0.95]))
    expected = stats.theilslopes(y, x, alpha=confidence)
    assert theil_sen(x, y, confidence) == (expected.slope, expected.low_slope, expected.high_slope)
