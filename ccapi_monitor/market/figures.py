"""Figures per region from price points: median, IQR, outliers, and a robust 12-week trend.

Rules (docs/market.md, "Figures"):
- *current* figures use the points dated in the ``RECENT_DAYS`` up to the run date;
- every point weighs its listing count (a feed row aggregating 20 listings counts 20);
- outliers are removed with Tukey's fences on the logarithm of the price: a point outside
  ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`` of log price is dropped (log, because asking prices
  are skewed: a toll-road frontage at 5x the median is as far out as a back plot at 1/5).
  The fences count each point once, whatever its listing count (one heavy feed row must
  not shrink the IQR to nothing and fence out its neighbours), and need at least
  ``MIN_POINTS_FOR_OUTLIERS`` points;
- the trend is the Theil-Sen slope of the weekly median log price over the
  ``TREND_WEEKS`` weeks up to the run date, with its ``TREND_CONFIDENCE`` interval,
  reported in percent per week; it needs ``MIN_TREND_WEEKS`` weeks with data.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ccapi_monitor.market.models import MarketTrend, PricePoint

RECENT_DAYS: Final = 28
TUKEY_K: Final = 1.5
MIN_POINTS_FOR_OUTLIERS: Final = 5
TREND_WEEKS: Final = 12
MIN_TREND_WEEKS: Final = 4
TREND_CONFIDENCE: Final = 0.90


@dataclass(frozen=True)
class Summary:
    """Current figures of one region after outlier removal."""

    median: float
    q1: float
    q3: float
    listings: int
    outliers_removed: int
    as_of: date


def weighted_quantiles(values: Sequence[float], weights: Sequence[int], qs: Sequence[float]) -> list[float]:
    """Quantiles of ``values`` where each value counts ``weight`` times (numpy's linear rule)."""
    expanded = np.repeat(np.asarray(values, dtype=float), np.asarray(weights, dtype=int))
    return [float(q) for q in np.quantile(expanded, qs)]


def without_outliers(points: Sequence[PricePoint]) -> tuple[list[PricePoint], int]:
    """Points inside Tukey's fences on log price, and the listings dropped (module docstring)."""
    if len(points) < MIN_POINTS_FOR_OUTLIERS:
        return list(points), 0
    logs = [math.log(p.idr_per_m2) for p in points]
    q1, q3 = (float(q) for q in np.quantile(logs, (0.25, 0.75)))
    low, high = q1 - TUKEY_K * (q3 - q1), q3 + TUKEY_K * (q3 - q1)
    kept = [p for p, lp in zip(points, logs, strict=True) if low <= lp <= high]
    return kept, sum(p.listings for p in points) - sum(p.listings for p in kept)


def recent(points: Iterable[PricePoint], run_date: date, days: int = RECENT_DAYS) -> list[PricePoint]:
    """Points dated in the ``days`` up to and including ``run_date``."""
    start = run_date - timedelta(days=days - 1)
    return [p for p in points if start <= p.date <= run_date]


def summarize(points: Iterable[PricePoint], run_date: date) -> Summary | None:
    """Median, quartiles and listing count of the recent points; ``None`` when there are none."""
    window = recent(points, run_date)
    if not window:
        return None
    kept, removed = without_outliers(window)
    values, weights = [p.idr_per_m2 for p in kept], [p.listings for p in kept]
    q1, median, q3 = weighted_quantiles(values, weights, (0.25, 0.5, 0.75))
    return Summary(
        median=median,
        q1=q1,
        q3=q3,
        listings=sum(weights),
        outliers_removed=removed,
        as_of=max(p.date for p in kept),
    )


def weekly_medians(
    points: Iterable[PricePoint], run_date: date, weeks: int = TREND_WEEKS
) -> dict[int, float]:
    """Median price (outliers removed) per week, keyed by weeks before the run (0 = run week)."""
    by_week: dict[int, list[PricePoint]] = defaultdict(list)
    for point in points:
        age = (run_date - point.date).days
        if 0 <= age < 7 * weeks:
            by_week[age // 7].append(point)
    medians: dict[int, float] = {}
    for week, members in by_week.items():
        kept, _ = without_outliers(members)
        medians[week] = weighted_quantiles([p.idr_per_m2 for p in kept], [p.listings for p in kept], (0.5,))[
            0
        ]
    return dict(sorted(medians.items()))


def theil_sen(
    x: NDArray[np.float64], y: NDArray[np.float64], confidence: float
) -> tuple[float, float, float]:
    """Theil-Sen slope (median of the pairwise slopes) and its ``confidence`` interval after
    Sen (1968, eq. 2.6, ties corrected), computed as ``scipy.stats.theilslopes`` does:
    importing scipy.stats takes about a second at every run's start, for 12 points."""
    dx = x[:, np.newaxis] - x
    dy = y[:, np.newaxis] - y
    slopes = np.sort(dy[dx > 0] / dx[dx > 0])
    z = NormalDist().inv_cdf((1.0 - max(confidence, 1.0 - confidence)) / 2.0)

    def ties(values: NDArray[np.float64]) -> int:
        counts = np.unique(values, return_counts=True)[1]
        return sum(int(k) * (int(k) - 1) * (2 * int(k) + 5) for k in counts[counts > 1])

    n, pairs = len(y), len(slopes)
    sigma = math.sqrt((n * (n - 1) * (2 * n + 5) - ties(x) - ties(y)) / 18.0)
    upper = min(int(np.round((pairs - z * sigma) / 2.0)), pairs - 1)
    lower = max(int(np.round((pairs + z * sigma) / 2.0)) - 1, 0)
    return float(np.median(slopes)), float(slopes[lower]), float(slopes[upper])


def trend(points: Iterable[PricePoint], run_date: date) -> tuple[MarketTrend | None, str | None]:
    """Theil-Sen slope of weekly log medians in % per week with its interval, or why there is none."""
    medians = weekly_medians(points, run_date)
    if len(medians) < MIN_TREND_WEEKS:
        return None, (
            f"no trend: {len(medians)} of the last {TREND_WEEKS} weeks have prices "
            f"(at least {MIN_TREND_WEEKS} needed)"
        )
    x = np.array([-week for week in medians], dtype=float)
    y = np.log(np.array(list(medians.values()), dtype=float))
    slope, low, high = theil_sen(x, y, TREND_CONFIDENCE)

    def pct(value: float) -> float:
        return round(100.0 * math.expm1(float(value)), 3)

    return (
        MarketTrend(
            pct_per_week=pct(slope),
            low_pct_per_week=pct(low),
            high_pct_per_week=pct(high),
            confidence=TREND_CONFIDENCE,
            weeks=len(medians),
            first_week=run_date - timedelta(weeks=max(medians)),
            last_week=run_date - timedelta(weeks=min(medians)),
        ),
        None,
    )
