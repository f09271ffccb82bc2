"""GDAL settings for reading COGs, and why each one is set.

Remote COGs (Earth Search on S3, another region than the task) cost round trips, not
bytes: a 20 km region reads ~1,700 small windows per run. The figures behind these
values come from ``benchmarks/bench_remote.py`` (a local server with 50 ms round trips
and a bandwidth cap); see benchmarks/README.md.
"""

from __future__ import annotations

import os
from typing import Final

#: Settings for every read, local or remote.
READ_OPTIONS: Final[dict[str, str]] = {
    # Opening a COG must not list its folder (thousands of files locally, a request
    # remotely) nor probe for .aux.xml/.ovr/.msk sidecars (a 404 round trip each).
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF",
    # A transient 5xx or reset from S3 is retried instead of failing the region.
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    # Adjacent tiles of one window are fetched in one ranged GET, not one GET each.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    # Each strip of a region reopens the same COGs, and the tiles straddling two strips
    # are read twice. /vsicurl/'s process-wide cache (default 16 MB, here 256 MB: a 20 km
    # region's headers and boundary tiles) serves the second read, but only for reads
    # that go through it: GDAL's default parallel multi-range path bypasses the cache.
    # SERIAL reads a window's tile ranges one after another through the cache; the
    # reader threads (see ``remote_io_threads``) provide the parallelism instead.
    # Measured at 10 km (2 strips): 1.38x the needed bytes with YES, 1.10x with SERIAL.
    "GDAL_HTTP_MULTIRANGE": "SERIAL",
    "CPL_VSIL_CURL_CACHE_SIZE": str(256 * 1024 * 1024),
    # Several requests share one connection where the server speaks HTTP/2 (S3 does not,
    # CloudFront does); harmless otherwise.
    "GDAL_HTTP_MULTIPLEX": "YES",
}

#: Kept for the name the benchmarks use: remote reads need nothing beyond READ_OPTIONS.
REMOTE_READ_OPTIONS: Final[dict[str, str]] = READ_OPTIONS


def remote_io_threads(cpus: int | None = None) -> int:
    """Reader threads for remote COGs: requests spend their time waiting on the network
    (GDAL releases the GIL), so far more threads than CPUs keep the link busy."""
    return max(8, 8 * (cpus or os.cpu_count() or 1))
