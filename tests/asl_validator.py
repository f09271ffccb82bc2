"""Run the npm ``asl-validator`` (pinned in tools/asl-validator/) on a state machine definition.

Moto executes a definition AWS would reject (unknown fields, bad paths), so every ASL the
project deploys is also checked against the Amazon States Language schema. `make tools`
installs the validator with ``npm ci``; without node/npm the tests skip with a visible reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TOOL_DIR = Path(__file__).resolve().parents[1] / "tools" / "asl-validator"
EXECUTABLE = TOOL_DIR / "node_modules" / ".bin" / "asl-validator"


@dataclass(frozen=True)
class AslVerdict:
    """What the validator said: ``valid`` plus its own output, for assertion messages."""

    valid: bool
    output: str


def require_asl_validator() -> Path:
    """The validator's path, or a pytest skip saying what is missing and how to get it."""
    if shutil.which("node") is None:
        pytest.skip(
            "node is not installed: asl-validator checks skipped (install nodejs and npm, then `make tools`)"
        )
    if not EXECUTABLE.exists():
        pytest.skip(
            f"{EXECUTABLE} missing: run `make tools` (npm ci in {TOOL_DIR.name}); asl-validator skipped"
        )
    return EXECUTABLE


def validate_asl(definition: Mapping[str, Any] | Path) -> AslVerdict:
    """Validate a parsed definition or a JSON file; skips the calling test when the tool is absent."""
    executable = require_asl_validator()
    with tempfile.TemporaryDirectory(prefix="asl-") as scratch:
        if isinstance(definition, Path):
            path = definition
        else:
            path = Path(scratch) / "definition.asl.json"
            path.write_text(json.dumps(definition), encoding="utf-8")
        result = subprocess.run(
            [str(executable), "--json-path", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    return AslVerdict(valid=result.returncode == 0, output=(result.stdout + result.stderr).strip())
