"""The performance work changed no pixel: the optimised code against the previous one.

Two references, both from the implementation before the optimisation (issue 13):
- ``previous_sorted_percentiles`` below is that implementation, kept here as a test-only
  reference (one in-place sort along the time axis); the blocked version must give
  bit-identical percentiles and counts, including columns blocks split and empty columns;
- ``REGION_A_DIGEST`` is the SHA-256 of the class and observed rasters that the stac
  path gave on region ``alpha`` of the test archive (strips of 37 rows, so strip edges
  fall inside percentile blocks), computed with the code before the optimisation.
  If the algorithm or the demo archive changes on purpose, recompute it with
  ``StacBackend.classify_region`` on the unoptimised and optimised code alike.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from ccapi_monitor.detection.arrays import PERCENTILE_BLOCK, sorted_percentiles
from ccapi_monitor.detection.stac import StacBackend
from tests.detection.conftest import REGION_A, DemoArchiveFixture

REGION_A_DIGEST = "bacdb4c88f10cfa7f3d436bcd1209842d153de8cc0d6d7ec41875fa9106c2aaa"


def previous_sorted_percentiles(
    stack: NDArray[np.float32], quantiles: tuple[float, ...]
) -> tuple[list[NDArray[np.float32]], NDArray[Any]]:
    stack.sort(axis=0)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(stack), axis=0)
    last = np.maximum(count - 1, 0)
    results = []
    for q in quantiles:
        pos = q * last
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, last)
        frac = (pos - lo).astype(np.float32)
        low = np.take_along_axis(stack, lo[None], axis=0)[0]
        high = np.take_along_axis(stack, hi[None], axis=0)[0]
        value = low + (high - low) * frac
        value[count == 0] = np.nan
        results.append(value.astype(np.float32))
    return results, count


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 80),
    st.integers(1, 3 * PERCENTILE_BLOCK + 7),
    st.floats(0.0, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_blocked_percentiles_equal_the_previous_implementation(
    t: int, n: int, missing: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = (rng.random((t, n)) * 2 - 1).astype(np.float32)
    values[rng.random((t, n)) < missing] = np.nan
    before = values.copy()
    expected, expected_count = previous_sorted_percentiles(values.copy(), (0.1, 0.9))
    got, count = sorted_percentiles(values, (0.1, 0.9))
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b, equal_nan=True)
    assert np.array_equal(count, expected_count)
    assert np.array_equal(values, before, equal_nan=True)  # the input is left as it was


def test_region_classes_equal_the_previous_implementation(demo_archive: DemoArchiveFixture) -> None:
    backend = demo_archive.backend
    items = backend.archive.items_path(REGION_A.name, demo_archive.run_date)
    stac = StacBackend(backend.params, str(items), strip_rows=37)
    scenes = stac.scenes(REGION_A, backend.params.windows(demo_archive.run_date))
    raster = stac.classify_region(REGION_A, demo_archive.run_date, scenes)
    assert np.count_nonzero(raster.classes) > 0  # the region has change to get right
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(raster.classes).tobytes())
    digest.update(np.ascontiguousarray(raster.observed).tobytes())
    assert digest.hexdigest() == REGION_A_DIGEST
