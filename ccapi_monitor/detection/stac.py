"""The ``stac`` imagery backend: Sentinel-2 L2A COGs found through STAC, read with rasterio.

Items come from an ItemCollection JSON file or a STAC API (pystac-client). Assets are
read window by window straight onto the region's UTM grid: a direct, index-based
nearest-neighbour read when the COG is already in the grid's CRS (the common case, and
how the 20 m SWIR/SCL reach the 10 m grid), a ``WarpedVRT`` otherwise (a region whose
MGRS tiles lie in the neighbouring UTM zone). The region is processed in strips of
rows, scenes streaming through :class:`~ccapi_monitor.detection.arrays.TileAccumulator`,
so memory is bounded by one strip's baseline stack, never a whole year at full size.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Final, cast
from urllib.parse import urlparse

import numpy as np
import pystac
import rasterio
import rasterio.errors
import structlog
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape

from ccapi_monitor.detection.arrays import (
    REFLECTANCE_BANDS,
    Observation,
    TileAccumulator,
    classify,
    measure_region,
    observe,
    scene_counts,
)
from ccapi_monitor.detection.base import ImageryBackend, region_result
from ccapi_monitor.detection.gdal_env import READ_OPTIONS, remote_io_threads
from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.errors import AbortedError, DetectionError
from ccapi_monitor.models import DetectionResult, ImageryCorrection
from ccapi_monitor.params import DetectionParams, Windows
from ccapi_monitor.regions import Region

log = structlog.get_logger(__name__)

#: Earth Search's collection with consistent offsets (the default) and the older one,
#: whose items may declare an offset their pixels do not carry (still read, and checked).
COLLECTION: Final = "sentinel-2-c1-l2a"
LEGACY_COLLECTION: Final = "sentinel-2-l2a"
#: Earth Search asset keys read by the algorithm.
SCL_ASSET: Final = "scl"
REQUIRED_ASSETS: Final[tuple[str, ...]] = (*REFLECTANCE_BANDS, SCL_ASSET)
#: Other catalogues name the same assets by band (Earth Search v0, Planetary Computer).
ASSET_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "green": ("green", "B03"),
    "red": ("red", "B04"),
    "nir": ("nir", "B08"),
    "swir16": ("swir16", "B11"),
    "scl": ("scl", "SCL"),
}
#: Without ``raster:bands`` metadata, Sentinel-2 L2A DN are reflectance x 10000, nodata 0.
DEFAULT_SCALE: Final = 1e-4
DEFAULT_NODATA: Final = 0
#: The offset ESA adds from processing baseline 04.00 on (reflectance = DN / 10000 - 0.1).
BASELINE_04_OFFSET: Final = -0.1
#: SCL vegetation and bare soil: the surfaces the offset check judges (never dark, never cloud).
OFFSET_CHECK_SCL: Final = (4, 5)
#: Fewer clear vegetation/soil pixels than this in a read: too few to judge an item's offset.
OFFSET_CHECK_MIN_PIXELS: Final = 100
#: Rows per spatial tile at 10 m: 512 rows x 2200 columns x a year of baseline scenes
#: is about 330 MB of float32 NDVI, the largest array a region holds.
DEFAULT_STRIP_ROWS: Final = 512
#: Scenes in flight per reader thread: enough that readers keep going while the
#: percentiles of a finished strip are computed (about 5 MB each at 512 x 2200).
READ_AHEAD: Final = 4
#: GDAL settings of every read, each with its reason, in one place (gdal_env).
GDAL_OPTIONS: Final = READ_OPTIONS
#: Reader threads for local COGs: decoding is CPU work, one thread per core of the task.
LOCAL_IO_THREADS: Final = 2
#: pystac (1.15) discovers its extension hooks lazily on the first parse, and not thread-safely:
#: regions whose items are parsed at once can fail with "dictionary changed size during
#: iteration". Parses take turns (they hold the GIL anyway).
_PARSE_LOCK: Final = threading.Lock()


@dataclass(frozen=True)
class BandScaling:
    """How DN become reflectance for one asset (``raster:bands`` scale/offset/nodata)."""

    scale: float = DEFAULT_SCALE
    offset: float = 0.0
    nodata: float | None = DEFAULT_NODATA

    @classmethod
    def of(cls, asset: pystac.Asset) -> BandScaling:
        bands = asset.extra_fields.get("raster:bands") or []
        band = bands[0] if bands and isinstance(bands[0], dict) else {}
        if "scale" not in band and "offset" not in band:
            return cls(nodata=band.get("nodata", DEFAULT_NODATA))
        return cls(
            scale=float(band.get("scale", 1.0)),
            offset=float(band.get("offset", 0.0)),
            nodata=band.get("nodata", DEFAULT_NODATA),
        )

    def reflectance(self, dn: NDArray[Any], *, scaled: bool = True) -> NDArray[np.float32]:
        """``DN * scale + offset`` as ``(DN + offset / scale) * scale`` (nodata not masked: see :meth:`valid`).

        The offset is added in DN units first; -0.1 / 0.0001 = -1000 is exact in float32,
        so a scene with and without offset metadata gives bit-identical values and
        identical classes. ``scaled=False`` skips the final multiply: every index is a
        ratio of bands, so a factor common to the bands of an item cancels.
        """
        values = dn.astype(np.float32)
        shift = self.offset / self.scale if self.scale else 0.0
        if shift:
            values += np.float32(round(shift) if abs(shift - round(shift)) < 1e-6 else shift)
        if scaled:
            values *= np.float32(self.scale)
        return values

    def with_offset(self, offset: float) -> BandScaling:
        return BandScaling(scale=self.scale, offset=offset, nodata=self.nodata)

    def valid(self, dn: NDArray[Any]) -> NDArray[np.bool_] | None:
        """Pixels holding data, or ``None`` when the asset declares no nodata value."""
        return None if self.nodata is None else np.asarray(dn != self.nodata)


def asset_of(item: pystac.Item, key: str) -> pystac.Asset | None:
    """The item's asset for an algorithm key (``red``), under its Earth Search or band name."""
    for name in ASSET_ALIASES.get(key, (key,)):
        asset = item.assets.get(name)
        if asset is not None:
            return asset
    return None


def processing_baseline(item: pystac.Item) -> tuple[int, int] | None:
    """``s2:processing_baseline`` as ``(major, minor)``; ``None`` when absent or unreadable."""
    raw = item.properties.get("s2:processing_baseline")
    try:
        major, minor = str(raw).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


@dataclass(frozen=True)
class OffsetCorrection:
    """An item whose declared offset disagreed with its pixels, and the offset read instead."""

    item_id: str
    reason: str
    declared_offset: float
    applied_offset: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "reason": self.reason,
            "declared_offset": self.declared_offset,
            "applied_offset": self.applied_offset,
        }


def below_zero_share(
    dns: dict[str, NDArray[Any]], scl: NDArray[np.uint8], scale: float, offset: float
) -> tuple[float, int]:
    """Share of clear vegetation/bare-soil pixels (SCL 4, 5) that ``offset`` drives below
    zero in any band read, and how many such pixels there are."""
    judged = np.isin(scl, OFFSET_CHECK_SCL)
    n = int(np.count_nonzero(judged))
    if n == 0:
        return 0.0, 0
    darkest = np.min(np.stack([dn[judged] for dn in dns.values()]), axis=0).astype(np.float64)
    return float(np.count_nonzero(darkest * scale + offset < 0)) / n, n


def check_offset(
    item: pystac.Item,
    dns: dict[str, NDArray[Any]],
    scl: NDArray[np.uint8],
    declared: BandScaling,
    max_share: float,
) -> tuple[float, OffsetCorrection | None] | None:
    """The offset the pixels carry (docs/design/detection.md step 1), or ``None`` when too few pixels judge.

    A declared offset that drives more than ``max_share`` of clear vegetation/bare-soil
    pixels below zero was already applied to the pixels: read without it. On a baseline
    04.00+ item declaring none, pixels that the baseline offset leaves at or above zero
    (they never fall to dark-surface values) carry it: apply it. A scene without dark
    surfaces (desert) cannot show either and keeps what it declares.
    """
    if declared.offset:
        share, n = below_zero_share(dns, scl, declared.scale, declared.offset)
        if n < OFFSET_CHECK_MIN_PIXELS:
            return None
        if share > max_share:
            return 0.0, OffsetCorrection(
                item.id,
                f"declared offset {declared.offset:g} drives {share:.0%} of clear vegetation/soil "
                "pixels below zero: the pixels do not carry it",
                declared.offset,
                0.0,
            )
        return declared.offset, None
    baseline = processing_baseline(item)
    if baseline is None or baseline < (4, 0):
        return 0.0, None
    share, n = below_zero_share(dns, scl, declared.scale, BASELINE_04_OFFSET)
    if n < OFFSET_CHECK_MIN_PIXELS:
        return None
    if share <= max_share:
        return BASELINE_04_OFFSET, OffsetCorrection(
            item.id,
            f"baseline {'.'.join(f'{v:02d}' for v in baseline)} declares no offset, but its pixels "
            f"never fall to dark-surface values ({share:.1%} below {-BASELINE_04_OFFSET:g}): they carry it",
            0.0,
            BASELINE_04_OFFSET,
        )
    return 0.0, None


@dataclass
class RegionClasses:
    """Steps 2-5 of one region: classes and observed mask on its grid, before steps 6-8."""

    grid: RegionGrid
    inside: NDArray[np.bool_]
    classes: NDArray[np.uint8]
    observed: NDArray[np.bool_]
    ndbi_now: NDArray[np.float32]
    clear_days: set[date]


@dataclass(frozen=True)
class Scene:
    """The items of one acquisition day over a region (adjacent MGRS tiles get mosaicked)."""

    day: date
    items: tuple[pystac.Item, ...]


def asset_href(asset: pystac.Asset, base: Path | None) -> str:
    """Where GDAL opens an asset: http(s) via /vsicurl/, s3 via /vsis3/, a relative path against ``base``.

    An absolute href (URL or local path) is used as written: pystac would resolve even an
    absolute local path against the item's self link (an s3:// URL on real Earth Search items).
    """
    href = asset.href
    if not urlparse(href).scheme and not Path(href).is_absolute():
        href = asset.get_absolute_href() or href
    parsed = urlparse(href)
    if parsed.scheme in ("http", "https"):
        return f"/vsicurl/{href}"
    if parsed.scheme == "s3":
        return f"/vsis3/{parsed.netloc}{parsed.path}"
    path = Path(href)
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path)


@functools.cache
def _crs(epsg: int) -> CRS:
    return CRS.from_epsg(epsg)


def read_on_grid(href: str, grid: RegionGrid, rows: tuple[int, int], fill: float) -> NDArray[Any]:
    """Band 1 of ``href`` on rows ``rows`` of ``grid``, nearest neighbour, ``fill`` outside.

    Same CRS (and no rotation): each grid pixel centre is mapped to the source pixel
    containing it and only the needed source window is decoded; this is exactly
    nearest-neighbour resampling, and turns a 20 m band into the 10 m grid without
    GDAL's warper. Otherwise a WarpedVRT onto the grid does the reprojection.
    """
    row0, row1 = rows
    with rasterio.open(href) as src:
        dst_crs = _crs(grid.epsg)
        t = src.transform
        if src.crs == dst_crs and t.b == 0 and t.d == 0:
            xs = grid.west + (np.arange(grid.width) + 0.5) * grid.scale_m
            ys = grid.north - (np.arange(row0, row1) + 0.5) * grid.scale_m
            cols = np.floor((xs - t.c) / t.a).astype(np.int64)
            src_rows = np.floor((ys - t.f) / t.e).astype(np.int64)
            ok_c = (cols >= 0) & (cols < src.width)
            ok_r = (src_rows >= 0) & (src_rows < src.height)
            out = np.full((row1 - row0, grid.width), fill, dtype=src.dtypes[0])
            if not ok_c.any() or not ok_r.any():
                return out
            c0, c1 = int(cols[ok_c].min()), int(cols[ok_c].max()) + 1
            r0, r1 = int(src_rows[ok_r].min()), int(src_rows[ok_r].max()) + 1
            block = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
            # The mapping is monotone, so the grid pixels inside the source are one rectangle:
            # a slice, filled by two 1-D takes (7x faster than an np.ix_ gather on a scene).
            rr = np.flatnonzero(ok_r)
            cc = np.flatnonzero(ok_c)
            out[rr[0] : rr[-1] + 1, cc[0] : cc[-1] + 1] = block.take(src_rows[ok_r] - r0, axis=0).take(
                cols[ok_c] - c0, axis=1
            )
            return out
        with WarpedVRT(
            src,
            crs=dst_crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=Resampling.nearest,
            nodata=fill,
        ) as vrt:
            return np.asarray(vrt.read(1, window=Window(0, row0, grid.width, row1 - row0)))


class SceneReader:
    """Reads and mosaics the scenes of one region onto its grid, one strip at a time.

    Each item's offset is checked against its pixels once (on the first read with enough
    clear vegetation/soil pixels) and the verdict holds for all its strips; corrections
    go to ``offsets`` (shared by the backend, so they are reported once per item).
    """

    def __init__(
        self,
        grid: RegionGrid,
        params: DetectionParams,
        base: Path | None,
        windows: Windows | None = None,
        offsets: OffsetLedger | None = None,
        gdal_options: Mapping[str, str] = GDAL_OPTIONS,
    ) -> None:
        self.grid = grid
        self.gdal_options = dict(gdal_options)
        self.params = params
        self.base = base
        self.windows = windows
        self.offsets = offsets if offsets is not None else OffsetLedger()
        self._rows: dict[str, tuple[int, int]] = {}

    def _item_rows(self, item: pystac.Item) -> tuple[int, int]:
        """Grid rows the item can cover (from its bbox), to skip items outside a strip."""
        if item.id not in self._rows:
            if item.bbox is None:
                self._rows[item.id] = (0, self.grid.height)
            else:
                _, south, _, north = transform_bounds(4326, self.grid.epsg, *item.bbox[:4], densify_pts=21)
                top = int((self.grid.north - north) // self.grid.scale_m) - 1
                bottom = int((self.grid.north - south) // self.grid.scale_m) + 2
                self._rows[item.id] = (max(0, top), min(self.grid.height, bottom))
        return self._rows[item.id]

    def read_asset(self, item: pystac.Item, key: str, rows: tuple[int, int]) -> NDArray[Any]:
        """Raw DN of one asset on ``rows`` of the grid (nodata outside the asset)."""
        asset = asset_of(item, key)
        if asset is None:
            raise DetectionError(f"STAC item {item.id}: asset {key!r} is missing")
        nodata = BandScaling.of(asset).nodata
        try:
            return read_on_grid(
                asset_href(asset, self.base), self.grid, rows, nodata if nodata is not None else 0
            )
        except (rasterio.errors.RasterioError, OSError) as exc:
            raise DetectionError(f"STAC item {item.id}: asset {key!r} is unreadable: {exc}") from None

    def read_item(
        self, item: pystac.Item, rows: tuple[int, int]
    ) -> tuple[NDArray[np.uint8], dict[str, NDArray[np.float32]]]:
        """SCL (0 wherever a reflectance band has no data) and the bands, harmonized.

        Bands are reflectance up to a factor common to the item's bands when they
        share one ``scale`` (always, for Sentinel-2): indices are ratios. The offset
        applied is the one the pixels carry (:func:`check_offset`), not blindly the
        declared one.
        """
        scl = np.array(self.read_asset(item, SCL_ASSET, rows), dtype=np.uint8)
        scalings = {key: BandScaling.of(cast(pystac.Asset, asset_of(item, key))) for key in REFLECTANCE_BANDS}
        dns = {}
        for key, scaling in scalings.items():
            dn = self.read_asset(item, key, rows)
            valid = scaling.valid(dn)
            if valid is not None and not valid.all():
                scl[~valid] = 0
            dns[key] = dn
        offset = self.offsets.offset_for(item, dns, scl, scalings["red"], self.params.offset_check_share)
        if offset is not None:
            scalings = {key: scaling.with_offset(offset) for key, scaling in scalings.items()}
        scaled = len({s.scale for s in scalings.values()}) > 1
        return scl, {key: scalings[key].reflectance(dn, scaled=scaled) for key, dn in dns.items()}

    def observe(self, scene: Scene, rows: tuple[int, int]) -> Observation:
        """Mosaic the scene's items and mask it."""
        with rasterio.Env(**self.gdal_options):
            scl, bands = self.mosaic(scene, rows)
        return observe(scene.day, bands, scl, self.params, self.windows)

    def mosaic(
        self, scene: Scene, rows: tuple[int, int]
    ) -> tuple[NDArray[np.uint8], dict[str, NDArray[np.float32]]]:
        """SCL and reflectances of a scene on ``rows``: first item (by id) with data wins per pixel.

        The usual case, one item covering the strip, costs no copy at all.
        """
        scl: NDArray[np.uint8] | None = None
        bands: dict[str, NDArray[np.float32]] = {}
        for item in scene.items:
            top, bottom = self._item_rows(item)
            if bottom <= rows[0] or top >= rows[1]:
                continue
            item_scl, item_bands = self.read_item(item, rows)
            if scl is None:
                scl, bands = item_scl, item_bands
                continue
            take = (scl == 0) & (item_scl != 0)
            if take.any():
                scl = np.where(take, item_scl, scl)
                bands = {key: np.where(take, item_bands[key], bands[key]) for key in REFLECTANCE_BANDS}
        if scl is None:  # no item reaches these rows
            shape = (rows[1] - rows[0], self.grid.width)
            return np.zeros(shape, np.uint8), {
                k: np.full(shape, np.nan, np.float32) for k in REFLECTANCE_BANDS
            }
        return scl, bands


class OffsetLedger:
    """Per item, the offset its pixels carry, decided once; and the corrections made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offsets: dict[str, float] = {}
        self._corrections: dict[str, OffsetCorrection] = {}
        self._seen: set[str] = set()
        #: What :meth:`news` has already handed out.
        self._told_offsets: set[str] = set()
        self._told_seen: set[str] = set()

    def offset_for(
        self,
        item: pystac.Item,
        dns: dict[str, NDArray[Any]],
        scl: NDArray[np.uint8],
        declared: BandScaling,
        max_share: float,
    ) -> float | None:
        """The item's verified offset; ``None`` (use what is declared) until enough pixels judge."""
        with self._lock:
            self._seen.add(item.id)
            if item.id in self._offsets:
                return self._offsets[item.id]
        verdict = check_offset(item, dns, scl, declared, max_share)
        if verdict is None:
            return None
        offset, correction = verdict
        with self._lock:
            if item.id in self._offsets:  # another strip of the item decided meanwhile
                return self._offsets[item.id]
            self._offsets[item.id] = offset
            if correction is not None:
                self._corrections[item.id] = correction
        if correction is not None:
            log.warning(
                "stac.offset_corrected",
                item=item.id,
                declared_offset=correction.declared_offset,
                applied_offset=correction.applied_offset,
                reason=correction.reason,
            )
        return offset

    @property
    def items_read(self) -> int:
        """Distinct items read so far (what the corrections are a share of)."""
        with self._lock:
            return len(self._seen)

    def corrections(self, item_ids: Iterable[str] | None = None) -> list[OffsetCorrection]:
        """Corrections made so far (of ``item_ids`` only, when given), by item id."""
        with self._lock:
            found = dict(self._corrections)
        wanted = found.keys() if item_ids is None else set(item_ids) & found.keys()
        return [found[i] for i in sorted(wanted)]

    def news(self) -> LedgerState:
        """The verdicts, corrections and items seen since the last call, to merge into another
        ledger (a worker process's into the run's, see :meth:`absorb`). Only the news: a
        worker replies once a region, and its whole ledger would grow with every region it
        has done (15,800 items over the 331 cells of the Java grid)."""
        with self._lock:
            offsets = {i: o for i, o in self._offsets.items() if i not in self._told_offsets}
            seen = frozenset(self._seen - self._told_seen)
            self._told_offsets.update(offsets)
            self._told_seen |= seen
            corrections = {i: self._corrections[i] for i in offsets if i in self._corrections}
            return LedgerState(offsets, corrections, seen)

    def absorb(self, state: LedgerState) -> None:
        """Take another ledger's verdicts; an item already judged here keeps its verdict."""
        with self._lock:
            for item_id, offset in state.offsets.items():
                if item_id not in self._offsets:
                    self._offsets[item_id] = offset
                    if item_id in state.corrections:
                        self._corrections[item_id] = state.corrections[item_id]
            self._seen |= state.seen


@dataclass(frozen=True)
class LedgerState:
    """A picklable copy of an :class:`OffsetLedger`'s contents."""

    offsets: dict[str, float]
    corrections: dict[str, OffsetCorrection]
    seen: frozenset[str]


class StacBackend(ImageryBackend):
    """docs/design/detection.md over Sentinel-2 L2A COGs listed by STAC (Earth Search layout)."""

    name: ClassVar[str] = "stac"

    def __init__(
        self,
        params: DetectionParams,
        items: str,
        *,
        io_threads: int | None = None,
        strip_rows: int = DEFAULT_STRIP_ROWS,
        collection: str = COLLECTION,
        gdal_options: Mapping[str, str] = GDAL_OPTIONS,
    ) -> None:
        """``io_threads``: reader threads; by default :data:`LOCAL_IO_THREADS` for local COGs
        and :func:`~ccapi_monitor.detection.gdal_env.remote_io_threads` for http/s3 ones.
        ``gdal_options``: GDAL settings of the reads (the benchmarks compare others)."""
        super().__init__(params)
        self.items = items
        self.collection = collection
        self.offsets = OffsetLedger()
        self.io_threads = None if io_threads is None else max(1, io_threads)
        self.gdal_options = dict(gdal_options)
        self.strip_rows = strip_rows
        self._is_api = urlparse(items).scheme in ("http", "https")
        self._collection: list[pystac.Item] | None = None
        self._lock = threading.Lock()

    # -- item discovery -------------------------------------------------------------
    @property
    def _base(self) -> Path | None:
        return None if self._is_api else Path(self.items).resolve().parent

    def _file_items(self) -> list[pystac.Item]:
        with self._lock:
            if self._collection is None:
                try:
                    with _PARSE_LOCK:
                        items = list(pystac.ItemCollection.from_file(self.items))
                except Exception as exc:  # pystac raises several types for bad files
                    raise DetectionError(f"cannot read STAC items {self.items}: {exc}") from None
                # A file lists items chosen on purpose: either Earth Search L2A collection is
                # read (the offset check covers the legacy one), items of others are not.
                known = sorted({self.collection, COLLECTION, LEGACY_COLLECTION})
                self._collection = [i for i in items if i.collection_id is None or i.collection_id in known]
                if items and not self._collection:
                    found = sorted({str(i.collection_id) for i in items})
                    raise DetectionError(
                        f"STAC items {self.items} hold no Sentinel-2 L2A item of {', '.join(known)} "
                        f"(found: {', '.join(found)}); choose one with --stac-collection"
                    )
            return self._collection

    def _api_items(self, region: Region, windows: Windows) -> list[pystac.Item]:
        import pystac_client

        span = windows.span
        end = span.end.toordinal() - 1
        try:
            client = pystac_client.Client.open(self.items)
            search = client.search(
                collections=[self.collection],
                intersects=mapping(region.geometry),
                datetime=f"{span.start.isoformat()}T00:00:00Z/{date.fromordinal(end).isoformat()}T23:59:59Z",
            )
            return list(search.items())
        except Exception as exc:  # pystac-client wraps HTTP and JSON errors in several types
            raise DetectionError(f"STAC API search at {self.items} failed: {exc}") from None

    def scenes(self, region: Region, windows: Windows) -> list[Scene]:
        """Items intersecting the region within the windows, grouped by acquisition day."""
        span = windows.span
        candidates = self._api_items(region, windows) if self._is_api else self._file_items()
        by_day: dict[date, list[pystac.Item]] = {}
        for item in candidates:
            if item.datetime is None:
                continue
            day = item.datetime.date()
            if not span.contains(day):
                continue
            footprint = shape(item.geometry) if item.geometry else box(*(item.bbox or (0, 0, 0, 0)))
            if not footprint.intersects(region.geometry):
                continue
            by_day.setdefault(day, []).append(item)
        return [Scene(day, tuple(sorted(items, key=lambda i: i.id))) for day, items in sorted(by_day.items())]

    # -- ImageryBackend ---------------------------------------------------------------
    def describe(self, run_date: date) -> dict[str, Any]:
        return {
            "source": self.name,
            "items": self.items,
            "collection": self.collection,
            "assets": list(REQUIRED_ASSETS),
            "scale_m": self.params.scale_m,
        }

    def corrections(self) -> list[ImageryCorrection]:
        return [ImageryCorrection(**c.as_dict()) for c in self.offsets.corrections()]

    def items_read(self) -> int | None:
        return self.offsets.items_read

    def preflight(self) -> list[str]:
        if self._is_api:
            try:
                import pystac_client

                pystac_client.Client.open(self.items)
            except Exception as exc:  # any failure to reach the API is a preflight problem
                return [f"STAC API {self.items} is not usable: {exc}"]
            return []
        if not Path(self.items).is_file():
            return [f"STAC items file {self.items} does not exist"]
        try:
            self._file_items()
        except DetectionError as exc:
            return [str(exc)]
        return []

    def detect(
        self, region: Region, run_date: date, cancel: threading.Event | None = None
    ) -> DetectionResult:
        windows = self.params.windows(run_date)
        scenes = self.scenes(region, windows)
        for scene in scenes:  # fail before reading anything if the archive is incomplete
            for item in scene.items:
                missing = [k for k in REQUIRED_ASSETS if asset_of(item, k) is None]
                if missing:
                    raise DetectionError(f"STAC item {item.id}: asset(s) {', '.join(missing)} missing")
        return self.detect_scenes(region, run_date, scenes, cancel)

    def reader_threads(self, scenes: Sequence[Scene]) -> int:
        """The configured reader threads, else many for remote COGs (they wait on the network)."""
        if self.io_threads is not None:
            return self.io_threads
        for scene in scenes:
            for item in scene.items:
                href = asset_href(cast(pystac.Asset, asset_of(item, SCL_ASSET)), self._base)
                return remote_io_threads() if href.startswith("/vsi") else LOCAL_IO_THREADS
        return LOCAL_IO_THREADS

    def detect_scenes(
        self,
        region: Region,
        run_date: date,
        scenes: Sequence[Scene],
        cancel: threading.Event | None = None,
    ) -> DetectionResult:
        """Steps 2-8 for one region over the given scenes."""
        params = self.params
        windows = params.windows(run_date)
        raster = self.classify_region(region, run_date, scenes, cancel)
        grid, inside = raster.grid, raster.inside
        measure = measure_region(
            raster.classes, raster.observed, inside, grid, params, region.name, raster.ndbi_now
        )
        counts = scene_counts(raster.clear_days, windows)
        details: dict[str, Any] = {
            "grid": {"epsg": grid.epsg, "scale_m": grid.scale_m, "width": grid.width, "height": grid.height},
            "scenes_found": len(scenes),
            "items_found": sum(len(s.items) for s in scenes),
            "mean_ndbi_now": measure.mean_ndbi,
            "offset_corrections": [
                c.as_dict() for c in self.offsets.corrections(i.id for s in scenes for i in s.items)
            ],
        }
        sufficient = measure.observed_fraction >= params.min_observed_fraction
        log.info(
            "detection.region",
            region=region.name,
            observed_fraction=round(measure.observed_fraction, 4),
            area_ha=measure.area_ha if sufficient else None,
            scenes=counts,
        )
        return region_result(
            params,
            source=self.name,
            observed_fraction=round(measure.observed_fraction, 6),
            area_ha=measure.area_ha,
            polygons=measure.polygons,
            polygon_count=measure.polygon_count,
            scenes=counts,
            details=details,
        )

    def classify_region(
        self,
        region: Region,
        run_date: date,
        scenes: Sequence[Scene],
        cancel: threading.Event | None = None,
    ) -> RegionClasses:
        """Steps 2-5 over the region's grid, strip by strip (the part of detection that reads)."""
        params = self.params
        windows = params.windows(run_date)
        grid = RegionGrid.for_region(region, params.scale_m)
        inside = grid.mask(region.geometry)
        classes = np.zeros(grid.shape, dtype=np.uint8)
        observed = np.zeros(grid.shape, dtype=bool)
        ndbi_now = np.full(grid.shape, np.nan, dtype=np.float32)
        clear_days: set[date] = set()
        reader = SceneReader(grid, params, self._base, windows, self.offsets, self.gdal_options)
        n_baseline = sum(windows.baseline.contains(s.day) for s in scenes)
        strips = [rows for rows in grid.strips(self.strip_rows) if inside[rows[0] : rows[1]].any()]
        # One stream over (strip, scene): readers start on the next strip while this
        # thread computes the percentiles of the last one.
        tasks = [(rows, scene) for rows in strips for scene in scenes]
        threads = self.reader_threads(scenes)
        acc: TileAccumulator | None = None
        with ThreadPoolExecutor(threads, thread_name_prefix=f"read-{region.name}") as pool:
            for (rows, scene), obs in zip(
                tasks, self._stream(pool, threads, reader, tasks, cancel, region.name), strict=True
            ):
                strip_inside = inside[rows[0] : rows[1]]
                if acc is None:
                    acc = TileAccumulator(params, windows, strip_inside.shape, n_baseline)
                if (obs.clear & strip_inside).any():
                    clear_days.add(obs.day)
                acc.add(obs)
                if scene is not scenes[-1]:
                    continue
                stats = acc.finish()
                acc = None
                strip_classes, strip_observed = classify(stats, params)
                classes[rows[0] : rows[1]] = strip_classes
                observed[rows[0] : rows[1]] = strip_observed
                ndbi_now[rows[0] : rows[1]] = stats.ndbi_now
        return RegionClasses(grid, inside, classes, observed, ndbi_now, clear_days)

    def _stream(
        self,
        pool: ThreadPoolExecutor,
        threads: int,
        reader: SceneReader,
        tasks: Sequence[tuple[tuple[int, int], Scene]],
        cancel: threading.Event | None,
        region_name: str,
    ) -> Iterator[Observation]:
        """Observations of ``(rows, scene)`` tasks in order, read ahead by a bounded number of threads.

        At most ``threads + 2 * READ_AHEAD`` observations are pending: each thread busy plus a
        few finished ones, so memory does not grow with the many threads of remote reads."""
        pending: deque[Future[Observation]] = deque()
        queue = iter(tasks)
        try:
            while True:
                while len(pending) < threads + 2 * READ_AHEAD:
                    task = next(queue, None)
                    if task is None:
                        break
                    pending.append(pool.submit(reader.observe, task[1], task[0]))
                if not pending:
                    return
                if cancel is not None and cancel.is_set():
                    raise AbortedError(f"detection of {region_name} cancelled")
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
