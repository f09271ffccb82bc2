"""The asl-validator helper tells a valid definition from an invalid one, with the reason."""

from __future__ import annotations

import json
from pathlib import Path

from tests.asl_validator import validate_asl

VALID = {
    "StartAt": "Wait",
    "States": {
        "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


def test_accepts_a_valid_definition() -> None:
    verdict = validate_asl(VALID)
    assert verdict.valid, verdict.output
    assert "is valid" in verdict.output


def test_rejects_a_misspelt_field_with_the_state_named() -> None:
    bad = {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 1, "Nxt": "Done"}}}
    verdict = validate_asl(bad)
    assert not verdict.valid
    assert "/States/Wait" in verdict.output


def test_rejects_a_bad_json_path_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "machine.asl.json"
    bad = {"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "not-a-path", "End": True}}}
    path.write_text(json.dumps(bad), encoding="utf-8")
    verdict = validate_asl(path)
    assert not verdict.valid
    assert "InputPath" in verdict.output or "/States/P" in verdict.output, verdict.output
