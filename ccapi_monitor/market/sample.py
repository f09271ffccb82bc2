"""The bundled synthetic sample feed that ``make demo`` shows (``data/market_sample.parquet``).

Synthetic, and labelled so in every report: one row per region and week, priced at the
region's tier benchmark times a fixed per-region factor, growing by a fixed per-region
weekly rate, with seeded noise. Regenerate with ``python -m ccapi_monitor.market.sample``;
a test checks the packaged file equals what this code makes.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ccapi_monitor.market import sample_feed_path
from ccapi_monitor.regions import Region, load_regions
from ccapi_monitor.scoring import load_land_prices

#: Mondays covered by the sample: wide enough for demo runs of 2025 to 2027.
FIRST_WEEK: Final = date(2025, 1, 6)
WEEKS: Final = 156
SAMPLE_SOURCE: Final = "synthetic sample (ccapi-monitor demo)"


def _region_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def sample_rows(
    regions: Sequence[Region], first_week: date = FIRST_WEEK, weeks: int = WEEKS
) -> list[dict[str, Any]]:
    """Rows of the feed schema; the per-region weekly growth is -0.2..+0.8 %."""
    prices = load_land_prices()
    rows = []
    for region in regions:
        rng = np.random.default_rng(_region_seed(region.name))
        factor = float(rng.uniform(0.7, 1.4))
        growth = float(rng.uniform(-0.002, 0.008))
        base = prices[region.tier].idr_per_m2 * factor
        for week in range(weeks):
            noise = float(rng.normal(0.0, 0.03))
            rows.append(
                {
                    "region": region.name,
                    "date": first_week + timedelta(weeks=week),
                    "price_idr_per_m2": round(base * math.exp(growth * week + noise), -3),
                    "listing_count": int(rng.integers(3, 40)),
                    "source": SAMPLE_SOURCE,
                }
            )
    return rows


def sample_table(regions: Sequence[Region]) -> pa.Table:
    return pa.Table.from_pylist(sample_rows(regions))


def main(argv: Sequence[str]) -> int:
    target = Path(argv[0]) if argv else sample_feed_path()
    pq.write_table(sample_table(load_regions()), target, compression="zstd")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
