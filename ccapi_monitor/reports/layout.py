"""Where a run's files live inside the reports store (docs/architecture.md, "Reports")."""

from __future__ import annotations

from datetime import date
from typing import Final

LATEST_KEY = "weekly/latest.json"
SCHEMA_VERSION: Final = "1.0"


def run_prefix(run_date: date, run_id: str) -> str:
    return f"weekly/{run_date.isoformat()}/{run_id}"


def report_keys(run_date: date, run_id: str) -> dict[str, str]:
    """Keys of one run's files, by the names the callback payload uses."""
    prefix = run_prefix(run_date, run_id)
    return {
        "json": f"{prefix}/report.json",
        "geojson": f"{prefix}/changes.geojson",
        "html": f"{prefix}/report.html",
        "parquet": f"{prefix}/changes.parquet",
    }
