"""Generate docs/report.schema.json from :class:`ccapi_monitor.reports.json_report.ReportDocument`.

The schema of report.json is derived from the models report.json is built from, never
written by hand: a test compares the file with :func:`render` and ``make report-schema``
rewrites it. A development tool: not part of the package or the image.

Usage: ``python -m tools.report_schema [PATH]`` (default: print to stdout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ccapi_monitor.reports.json_report import ReportDocument
from ccapi_monitor.reports.layout import SCHEMA_VERSION

SCHEMA_ID = f"https://ccapi-monitor.invalid/schemas/report-{SCHEMA_VERSION}.json"


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of report.json as the code writes it."""
    generated = ReportDocument.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **generated}


def render() -> str:
    return json.dumps(schema(), indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        Path(args[0]).write_text(render(), encoding="utf-8")
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
