from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from ccapi_monitor.params import CLASS_VALUES, CLASSES, DetectionParams


def test_windows_follow_detection_md() -> None:
    w = DetectionParams().windows(date(2026, 11, 23))
    assert (w.current.start, w.current.end) == (date(2026, 10, 24), date(2026, 11, 23))
    assert (w.persistence.start, w.persistence.end) == (date(2026, 9, 24), date(2026, 11, 23))
    assert (w.baseline.start, w.baseline.end) == (date(2025, 9, 24), date(2026, 9, 24))
    assert w.span.start == w.baseline.start
    assert w.current.contains(date(2026, 11, 22))
    assert not w.current.contains(date(2026, 11, 23))


@pytest.mark.parametrize(
    ("mmu_ha", "scale_m", "pixels"),
    [(0.2, 10, 20), (0.2, 20, 5), (0.25, 10, 25), (0.21, 10, 21), (0.0, 10, 1), (0.2, 60, 1)],
)
def test_mmu_pixels_rounds_up_without_float_noise(mmu_ha: float, scale_m: float, pixels: int) -> None:
    assert DetectionParams(mmu_ha=mmu_ha, scale_m=scale_m).mmu_pixels == pixels


def test_fingerprint_changes_with_any_parameter() -> None:
    base = DetectionParams()
    assert base.fingerprint() == DetectionParams().fingerprint()
    assert base.fingerprint() != DetectionParams(clearing_drop=0.2).fingerprint()
    assert base.fingerprint() != DetectionParams(current_days=31).fingerprint()


def test_params_reject_unknown_and_out_of_range_values() -> None:
    with pytest.raises(ValidationError):
        DetectionParams(clear_threshold=1.5)
    with pytest.raises(ValidationError):
        DetectionParams(unknown=1)  # type: ignore[call-arg]


def test_classes_are_ordered_and_numbered_from_one() -> None:
    assert CLASSES == ("vegetation_clearing", "built_up")
    assert CLASS_VALUES == {"vegetation_clearing": 1, "built_up": 2}
