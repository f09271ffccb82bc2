"""docs/scaling.md shows exactly what tools/scaling_model.py computes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_scaling_page_shows_the_models_output() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "scaling_model.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    page = (REPO / "docs" / "scaling.md").read_text(encoding="utf-8")
    assert result.stdout.strip() in page, (
        "rerun tools/scaling_model.py and paste its output into docs/scaling.md"
    )
