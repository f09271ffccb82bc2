"""The ``demo`` imagery backend: a deterministic synthetic Sentinel-2 archive, read by the stac code.

For each region the generator builds a static landscape (forest, tree crops, rice
paddy in irrigation blocks on staggered ~120-day cycles, settlement, water) and a
calendar of planted events (forest clearing, paddy-to-construction) anchored to a
fixed epoch, then writes every scene as Cloud-Optimized GeoTIFFs in the Earth Search
layout (asset keys, SWIR/SCL at twice the pixel size, ``raster:bands`` with the -0.1
offset on part of the archive) plus STAC items. Scenes depend only on (region, date,
config), so an archive written for one run date is reused, scene by scene, by the
next. Clouds come with offset shadows (SCL 8/9 and 3), cirrus (SCL 10), an unmasked
haze fringe, path-radiance haze and noise. The true footprints of events are
written as GeoJSON with the class the algorithm should give them on a run date.

Detection is :class:`~ccapi_monitor.detection.stac.StacBackend` on the written
ItemCollection: the same loader, reader and algorithm as real data.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import multiprocessing
import os
import signal
import threading
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import pystac
import rasterio
import rasterio.features
import shapely
import structlog
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import reproject, transform_bounds
from scipy import ndimage
from scipy.spatial import cKDTree
from shapely.geometry import box, mapping, shape
from threadpoolctl import threadpool_limits

from ccapi_monitor.detection.base import ImageryBackend
from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.detection.stac import LEGACY_COLLECTION, LedgerState, OffsetLedger, StacBackend
from ccapi_monitor.errors import AbortedError, DetectionError
from ccapi_monitor.models import DetectionResult, ImageryCorrection
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region

log = structlog.get_logger(__name__)

# rasterio wraps numpy arrays in temporary datasets before applying the transforms that
# ``_to_tile`` passes, and warns about that step; the output is georeferenced. A filter
# (not catch_warnings) because tiles are written from several threads at once.
warnings.filterwarnings(
    "ignore", message="Dataset has no geotransform", category=NotGeoreferencedWarning, module="rasterio.warp"
)

GENERATOR_VERSION: Final = 2
#: Sentinel-2 scenes fall on a fixed 5-day grid (S2A + S2B revisit) from this day.
SCENE_EPOCH: Final = date(2015, 7, 4)
CADENCE_DAYS: Final = 5
#: Planted events start here, so the landscape of any date is the same for every run.
EVENT_EPOCH: Final = date(2024, 1, 1)
#: Asset key -> pixel size factor (1: 10 m bands, 2: 20 m bands), Earth Search layout.
ASSETS: Final[dict[str, int]] = {
    "blue": 1,
    "green": 1,
    "red": 1,
    "nir": 1,
    "swir16": 2,
    "swir22": 2,
    "scl": 2,
}
UNUSED_ASSETS: Final = ("blue", "swir22")
BANDS: Final[tuple[str, ...]] = ("blue", "green", "red", "nir", "swir16", "swir22")

# Land cover codes of the landcover raster written beside the archive.
FOREST, TREE_CROPS, PADDY, SETTLEMENT, WATER, DRY_FIELD = 1, 2, 3, 4, 5, 6
LANDCOVER_NAMES: Final = {
    FOREST: "forest",
    TREE_CROPS: "tree_crops",
    PADDY: "paddy",
    SETTLEMENT: "settlement",
    WATER: "water",
    DRY_FIELD: "dry_field",
}
#: Rain-fed fields (tegalan, palawija): bare and dry for about three months from this
#: day of the year (plus up to 10 days per irrigation block), green the rest of the year.
DRY_FIELD_BARE_FROM: Final = 160
DRY_FIELD_BARE_DAYS: Final = 95

#: Endmember surface reflectances (blue, green, red, nir, swir16, swir22), typical of
#: Sentinel-2 L2A over Java: dense canopy, moist soil/stubble, turbid water, roofs and
#: roads, fresh earthworks, and cloud tops.
ENDMEMBERS: Final = np.array(
    [
        [0.020, 0.050, 0.030, 0.320, 0.150, 0.070],  # vegetation
        [0.070, 0.100, 0.130, 0.200, 0.280, 0.200],  # soil / stubble
        [0.060, 0.070, 0.050, 0.030, 0.010, 0.005],  # water
        [0.090, 0.110, 0.130, 0.180, 0.220, 0.190],  # urban
        [0.100, 0.130, 0.170, 0.230, 0.310, 0.250],  # earthworks / bare fill
    ],
    dtype=np.float32,
)
VEG, SOIL, WAT, URBAN, EARTH = range(5)
CLOUD: Final = np.array([0.45, 0.45, 0.46, 0.48, 0.35, 0.25], dtype=np.float32)
HAZE_WEIGHTS: Final = np.array([1.0, 0.8, 0.6, 0.3, 0.1, 0.05], dtype=np.float32)

PADDY_CYCLE_DAYS: Final = 120
#: Regions under persistent cloud in the wet season (a highland that rains most afternoons
#: from November to March): their scenes are at least ``WET_CLOUD_COVER`` clouded while the
#: season factor (1 mid-January, -1 mid-July) is above ``WET_SEASON``, early November to
#: late March, so a wet-season run reports them as ``insufficient_observations``, as a real
#: one would. Constants rather than DemoConfig fields: the config's fingerprint seeds every
#: scene's clouds, and other regions' scenes must not change with this list.
CLOUD_PRONE: Final = ("bogor_puncak_highland",)
WET_SEASON: Final = 0.3
WET_CLOUD_COVER: Final = 0.97
#: How often a region thread waiting on a detection worker looks at its cancel event.
_POLL_S: Final = 0.2


@dataclass(frozen=True)
class DemoConfig:
    """Everything that shapes the archive; its hash names the archive folder."""

    #: Pixel size of the "10 m" bands; SWIR and SCL are written at twice this.
    scale_m: float = 100.0
    #: Keep every n-th 5-day scene in the baseline window (the last ``persist_days``
    #: keep every scene, where the persistence and current statistics need them).
    baseline_step: int = 3
    #: One event slot every this many days per 500 km2 of region.
    event_every_days: float = 7.0
    event_ha: tuple[float, float] = (4.0, 40.0)
    #: Share of events that are paddy-to-construction (the rest: forest clearing).
    construction_share: float = 0.4
    #: Mean cloud cover, with a seasonal swing (wetter around January).
    cloud_mean: float = 0.35
    cloud_season: float = 0.15
    noise: float = 0.02
    #: Also write ``blue`` and ``swir22`` (never read by the algorithm): the full Earth
    #: Search asset set, at 40 % more files. Off for ``make demo``, on in the tests.
    all_assets: bool = False
    #: COG compression: zstd writes and reads fastest (the demo budget); Earth Search
    #: serves deflate, which the benchmark uses so its read floor is realistic.
    compress: str = "zstd"
    #: Share of the paddy irrigation blocks that are rain-fed dry fields (dry-season fallow).
    dry_field_share: float = 0.15
    #: One region in this many is covered by two overlapping granules (MGRS tiles) a day.
    overlap_every: int = 3
    #: Share of items whose declared offset disagrees with their pixels (both directions).
    mislabel_share: float = 0.15

    @cached_property
    def fingerprint(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]


@dataclass(frozen=True)
class Event:
    id: str
    kind: str  # "clearing" | "construction"
    day: date
    pixels: NDArray[np.intp] = field(repr=False)  # flat indices on the world grid


@dataclass
class World:
    """The static landscape of one region and its planted events, on the region's grid."""

    region: str
    grid: RegionGrid
    landcover: NDArray[np.uint8]
    phase: NDArray[np.float32]  # paddy cycle offset in days (0 elsewhere)
    settle_veg: NDArray[np.float32]
    texture: NDArray[np.float32]
    events: list[Event]


def _seed(*parts: object) -> int:
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cell_px: float) -> NDArray[np.float32]:
    """Smooth random field in [0, 1]: bilinear upsampling of coarse uniform noise."""
    cell = max(1.0, cell_px)
    low = rng.random((int(shape[0] / cell) + 3, int(shape[1] / cell) + 3), dtype=np.float32)
    zoomed = ndimage.zoom(low, cell, order=1, prefilter=False)
    return np.ascontiguousarray(zoomed[: shape[0], : shape[1]])


def scene_days(run_date: date, params: DetectionParams, config: DemoConfig) -> list[date]:
    """Scene dates of the archive for a run: every 5 days in the persistence window,
    every ``baseline_step``-th scene of the fixed 5-day grid before it."""
    windows = params.windows(run_date)
    first = (windows.span.start - SCENE_EPOCH).days // CADENCE_DAYS
    last = (windows.span.end - SCENE_EPOCH).days // CADENCE_DAYS + 1
    days = []
    for k in range(max(first, 0), last + 1):
        day = SCENE_EPOCH + timedelta(days=k * CADENCE_DAYS)
        if not windows.span.contains(day):
            continue
        if windows.baseline.contains(day) and k % config.baseline_step:
            continue
        days.append(day)
    return days


def build_world(region: Region, config: DemoConfig, until: date) -> World:
    """Landscape and events (up to ``until``) of a region; deterministic per region and config."""
    grid = RegionGrid.for_geometry(region.geometry, region.utm_epsg, config.scale_m, margin_px=2)
    rng = np.random.default_rng(_seed("world", region.name, config.fingerprint))
    shape2 = grid.shape
    px_per_km = 1000.0 / config.scale_m
    settle_share = {"urban": 0.35, "industrial": 0.25}.get(region.focus, 0.12)
    landcover = np.full(shape2, PADDY, dtype=np.uint8)
    relief = _smooth(rng, shape2, 4 * px_per_km)
    settle = _smooth(rng, shape2, 1.5 * px_per_km) + 0.4 * _smooth(rng, shape2, 0.5 * px_per_km)
    landcover[relief >= np.quantile(relief, 0.62)] = FOREST
    crops = _smooth(rng, shape2, 1.0 * px_per_km)
    landcover[(landcover == FOREST) & (crops > 0.55)] = TREE_CROPS
    landcover[settle >= np.quantile(settle, 1 - settle_share)] = SETTLEMENT
    water = _smooth(rng, shape2, 0.8 * px_per_km)
    landcover[water >= np.quantile(water, 0.975)] = WATER
    # Irrigation blocks (Voronoi cells of ~400 m) share a planting date.
    n_blocks = max(4, int(grid.width * grid.height / (0.4 * px_per_km) ** 2))
    seeds = rng.random((n_blocks, 2)) * np.array(shape2)
    rows, cols = np.indices(shape2)
    _, block = cKDTree(seeds).query(np.column_stack([rows.ravel(), cols.ravel()]))
    block_phase = rng.random(n_blocks).astype(np.float32) * PADDY_CYCLE_DAYS
    dry_blocks = rng.random(n_blocks) < config.dry_field_share
    landcover[(landcover == PADDY) & dry_blocks[block].reshape(shape2)] = DRY_FIELD
    phase = np.where(np.isin(landcover, (PADDY, DRY_FIELD)), block_phase[block].reshape(shape2), 0)
    phase = phase.astype(np.float32)
    settle_veg = (0.05 + 0.25 * _smooth(rng, shape2, 0.3 * px_per_km)).astype(np.float32)
    texture = (1.0 + 0.04 * rng.standard_normal(shape2, dtype=np.float32)).astype(np.float32)
    world = World(region.name, grid, landcover, phase, settle_veg, texture, [])
    world.events = _plant_events(world, region, config, until)
    return world


def _plant_events(world: World, region: Region, config: DemoConfig, until: date) -> list[Event]:
    """Events on a fixed calendar from EVENT_EPOCH; each grows as a blob inside its land cover."""
    grid = world.grid
    rng = np.random.default_rng(_seed("events", region.name, config.fingerprint))
    every = config.event_every_days * 500.0 / max(region.area_km2, 1.0)
    pixel_ha = config.scale_m**2 / 10_000
    used = np.zeros(grid.shape, dtype=bool)
    border = np.zeros(grid.shape, dtype=bool)
    border[4:-4, 4:-4] = True
    border &= grid.mask(region.geometry)
    paddy = (world.landcover == PADDY) & border
    trees = np.isin(world.landcover, (FOREST, TREE_CROPS)) & border
    events: list[Event] = []
    k = 0
    while True:
        day = EVENT_EPOCH + timedelta(days=int(k * every + rng.random() * every))
        k += 1
        if day >= until:
            return events
        construction = rng.random() < config.construction_share
        allowed = (paddy if construction else trees) & ~used
        target = max(6, int(rng.uniform(*config.event_ha) / pixel_ha))
        candidates = np.flatnonzero(allowed)
        if candidates.size < target:
            continue
        seed = int(candidates[rng.integers(candidates.size)])
        blob = _grow_blob(allowed, seed, target, rng)
        used |= _dilate(_dilate(blob))
        kind = "construction" if construction else "clearing"
        events.append(Event(f"{region.name}-{k:04d}", kind, day, np.flatnonzero(blob)))


def _dilate(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """One step of binary dilation by the 4-neighbour cross, outside the array counted empty.

    The same pixels as ``scipy.ndimage.binary_dilation(mask)``, without its per-call set-up
    (which made planting the events of one region cost a fifth of a second).
    """
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _grow_blob(
    allowed: NDArray[np.bool_], seed: int, target: int, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """A compact random blob of about ``target`` allowed pixels around ``seed``."""
    height, width = allowed.shape
    r, c = divmod(seed, width)
    half = int(math.sqrt(target) * 2) + 4
    r0, r1, c0, c1 = max(0, r - half), min(height, r + half), max(0, c - half), min(width, c + half)
    sub_allowed = allowed[r0:r1, c0:c1]
    blob = np.zeros(sub_allowed.shape, dtype=bool)
    blob[r - r0, c - c0] = True
    while blob.sum() < target:
        ring = _dilate(blob) & sub_allowed & ~blob
        if not ring.any():
            break
        grow = ring & (rng.random(ring.shape) < 0.5)
        blob |= grow if grow.any() else ring
    blob = ndimage.binary_fill_holes(blob) & sub_allowed
    full = np.zeros(allowed.shape, dtype=bool)
    full[r0:r1, c0:c1] = blob
    return full


def truth_class(event: Event, run_date: date) -> str | None:
    """The class the algorithm should report for an event on ``run_date``.

    ``transition`` marks ages where the answer depends on clouds and percentiles
    (being cleared now, clearing drifting into the baseline, construction not yet
    persistent); tests exclude those footprints from accuracy. ``settled``: so old
    that the whole baseline already shows it (no change expected). ``None``: not yet.
    """
    age = (run_date - event.day).days
    if age < 0:
        return None
    if age >= 440:
        return "settled"
    if event.kind == "clearing":
        if 30 <= age <= 75:
            return "vegetation_clearing"
        if 130 <= age <= 280:
            return "built_up"
        return "transition"
    if 65 <= age <= 250:
        return "built_up"
    return "transition"


def _fractions(world: World, day: date) -> NDArray[np.float32]:
    """Endmember fractions ``(5, H, W)`` of every pixel on ``day``."""
    lc = world.landcover
    f = np.zeros((5, *lc.shape), dtype=np.float32)
    season = 0.03 * math.sin(2 * math.pi * day.timetuple().tm_yday / 365.0)
    forest = lc == FOREST
    f[VEG][forest], f[SOIL][forest] = 0.95 + season, 0.05 - season
    crops = lc == TREE_CROPS
    f[VEG][crops], f[SOIL][crops] = 0.82 + 2 * season, 0.18 - 2 * season
    settle = lc == SETTLEMENT
    f[VEG][settle] = world.settle_veg[settle]
    f[URBAN][settle] = 1 - world.settle_veg[settle]
    water = lc == WATER
    f[WAT][water], f[SOIL][water] = 0.9, 0.1
    paddy = lc == PADDY
    d = (day.toordinal() + world.phase[paddy]) % PADDY_CYCLE_DAYS
    veg = np.select(
        [d < 20, d < 90, d < 100],
        [np.full_like(d, 0.03), 0.1 + 0.85 * np.clip((d - 20) / 45, 0, 1) ** 1.5, 0.95 - 0.045 * (d - 90)],
        0.05,
    )
    wat = np.select([d < 20, d < 55], [np.full_like(d, 0.92), 0.8 * (1 - (d - 20) / 35)], 0.0)
    wat = np.minimum(wat, 1 - veg)
    f[VEG][paddy], f[WAT][paddy], f[SOIL][paddy] = veg, wat, 1 - veg - wat
    dry = lc == DRY_FIELD
    # Day within the field's year, counted from the start of its bare dry season.
    d = (day.timetuple().tm_yday - DRY_FIELD_BARE_FROM - world.phase[dry] / 12) % 365
    bare = DRY_FIELD_BARE_DAYS
    veg = np.select(
        [d < bare, d < bare + 30, d < 345],
        [np.full_like(d, 0.05), 0.05 + 0.8 * (d - bare) / 30, np.full_like(d, 0.85)],
        0.85 - 0.8 * (d - 345) / 20,
    )
    f[VEG][dry], f[SOIL][dry] = veg, 1 - veg
    # Events up to ``day`` (planted in date order), painted per kind at once: they never overlap.
    happened = world.events[: bisect.bisect_right(world.events, day, key=lambda e: e.day)]
    flat = f.reshape(5, -1)
    for kind in ("clearing", "construction"):
        pixels = [e.pixels for e in happened if e.kind == kind]
        if not pixels:
            continue
        at = np.concatenate(pixels)
        flat[:, at] = 0
        if kind == "clearing":
            flat[EARTH, at], flat[VEG, at], flat[SOIL, at] = 0.8, 0.1, 0.1
        else:
            flat[EARTH, at], flat[URBAN, at] = 0.7, 0.3
    return f


def _has_offset(day: date) -> bool:
    """Part of the archive is 'reprocessed' (baseline 05.10, offset -0.1), part not."""
    return (day.toordinal() // 30) % 2 == 0


@dataclass
class SceneArrays:
    """One synthetic scene: reflectance bands on the world grid, SCL at twice the pixel size."""

    bands: dict[str, NDArray[np.float32]]
    scl: NDArray[np.uint8]
    cloud_cover: float


def synthesize(world: World, day: date, config: DemoConfig) -> SceneArrays:
    """The scene of ``day``: land cover mixture, haze, noise, clouds, shadows and SCL."""
    rng = np.random.default_rng(_seed("scene", world.region, day.isoformat(), config.fingerprint))
    height, width = world.grid.shape
    h2, w2 = height // 2, width // 2
    # Only the bands written: blue and swir22 are synthesized with ``all_assets`` alone (every
    # band is computed on its own, so the others' pixels are the same either way).
    sel = slice(0, len(BANDS)) if config.all_assets else slice(1, len(BANDS) - 1)
    at = {name: i for i, name in enumerate(BANDS[sel])}
    fractions = _fractions(world, day).reshape(5, -1)
    refl = (ENDMEMBERS.T[sel] @ fractions).reshape(len(at), height, width)
    refl *= world.texture
    refl[at["green"] : at["nir"] + 1] *= 1 + config.noise * rng.standard_normal(
        (3, height, width), dtype=np.float32
    )
    px_per_km = 1000.0 / (2 * config.scale_m)
    haze = rng.exponential(0.012) * (0.5 + _smooth(rng, (h2, w2), 5 * px_per_km))
    refl += HAZE_WEIGHTS[sel, None, None] * np.repeat(np.repeat(haze, 2, 0), 2, 1)[None]
    # Clouds on the 20 m grid, so SCL and reflectance agree pixel for pixel.
    wet = math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.0)
    cover = float(np.clip(config.cloud_mean + config.cloud_season * wet + 0.25 * rng.standard_normal(), 0, 1))
    if rng.random() < 0.04:
        cover = 1.0
    if world.region in CLOUD_PRONE and wet > WET_SEASON:
        cover = max(cover, WET_CLOUD_COVER)
    field2 = 0.7 * _smooth(rng, (h2, w2), 3 * px_per_km) + 0.3 * _smooth(rng, (h2, w2), 0.6 * px_per_km)
    threshold = np.quantile(field2, 1 - cover) if cover > 0 else np.inf
    cloud = field2 >= threshold
    thick = field2 >= threshold + 0.08
    fringe = (field2 >= threshold - 0.02) & ~cloud
    shift_px = max(1, round(900 / (2 * config.scale_m)))
    shadow = np.zeros_like(cloud)
    shadow[shift_px:, :-shift_px] = cloud[:-shift_px, shift_px:]
    shadow &= ~cloud
    cirrus = np.zeros_like(cloud)
    if rng.random() < 0.1:
        cirrus_field = _smooth(rng, (h2, w2), 4 * px_per_km)
        cirrus = (cirrus_field >= np.quantile(cirrus_field, 0.7)) & ~cloud & ~shadow

    def up(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
        return np.repeat(np.repeat(mask, 2, 0), 2, 1)

    # Masked writes (copyto/where) rather than boolean indexing: the same arithmetic per
    # pixel, without gathering and scattering the masked pixels of every band.
    for mask2, alpha in ((cloud, 1.0), (fringe, 0.12), (cirrus, 0.15)):
        np.copyto(refl, (1 - alpha) * refl + alpha * CLOUD[sel, None, None], where=up(mask2)[None])
    np.multiply(refl, 0.3, out=refl, where=up(shadow)[None])
    np.clip(refl, 0.0001, 1.5, out=refl)
    # SCL from 20 m block means, as Sen2Cor classifies at 20 m.
    coarse = 0.25 * (refl[:, ::2, ::2] + refl[:, 1::2, ::2] + refl[:, ::2, 1::2] + refl[:, 1::2, 1::2])
    green, red, nir = coarse[at["green"]], coarse[at["red"]], coarse[at["nir"]]
    ndvi = (nir - red) / (nir + red)
    ndwi = (green - nir) / (green + nir)
    scl = np.select([ndvi > 0.35, ndwi > 0.1], [4, 6], 5).astype(np.uint8)
    scl[ndvi < -0.5] = 2
    scl[shadow] = 3
    scl[cirrus] = 10
    scl[cloud] = 8
    scl[thick] = 9
    bands = {name: coarse[i] if ASSETS[name] > 1 else refl[i] for name, i in at.items()}
    return SceneArrays(bands=bands, scl=scl, cloud_cover=float(cloud.mean() * 100))


@dataclass(frozen=True)
class Tile:
    """Where a region's scenes are written: one tile per UTM zone the region touches, or
    two overlapping granules of one zone (like adjacent MGRS tiles)."""

    epsg: int
    grid: RegionGrid
    code: str = ""

    @property
    def name(self) -> str:
        return f"{self.epsg}{self.code}"


def overlapping_granules(grid: RegionGrid, overlap: float = 0.3) -> list[RegionGrid]:
    """A north and a south granule sharing ``overlap`` of the grid's rows (origins stay on
    the 2-pixel snap, so the 20 m assets align)."""
    split = 2 * round(grid.height * (1 + overlap) / 4)
    south_top = grid.height - split
    return [
        RegionGrid(grid.epsg, grid.scale_m, grid.west, grid.north, grid.width, split),
        RegionGrid(
            grid.epsg, grid.scale_m, grid.west, grid.north - south_top * grid.scale_m, grid.width, split
        ),
    ]


def region_tiles(region: Region, world_grid: RegionGrid, config: DemoConfig | None = None) -> list[Tile]:
    """Real MGRS tiles are in the zone of their longitude; a region across a zone border gets
    two. One region in ``config.overlap_every`` lies in the overlap of two granules of its zone."""
    west, south, east, north = region.bounds
    zones = range(int((west + 180) // 6) + 1, int((east - 1e-9 + 180) // 6) + 2)
    if len(zones) == 1:
        if config is not None and _seed("granules", region.name) % config.overlap_every == 0:
            north_grid, south_grid = overlapping_granules(world_grid)
            return [Tile(world_grid.epsg, north_grid, "N"), Tile(world_grid.epsg, south_grid, "S")]
        return [Tile(world_grid.epsg, world_grid)]
    tiles = []
    base = 32700 if (south + north) / 2 < 0 else 32600
    for zone in zones:
        lo, hi = -180 + (zone - 1) * 6, -180 + zone * 6
        part = region.geometry.intersection(box(max(west, lo - 0.02), south, min(east, hi + 0.02), north))
        if part.is_empty:
            continue
        epsg = base + zone
        tiles.append(Tile(epsg, RegionGrid.for_geometry(part, epsg, world_grid.scale_m, margin_px=2)))
    return tiles


def cog_blocksize(width: int, height: int) -> int:
    """Tile side of a COG: GDAL's default 512, or the smallest multiple of 16 holding the whole
    image when that is smaller (the COG driver's minimum is 128). The demo's 100 m scenes are
    ~230 px a side: in one 512 tile they would be three-quarters padding, compressed on every
    write and decoded on every read (a 240 tile halves the write and cuts a read by a quarter)."""
    return max(128, min(512, 16 * math.ceil(max(width, height) / 16)))


def _write_cog(path: Path, array: NDArray[Any], grid: RegionGrid, compress: str = "zstd") -> None:
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=grid.width,
        height=grid.height,
        count=1,
        dtype=array.dtype.name,
        crs=f"EPSG:{grid.epsg}",
        transform=grid.transform,
        nodata=0,
        compress=compress,
        level=1 if compress == "zstd" else 6,
        predictor=2,
        blocksize=cog_blocksize(grid.width, grid.height),
        overviews="NONE",
    ) as dst:
        dst.write(array, 1)


def _to_tile(array: NDArray[Any], src: RegionGrid, dst: RegionGrid) -> NDArray[Any]:
    if src == dst:
        return array
    if src.epsg == dst.epsg and src.scale_m == dst.scale_m and src.west == dst.west:
        row = round((src.north - dst.north) / src.scale_m)  # a granule cut from the same grid
        return np.ascontiguousarray(array[row : row + dst.height, : dst.width])
    out = np.zeros(dst.shape, dtype=array.dtype)
    reproject(
        array,
        out,
        src_transform=src.transform,
        src_crs=f"EPSG:{src.epsg}",
        dst_transform=dst.transform,
        dst_crs=f"EPSG:{dst.epsg}",
        resampling=Resampling.nearest,
        src_nodata=0,
        dst_nodata=0,
    )
    return out


class DemoArchive:
    """The on-disk archive: ``<dir>/<config hash>/{scenes,items,truth,landcover}``."""

    def __init__(self, archive_dir: Path, config: DemoConfig, params: DetectionParams) -> None:
        self.config = config
        self.params = params
        self.root = Path(archive_dir) / f"v{GENERATOR_VERSION}-{config.fingerprint}"
        self._worlds: dict[tuple[str, date], World] = {}
        self._lock = threading.Lock()

    def items_path(self, region: str, run_date: date) -> Path:
        return self.root / "items" / f"{region}_{run_date.isoformat()}.json"

    def truth_path(self, region: str, run_date: date) -> Path:
        return self.root / "truth" / f"{region}_{run_date.isoformat()}.geojson"

    def landcover_path(self, region: str) -> Path:
        return self.root / "landcover" / f"{region}.tif"

    def world(self, region: Region, until: date) -> World:
        key = (region.name, until)
        with self._lock:
            if key in self._worlds:
                return self._worlds[key]
        built = build_world(region, self.config, until)  # outside the lock: regions build in parallel
        with self._lock:
            return self._worlds.setdefault(key, built)

    def prepare(self, regions: Sequence[Region], run_date: date, workers: int | None = None) -> None:
        """Write whatever scenes, items, truth and land cover are missing for ``run_date``.

        Regions go to ``workers`` processes (default: one per CPU): synthesis is many small
        numpy steps that hold the GIL, so threads overlap little of it. Forked, the workers
        start with the modules already imported. With fewer regions than workers (a
        benchmark's one large region) each region's dates are split among them. OpenBLAS
        (the endmember mixing) runs on one thread: on arrays this small its extra threads
        add no speed, and they spin between calls, taking a core from the other worker.
        """
        todo = [r for r in regions if not self.items_path(r.name, run_date).is_file()]
        days = scene_days(run_date, self.params, self.config)
        workers = max(1, workers or os.cpu_count() or 1)
        split = max(1, min(len(days), workers // max(1, len(todo))))
        units = [(region, days[i::split], split == 1) for region in todo for i in range(split)]
        pool = _fork_pool(min(workers, len(units)), _archive_worker)
        if pool is not None:
            try:
                jobs = [
                    pool.apply_async(
                        _write_region, (self.root.parent, self.config, self.params, run_date, *unit)
                    )
                    for unit in units
                ]
                parts = [job.get() for job in jobs]
                pool.close()
            finally:
                # On SIGTERM or a worker's error, stop the others now: waiting for every
                # region to be written would outlast ECS's stop timeout.
                pool.terminate()
                pool.join()
        else:
            with threadpool_limits(1, user_api="blas"):
                parts = [self.write_region(run_date, *unit) for unit in units]
        if split > 1:  # the regions whose dates were split: finished here, dates in order
            for region in todo:
                scenes: dict[date, list[dict[str, Any]]] = {}
                for (of, _, _), part in zip(units, parts, strict=True):
                    if of is region:
                        scenes.update(part)
                self.finish_region(region, run_date, [item for day in days for item in scenes[day]])
        log.info(
            "demo.archive_ready",
            root=str(self.root),
            regions=len(regions),
            written=len(todo),
            scenes=len(days),
        )

    def write_region(
        self, run_date: date, region: Region, days: Sequence[date], finish: bool
    ) -> dict[date, list[dict[str, Any]]]:
        """The scenes of ``days`` (their STAC items by date); with ``finish``, ``days`` are all
        the run's and the region is finished here (nothing returned)."""
        world = self.world(region, run_date)
        scenes = {day: self._scene(region, world, day) for day in days}
        if not finish:
            return scenes
        self.finish_region(region, run_date, [item for day in days for item in scenes[day]])
        return {}

    def finish_region(self, region: Region, run_date: date, items: list[dict[str, Any]]) -> None:
        """Truth and land cover, then the items file last: the items file of a run date
        exists only once everything it lists does (``prepare`` skips such regions)."""
        world = self.world(region, run_date)
        self._write_truth(region, world, run_date)
        self._write_landcover(world)
        self._write_json(
            self.items_path(region.name, run_date), {"type": "FeatureCollection", "features": items}
        )

    @staticmethod
    def _write_json(path: Path, document: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps(document), encoding="utf-8")
        tmp.replace(path)

    def _scene(self, region: Region, world: World, day: date) -> list[dict[str, Any]]:
        """The STAC items (as JSON documents) of one scene, writing its COGs unless a previous
        run already did."""
        tiles = region_tiles(region, world.grid, self.config)
        scene: SceneArrays | None = None
        items: list[dict[str, Any]] = []
        for tile in tiles:
            item_id = f"S2D_{tile.name}_{region.name}_{day:%Y%m%d}_0_L2A"
            folder = self.root / "scenes" / region.name / item_id
            done = folder / "item.json"
            if done.exists():
                items.append(json.loads(done.read_text(encoding="utf-8")))
                continue
            if scene is None:
                scene = synthesize(world, day, self.config)
            folder.mkdir(parents=True, exist_ok=True)
            offset = _has_offset(day)
            # Some items declare the other convention than their pixels carry, as on Earth
            # Search's sentinel-2-l2a: offset pixels without the offset in the metadata, or
            # an offset declared for pixels that never had it (flagged as already applied).
            mislabelled = (
                _seed("label", item_id, self.config.fingerprint) % 1000 < 1000 * self.config.mislabel_share
            )
            declared = offset != mislabelled
            assets = {}
            for key, factor in ASSETS.items():
                if key in UNUSED_ASSETS and not self.config.all_assets:
                    continue
                src_grid = world.grid.coarsened(factor) if factor > 1 else world.grid
                dst_grid = tile.grid.coarsened(factor) if factor > 1 else tile.grid
                if key == "scl":
                    dn = scene.scl
                else:
                    dn = np.clip(np.rint(scene.bands[key] * 10_000) + (1000 if offset else 0), 1, 65535)
                    dn = dn.astype(np.uint16)
                _write_cog(
                    folder / f"{key}.tif", _to_tile(dn, src_grid, dst_grid), dst_grid, self.config.compress
                )
                band: dict[str, Any] = {
                    "nodata": 0,
                    "data_type": dn.dtype.name,
                    "spatial_resolution": dst_grid.scale_m,
                }
                if key != "scl" and declared:
                    band.update(scale=0.0001, offset=-0.1)
                assets[key] = pystac.Asset(
                    href=f"../scenes/{region.name}/{item_id}/{key}.tif",
                    media_type=pystac.MediaType.COG,
                    roles=["data"],
                    extra_fields={
                        "raster:bands": [band],
                        "proj:shape": list(dst_grid.shape),
                        "proj:transform": list(dst_grid.transform)[:6],
                    },
                )
            west, south, east, north = transform_bounds(tile.epsg, 4326, *tile.grid.bounds)
            item = pystac.Item(
                id=item_id,
                geometry=mapping(box(west, south, east, north)),
                bbox=[west, south, east, north],
                datetime=datetime.combine(day, time(3, 0), tzinfo=UTC),
                properties={
                    "platform": "sentinel-2-demo",
                    "constellation": "sentinel-2",
                    "eo:cloud_cover": round(scene.cloud_cover, 2),
                    "s2:processing_baseline": "05.10" if offset or mislabelled else "03.01",
                    "earthsearch:boa_offset_applied": mislabelled and not offset,
                    "proj:epsg": tile.epsg,
                    "demo:synthetic": True,
                    "demo:declared_offset_wrong": mislabelled,
                },
                collection=LEGACY_COLLECTION,
            )
            for key, asset in assets.items():
                item.add_asset(key, asset)
            item.collection_id = LEGACY_COLLECTION
            document = item.to_dict(include_self_link=False, transform_hrefs=False)
            self._write_json(done, document)
            items.append(document)
        return items

    def _write_truth(self, region: Region, world: World, run_date: date) -> None:
        """Event footprints (exactly the pixels the generator painted) with their expected class."""
        features = []
        grid = world.grid
        # One polygonization of all events at once (value k + 1 for the k-th): events never touch
        # (each keeps two pixels from the others), so each one's polygons are those it would
        # get alone, without a scan of the grid per event.
        labels = np.zeros(grid.shape, dtype=np.int32)
        for k, event in enumerate(world.events):
            labels.ravel()[event.pixels] = k + 1
        polygons: dict[int, list[Any]] = {}
        for geometry, value in rasterio.features.shapes(labels, mask=labels > 0, transform=grid.transform):
            polygons.setdefault(int(value) - 1, []).append(shape(geometry))
        for k, event in enumerate(world.events):
            expected = truth_class(event, run_date)
            if expected is None:
                continue
            parts = polygons[k]
            footprint = grid.unproject(shapely.union_all(parts))
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "id": event.id,
                        "kind": event.kind,
                        "event_date": event.day.isoformat(),
                        "class": expected,
                        "area_ha": round(event.pixels.size * grid.pixel_area_ha, 4),
                    },
                    "geometry": mapping(footprint),
                }
            )
        self._write_json(
            self.truth_path(region.name, run_date),
            {"type": "FeatureCollection", "run_date": run_date.isoformat(), "features": features},
        )

    def _write_landcover(self, world: World) -> None:
        path = self.landcover_path(world.region)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_cog(path, world.landcover, world.grid)


def _fork_pool(processes: int, initializer: Callable[[], None]) -> Pool | None:
    """Forked worker processes (they start with the modules imported), or ``None`` where one
    would do or ``fork`` is not available. A Pool forks every worker at once, and its workers
    are terminated when the process exits (SIGTERM included) instead of being waited for, as
    an executor's would be."""
    if processes < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return multiprocessing.get_context("fork").Pool(processes, initializer)


def _worker_signals() -> None:
    """Worker process initializer: the default SIGTERM and no SIGINT. Forked workers inherit
    the job's handlers, which turn a signal into an abort the parent handles; in a pool
    worker that would be caught and the worker would live on, so ``Pool.terminate`` (on
    SIGTERM, at exit) would wait for it. Ctrl-C reaches the whole process group: the
    parent decides."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _archive_worker() -> None:
    """Archive worker initializer: signals as above, OpenBLAS on one thread (see
    :meth:`DemoArchive.prepare`)."""
    _worker_signals()
    threadpool_limits(1, user_api="blas")


def _write_region(
    archive_dir: Path,
    config: DemoConfig,
    params: DetectionParams,
    run_date: date,
    region: Region,
    days: Sequence[date],
    finish: bool,
) -> dict[date, list[dict[str, Any]]]:
    """:meth:`DemoArchive.write_region` in a worker process."""
    return DemoArchive(archive_dir, config, params).write_region(run_date, region, days, finish)


#: The worker process's backend per archive (its parsed items and offset verdicts).
_WORKER_BACKENDS: dict[tuple[Path, DemoConfig], DemoBackend] = {}


def _detect_region(
    archive_dir: Path, config: DemoConfig, params: DetectionParams, region: Region, run_date: date
) -> tuple[DetectionResult, LedgerState]:
    """:meth:`DemoBackend.detect_here` in a worker process, with the offset verdicts the
    worker made since its previous region."""
    backend = _WORKER_BACKENDS.get((archive_dir, config))
    if backend is None:
        backend = _WORKER_BACKENDS.setdefault((archive_dir, config), DemoBackend(params, archive_dir, config))
    return backend.detect_here(region, run_date), backend.offsets.news()


class DemoBackend(ImageryBackend):
    """Synthetic archive + the stac code path; every result says ``source: demo``."""

    name: ClassVar[str] = "demo"

    def __init__(self, params: DetectionParams, archive_dir: Path, config: DemoConfig | None = None) -> None:
        self.config = config or DemoConfig()
        super().__init__(self.demo_params(params, self.config))
        self.archive = DemoArchive(Path(archive_dir), self.config, self.params)
        self.offsets = OffsetLedger()
        self._stac: dict[Path, StacBackend] = {}
        self._stac_lock = threading.Lock()
        self._workers: Pool | None = None

    @staticmethod
    def demo_params(params: DetectionParams, config: DemoConfig | None = None) -> DetectionParams:
        """The parameters a demo run actually uses: the archive's pixel size, all else unchanged."""
        return params.model_copy(update={"scale_m": (config or DemoConfig()).scale_m})

    def describe(self, run_date: date) -> dict[str, Any]:
        return {
            "source": self.name,
            "archive": str(self.archive.root),
            "collection": LEGACY_COLLECTION,
            "synthetic": True,
            "scale_m": self.config.scale_m,
            "scenes": len(scene_days(run_date, self.params, self.config)),
            "config": asdict(self.config),
        }

    def prepare(self, regions: list[Region], run_date: date) -> None:
        """Write the archive, then fork the detection workers (here, on the main thread,
        before any region thread or GDAL read is running)."""
        self.archive.prepare(regions, run_date)
        if self._workers is None:
            self._workers = _fork_pool(min(len(regions), os.cpu_count() or 1), _worker_signals)

    def preflight(self) -> list[str]:
        """The archive folder must be writable (it is created on first use)."""
        try:
            self.archive.root.mkdir(parents=True, exist_ok=True)
            probe = self.archive.root / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            return [f"demo archive folder {self.archive.root} is not writable: {exc.strerror or exc}"]
        return []

    def corrections(self) -> list[ImageryCorrection]:
        return [ImageryCorrection(**c.as_dict()) for c in self.offsets.corrections()]

    def items_read(self) -> int | None:
        return self.offsets.items_read

    def truth_path(self, region: str, run_date: date) -> Path:
        """GeoJSON of the planted events and the class expected on ``run_date`` (for tests)."""
        return self.archive.truth_path(region, run_date)

    def landcover_path(self, region: str) -> Path:
        return self.archive.landcover_path(region)

    def detect(
        self, region: Region, run_date: date, cancel: threading.Event | None = None
    ) -> DetectionResult:
        """In a worker process once :meth:`prepare` started them: detection holds the GIL for
        most of its time (opening thousands of small COGs, numpy on small strips), so the
        runner's region threads would share one core. The worker's offset verdicts join this
        backend's ledger, which the report's chips read."""
        if self._workers is None:
            return self.detect_here(region, run_date, cancel)
        job = self._workers.apply_async(
            _detect_region, (self.archive.root.parent, self.config, self.params, region, run_date)
        )
        while True:
            try:
                result, verdicts = job.get(timeout=_POLL_S)
                break
            except multiprocessing.TimeoutError:
                if cancel is not None and cancel.is_set():
                    raise AbortedError(f"detection of {region.name} cancelled") from None
        self.offsets.absorb(verdicts)
        return result

    def detect_here(
        self, region: Region, run_date: date, cancel: threading.Event | None = None
    ) -> DetectionResult:
        """Detection in this process: the stac code path on the region's items."""
        result = self.stac(region, run_date).detect(region, run_date, cancel)
        return result.model_copy(update={"source": self.name})

    def stac(self, region: Region, run_date: date) -> StacBackend:
        """The stac backend over the region's items of ``run_date``: one per items file, so
        detection and the report's chips parse the items once."""
        items = self.archive.items_path(region.name, run_date)
        if not items.is_file():
            raise DetectionError(
                f"demo archive has no scenes for {region.name} on {run_date}: prepare() first"
            )
        with self._stac_lock:
            if items not in self._stac:
                stac = StacBackend(self.params, str(items), io_threads=1, collection=LEGACY_COLLECTION)
                stac.offsets = self.offsets  # one ledger: each item is judged and reported once
                self._stac[items] = stac
            return self._stac[items]
