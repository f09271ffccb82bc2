"""Before/after image chips of the largest new sites, for report.html.

A person believes a change polygon once they see the site green a year ago and bare
now. For the top sites of a region (new polygons, largest first) this module makes two
small images around the site, the polygon outlined:

- **after**: the latest observation in the current window that is clear over the chip;
- **before**: the greenest clear observation of the baseline window (highest median
  NDVI inside the polygon among the least cloudy candidates), i.e. the land as it was.

Images are true colour (red, green, blue) by default, or false colour (near infrared,
red, green) where vegetation shows red; an item without a blue band falls back to
false colour and the chip says so. Both chips of a site use one fixed stretch, so
brightness compares between them. Every chip is a small JPEG; the page embeds them
within :data:`PAGE_CHIP_BUDGET` bytes and shows the rest as missing, and a chip that
cannot be read is shown as missing with the reason: chips never fail a report.

Chip reading sits behind :class:`ChipSource`: :class:`CogChipSource` reads windows of
the COGs of STAC items (``stac`` and ``demo`` imagery), :class:`EarthEngineChipSource`
asks Earth Engine for the pixels of those sites only, through the request limiter.
"""

from __future__ import annotations

import functools
import io
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import pystac
import rasterio
import rasterio.errors
import structlog
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import transform, transform_geom
from rasterio.windows import Window

from ccapi_monitor.detection.stac import BandScaling, OffsetLedger, Scene, asset_href, asset_of
from ccapi_monitor.errors import CCAPIError
from ccapi_monitor.models import ChangePolygon
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region

log = structlog.get_logger(__name__)

Style = Literal["true", "false"]
When = Literal["before", "after"]

#: Sites per region that get chips (new polygons, largest first).
MAX_SITES: Final = 5
#: Output size of a chip in pixels (square); 10 m pixels of a small site are upsampled.
CHIP_PX: Final = 160
#: The chip shows the site with this much context: side = factor x the site's extent ...
CONTEXT_FACTOR: Final = 3.0
#: ... and never less than this many metres, nor this many source pixels (coarse archives).
MIN_SIDE_M: Final = 600.0
MIN_SIDE_PX: Final = 20
#: A read is at most this many source pixels a side (a huge site reads an overview).
MAX_READ_PX: Final = 320
#: Share of the site (the polygon's pixels) that must be clear (SCL kept classes, data present).
MIN_CLEAR: Final = 0.9
#: Observations tried for "after" (newest first) and "before" (least cloudy first).
AFTER_TRIES: Final = 8
BEFORE_CANDIDATES: Final = 6
JPEG_QUALITY: Final = 78
#: Encoded chip bytes one page may embed (base64 adds a third): with the maps and
#: tables the page of 29 regions stays under about 4 MB.
PAGE_CHIP_BUDGET: Final = 2_000_000
#: Regions whose chips are fetched at once. Remote COG windows and Earth Engine thumbnails
#: wait on the network (Earth Engine's requests also pass the backend's limiter), and local
#: COG opens and reads release the GIL in GDAL: one region at a time left both cores idle.
CHIP_THREADS: Final = 4

#: Asset keys (Earth Search) per style, displayed as R, G, B.
STYLE_BANDS: Final[dict[Style, tuple[str, str, str]]] = {
    "true": ("red", "green", "blue"),
    "false": ("nir", "red", "green"),
}
#: Reflectance shown as full brightness per style (a fixed stretch: before and after compare).
STYLE_MAX: Final[dict[Style, float]] = {"true": 0.3, "false": 0.45}
STYLE_NAMES: Final[dict[Style, str]] = {"true": "true colour", "false": "false colour (NIR, red, green)"}
OUTLINE: Final = (255, 230, 0)
OUTLINE_SHADOW: Final = (0, 0, 0)


@dataclass(frozen=True)
class Chip:
    """One image of a site, or why there is none (``image`` is ``None``)."""

    when: When
    image: bytes | None = None
    day: date | None = None
    #: What the image shows when it is not one acquisition (Earth Engine mosaics).
    period: str | None = None
    style: Style | None = None
    missing: str | None = None

    @property
    def mime(self) -> str:
        return "image/jpeg"

    def caption(self) -> str:
        if self.image is None:
            return f"{self.when}: no image ({self.missing or 'unknown reason'})"
        when = self.day.isoformat() if self.day else (self.period or "")
        return f"{self.when}: {when}, {STYLE_NAMES[self.style or 'true']}"


@dataclass(frozen=True)
class SiteChips:
    """The before and after chips of one change polygon."""

    polygon: ChangePolygon
    before: Chip
    after: Chip

    @property
    def size(self) -> int:
        return sum(len(c.image or b"") for c in (self.before, self.after))


class ChipSource(Protocol):
    """Makes the chips of some sites of one region; must not raise for a site it cannot read."""

    def site_chips(
        self, region: Region, polygons: Sequence[ChangePolygon], run_date: date
    ) -> list[SiteChips]: ...


def top_sites(polygons: Iterable[ChangePolygon], count: int = MAX_SITES) -> list[ChangePolygon]:
    """The ``count`` largest new polygons (ties by centroid, so the choice is deterministic)."""
    new = [p for p in polygons if p.change == "new"]
    return sorted(new, key=lambda p: (-p.area_ha, p.centroid))[:count]


def missing_site(polygon: ChangePolygon, reason: str) -> SiteChips:
    return SiteChips(polygon, Chip("before", missing=reason), Chip("after", missing=reason))


# -- geometry of a chip --------------------------------------------------------------------


@dataclass(frozen=True)
class ChipFrame:
    """A square around a site in a metric CRS: what is read, and where the outline goes."""

    crs: str
    cx: float
    cy: float
    side_m: float
    #: The polygon's rings in the frame's CRS.
    rings: tuple[tuple[tuple[float, float], ...], ...] = field(default=())

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        h = self.side_m / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)

    @classmethod
    def around(cls, polygon: ChangePolygon, crs: str, pixel_m: float = 10.0) -> ChipFrame:
        """The square around ``polygon`` in ``crs`` (metres) for imagery of ``pixel_m`` pixels."""
        geometry = transform_geom("EPSG:4326", crs, polygon.geometry)
        rings = _rings(geometry)
        xs = [x for ring in rings for x, _ in ring]
        ys = [y for ring in rings for _, y in ring]
        min_side = max(MIN_SIDE_M, MIN_SIDE_PX * pixel_m)
        if not xs:
            (x,), (y,) = transform("EPSG:4326", crs, [polygon.centroid[0]], [polygon.centroid[1]])
            return cls(crs, x, y, min_side, ())
        extent = max(max(xs) - min(xs), max(ys) - min(ys))
        side = max(min_side, CONTEXT_FACTOR * extent)
        return cls(crs, (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, side, rings)

    def pixel_rings(self, size: int) -> list[list[tuple[float, float]]]:
        west, _, _, north = self.bounds
        k = size / self.side_m
        return [[((x - west) * k, (north - y) * k) for x, y in ring] for ring in self.rings]

    def mask(self, size: int) -> NDArray[np.bool_]:
        """Pixels of a ``size`` x ``size`` read that fall inside the polygon (read-only: shared
        by every scene tried for the site, it is rasterized once)."""
        return _frame_mask(self, size)


@functools.lru_cache(maxsize=256)
def _frame_mask(frame: ChipFrame, size: int) -> NDArray[np.bool_]:
    if not frame.rings:
        mask = np.ones((size, size), dtype=bool)
    else:
        west, _, _, north = frame.bounds
        res = frame.side_m / size
        affine = rasterio.Affine(res, 0, west, 0, -res, north)
        shapes = [({"type": "Polygon", "coordinates": [list(ring)]}, 1) for ring in frame.rings[:1]]
        burned = rasterize(shapes, out_shape=(size, size), transform=affine, all_touched=True, dtype="uint8")
        mask = np.asarray(burned, dtype=bool)
    mask.setflags(write=False)
    return mask


def _rings(geometry: Mapping[str, Any]) -> tuple[tuple[tuple[float, float], ...], ...]:
    kind = geometry.get("type")
    coords = geometry.get("coordinates") or []
    polys = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
    return tuple(tuple((float(x), float(y)) for x, y, *_ in ring) for poly in polys for ring in poly)


# -- rendering -------------------------------------------------------------------------------


def render_chip(rgb: NDArray[np.float32], frame: ChipFrame, style: Style) -> bytes:
    """Reflectance (3, n, n) as a JPEG of :data:`CHIP_PX`, stretched per style, polygon outlined.

    Pixels without data are black. Upsampling is nearest neighbour: a 10 m pixel stays a
    visible square rather than a blur that suggests detail the sensor never saw.
    """
    scaled = np.nan_to_num(rgb / STYLE_MAX[style], nan=0.0)
    bytes_rgb = (np.clip(scaled, 0.0, 1.0) ** (1 / 1.4) * 255).round().astype(np.uint8)
    image = Image.fromarray(np.moveaxis(bytes_rgb, 0, -1), "RGB")
    image = image.resize((CHIP_PX, CHIP_PX), Image.Resampling.NEAREST)
    return encode_with_outline(image, frame)


def encode_with_outline(image: Image.Image, frame: ChipFrame) -> bytes:
    """Draw the polygon (yellow over a dark edge, visible on any land) and encode as JPEG."""
    image = image.convert("RGB").resize((CHIP_PX, CHIP_PX), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for ring in frame.pixel_rings(CHIP_PX):
        if len(ring) >= 2:
            draw.line([*ring, ring[0]], fill=OUTLINE_SHADOW, width=4, joint="curve")
            draw.line([*ring, ring[0]], fill=OUTLINE, width=2, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


# -- chips from COGs ------------------------------------------------------------------------


def local_href(base: Path | None = None) -> Callable[[pystac.Asset], str]:
    """Assets opened the way the stac backend opens them (relative hrefs against ``base``)."""
    return lambda asset: asset_href(asset, base)


@dataclass
class _Read:
    """One acquisition's window around a site: clear share of the site's pixels, and reflectances."""

    day: date
    clear: float
    bands: dict[str, NDArray[np.float32]]


class CogChipSource:
    """Chips read from the COG assets of STAC items (``stac`` and ``demo`` imagery).

    ``scenes(region, run_date)`` lists the region's acquisitions (one :class:`Scene` a day,
    as the backend mosaics them); only a window of :data:`MAX_READ_PX` pixels at most is
    read per asset, so a remote COG costs a few range requests per chip.
    """

    def __init__(
        self,
        scenes: Callable[[Region, date], Sequence[Scene]],
        params: DetectionParams,
        *,
        style: Style = "true",
        href: Callable[[pystac.Asset], str] | None = None,
        offsets: OffsetLedger | None = None,
    ) -> None:
        self.scenes = scenes
        self.params = params
        self.style = style
        self.href = href or local_href()
        #: The backend's verdicts on declared offsets (DETECTION step 1), shared with detection.
        self.offsets = offsets

    def site_chips(
        self, region: Region, polygons: Sequence[ChangePolygon], run_date: date
    ) -> list[SiteChips]:
        try:
            scenes = list(self.scenes(region, run_date))
        except (CCAPIError, OSError, ValueError) as exc:
            log.warning("chips.scenes_unavailable", region=region.name, error=str(exc))
            return [missing_site(p, "imagery list unavailable") for p in polygons]
        windows = self.params.windows(run_date)
        current = sorted((s for s in scenes if windows.current.contains(s.day)), key=lambda s: s.day)
        baseline = [s for s in scenes if windows.baseline.contains(s.day)]
        baseline.sort(key=lambda s: (_cloud_cover(s), s.day))
        # The region's sites try the same acquisitions: each COG is opened once for all of them
        # (opening costs several times reading a chip's window).
        with ExitStack() as stack, rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            datasets: dict[str, _Source] = {}

            def open_once(href: str) -> _Source:
                if href not in datasets:
                    src = stack.enter_context(rasterio.open(href))
                    datasets[href] = _Source(src, src.crs.to_string())
                return datasets[href]

            recent, candidates = current[::-1][:AFTER_TRIES], baseline[:BEFORE_CANDIDATES]
            return [self._site(p, recent, candidates, open_once) for p in polygons]

    def _site(
        self, polygon: ChangePolygon, current: list[Scene], baseline: list[Scene], open_once: _Opener
    ) -> SiteChips:
        return SiteChips(
            polygon,
            self._chip("before", polygon, baseline, open_once, pick="greenest"),
            self._chip("after", polygon, current, open_once, pick="first"),
        )

    def _chip(
        self,
        when: When,
        polygon: ChangePolygon,
        scenes: list[Scene],
        open_once: _Opener,
        pick: Literal["first", "greenest"],
    ) -> Chip:
        if not scenes:
            return Chip(when, missing="no acquisition in the window")
        best: tuple[float, _Read, ChipFrame, Style] | None = None
        errors: list[str] = []
        for scene in scenes:
            item = _item_over(scene, polygon)
            if item is None:
                continue
            try:
                style = self.style if all(asset_of(item, k) for k in STYLE_BANDS[self.style]) else "false"
                read, frame = self._read(scene.day, item, polygon, style, open_once)
            except (rasterio.errors.RasterioError, OSError, KeyError, ValueError) as exc:
                errors.append(f"{item.id}: {exc}")
                log.warning("chips.read_failed", item=item.id, error=str(exc)[:300])
                continue
            if read.clear < MIN_CLEAR:
                continue
            if pick == "first":
                return Chip(when, render_chip(_rgb(read, style), frame, style), day=read.day, style=style)
            greenness = _median_ndvi(read, frame)
            if best is None or greenness > best[0]:
                best = (greenness, read, frame, style)
        if best is not None:
            _, read, frame, style = best
            return Chip(when, render_chip(_rgb(read, style), frame, style), day=read.day, style=style)
        reason = "unreadable imagery" if errors else "no clear acquisition over the site"
        return Chip(when, missing=reason)

    def _read(
        self, day: date, item: pystac.Item, polygon: ChangePolygon, style: Style, open_once: _Opener
    ) -> tuple[_Read, ChipFrame]:
        """The site's window of one item: raw DN, SCL, then reflectance with the offset the pixels carry."""
        frame: ChipFrame | None = None
        size = 0
        dns: dict[str, NDArray[Any]] = {}
        scalings: dict[str, BandScaling] = {}
        for key in dict.fromkeys([*STYLE_BANDS[style], "red", "nir"]):
            asset = asset_of(item, key)
            if asset is None:
                raise KeyError(f"asset {key!r} missing")
            scalings[key] = BandScaling.of(asset)
            source = open_once(self.href(asset))
            if frame is None:
                res = abs(source.dataset.res[0])
                frame = ChipFrame.around(polygon, source.crs, res)
                size = int(min(MAX_READ_PX, max(8, round(frame.side_m / res))))
            dns[key] = _window(source, frame, size, scalings[key].nodata)
        assert frame is not None
        scl_asset = asset_of(item, "scl")
        scl = np.full((size, size), self.params.scl_clear[0], dtype=np.uint8)
        if scl_asset is not None:
            scl = _window(open_once(self.href(scl_asset)), frame, size, 0).astype(np.uint8)
        if self.offsets is not None:  # a mislabelled item is shown as detection read it
            offset = self.offsets.offset_for(item, dns, scl, scalings["red"], self.params.offset_check_share)
            if offset is not None:
                scalings = {key: scaling.with_offset(offset) for key, scaling in scalings.items()}
        clear = np.isin(scl, self.params.scl_clear)
        bands = {}
        for key, dn in dns.items():
            valid = scalings[key].valid(dn)
            values = scalings[key].reflectance(dn)
            if valid is not None:
                clear &= valid
                values = np.where(valid, values, np.nan).astype(np.float32)
            bands[key] = values
        return _Read(day, float(clear[frame.mask(size)].mean()), bands), frame


@dataclass(frozen=True)
class _Source:
    """An open COG and its CRS's name, which costs a WKT export to compute: once per COG."""

    dataset: Any
    crs: str


#: Opens a COG once per region's chips (see :meth:`CogChipSource.site_chips`).
_Opener = Callable[[str], _Source]


def _window(source: _Source, frame: ChipFrame, size: int, fill: float | None) -> NDArray[Any]:
    """Band 1 over the frame in the source's CRS, resampled to ``size`` x ``size``, ``fill`` outside."""
    src = source.dataset
    if source.crs != frame.crs:
        raise ValueError(f"asset CRS {source.crs} differs from the item's first band ({frame.crs})")
    west, _, _, north = frame.bounds
    t = src.transform
    window = Window((west - t.c) / t.a, (north - t.f) / t.e, frame.side_m / t.a, frame.side_m / -t.e)
    # A boundless read builds a VRT (ten times the cost of the read); a window inside the
    # raster reads the same pixels without one.
    inside = (
        window.col_off >= 0
        and window.row_off >= 0
        and window.col_off + window.width <= src.width
        and window.row_off + window.height <= src.height
    )
    return np.asarray(
        src.read(
            1,
            window=window,
            out_shape=(size, size),
            boundless=not inside,
            fill_value=fill if fill is not None else 0,
            resampling=Resampling.nearest,
        )
    )


def _rgb(read: _Read, style: Style) -> NDArray[np.float32]:
    return np.stack([read.bands[k] for k in STYLE_BANDS[style]]).astype(np.float32)


def _median_ndvi(read: _Read, frame: ChipFrame) -> float:
    red, nir = read.bands["red"], read.bands["nir"]
    inside = frame.mask(red.shape[0]) & np.isfinite(red) & np.isfinite(nir) & ((nir + red) > 0)
    if not inside.any():
        return -math.inf
    return float(np.median((nir[inside] - red[inside]) / (nir[inside] + red[inside])))


def _cloud_cover(scene: Scene) -> float:
    covers = [float(i.properties.get("eo:cloud_cover", 100.0)) for i in scene.items]
    return sum(covers) / len(covers) if covers else 100.0


def _item_over(scene: Scene, polygon: ChangePolygon) -> pystac.Item | None:
    """The scene's first item (by id) whose footprint holds the site's centroid."""
    from shapely.geometry import Point, box, shape

    point = Point(polygon.centroid)
    for item in scene.items:
        footprint = shape(item.geometry) if item.geometry else box(*(item.bbox or (0, 0, 0, 0)))
        if footprint.contains(point):
            return item
    return None


# -- chips from Earth Engine ---------------------------------------------------------------------

#: Earth Engine band names per style (Sentinel-2 SR harmonized).
EE_STYLE_BANDS: Final[dict[Style, list[str]]] = {"true": ["B4", "B3", "B2"], "false": ["B8", "B4", "B3"]}


class EarthEngineChipSource:
    """Chips from Earth Engine: one ``computePixels`` JPEG per chip, for the top sites only.

    Each request goes through the backend's request limiter and retry policy, like the
    detection requests, so chips never push the project past its quota. Earth Engine
    composes per pixel: "after" is the latest clear pixel of the current window (Cloud
    Score+ at or above the clear threshold), "before" the greenest clear pixel (highest
    NDVI) of the baseline window; the caption names the window rather than one day.
    """

    def __init__(self, backend: Any, *, style: Style = "true") -> None:
        self.backend = backend
        self.params: DetectionParams = backend.params
        self.style = style

    def site_chips(
        self, region: Region, polygons: Sequence[ChangePolygon], run_date: date
    ) -> list[SiteChips]:
        windows = self.params.windows(run_date)
        out = []
        for polygon in polygons:
            frame = ChipFrame.around(polygon, f"EPSG:{region.utm_epsg}")
            before = self._chip("before", region, frame, windows.baseline, greenest=True)
            after = self._chip("after", region, frame, windows.current, greenest=False)
            out.append(SiteChips(polygon, before, after))
        return out

    def request(self, frame: ChipFrame, window: Any, *, greenest: bool) -> dict[str, Any]:
        """The ``computePixels`` request (expression still an ``ee`` object) for one chip."""
        import ee

        from ccapi_monitor.detection.earthengine import (
            CLOUD_SCORE_BAND,
            CLOUD_SCORE_COLLECTION,
            S2_COLLECTION,
        )

        west, south, east, north = frame.bounds
        area = ee.Geometry.Rectangle([west, south, east, north], frame.crs, False)
        start, end = window.start.isoformat(), window.end.isoformat()
        s2 = ee.ImageCollection(S2_COLLECTION).filterBounds(area).filterDate(start, end)
        scores = ee.ImageCollection(CLOUD_SCORE_COLLECTION).filterBounds(area).filterDate(start, end)
        threshold = self.params.clear_threshold

        def clear(image: Any) -> Any:
            ndvi = image.normalizedDifference(["B8", "B4"]).rename("ndvi")
            return image.addBands(ndvi).updateMask(image.select(CLOUD_SCORE_BAND).gte(threshold))

        masked = s2.linkCollection(scores, [CLOUD_SCORE_BAND]).map(clear)
        composite = masked.qualityMosaic("ndvi") if greenest else masked.sort("system:time_start").mosaic()
        image = composite.visualize(
            bands=EE_STYLE_BANDS[self.style], min=0, max=STYLE_MAX[self.style] * 10_000, gamma=1.4
        )
        res = frame.side_m / CHIP_PX
        return {
            "expression": image,
            "fileFormat": "JPEG",
            "grid": {
                "dimensions": {"width": CHIP_PX, "height": CHIP_PX},
                "affineTransform": {
                    "scaleX": res,
                    "shearX": 0,
                    "translateX": west,
                    "shearY": 0,
                    "scaleY": -res,
                    "translateY": north,
                },
                "crsCode": frame.crs,
            },
        }

    def _chip(self, when: When, region: Region, frame: ChipFrame, window: Any, *, greenest: bool) -> Chip:
        import ee

        from ccapi_monitor.detection.ee_quota import run_with_retries

        what = "greenest clear pixels" if greenest else "latest clear pixels"
        period = f"{what}, {window.start.isoformat()} to {window.end.isoformat()}"
        try:
            request = self.request(frame, window, greenest=greenest)
            data = run_with_retries(
                lambda _: ee.data.computePixels(request),
                limiter=self.backend.limiter,
                policy=self.backend.retry_policy,
                what=f"{when} chip in {region.name}",
                priority=0.0,
            )
            with Image.open(io.BytesIO(data)) as decoded:
                image = encode_with_outline(decoded, frame)
        except (CCAPIError, ee.EEException, OSError, ValueError) as exc:
            log.warning("chips.ee_failed", region=region.name, chip=when, error=str(exc)[:300])
            return Chip(when, missing="Earth Engine did not return the image")
        return Chip(when, image, period=period, style=self.style)


def chip_source_for(backend: Any, *, style: Style = "true") -> ChipSource | None:
    """The chip source that reads the same imagery as ``backend`` (``None``: no chips)."""
    from ccapi_monitor.detection.demo import DemoBackend
    from ccapi_monitor.detection.earthengine import EarthEngineBackend
    from ccapi_monitor.detection.stac import StacBackend

    params: DetectionParams = backend.params
    if isinstance(backend, DemoBackend):
        demo: DemoBackend = backend

        def demo_scenes(region: Region, run_date: date) -> Sequence[Scene]:
            # the items as detection parsed and judged them
            return demo.stac(region, run_date).scenes(region, params.windows(run_date))

        # Item hrefs are relative to the items files' folder (one folder for every region).
        return CogChipSource(
            demo_scenes,
            params,
            style=style,
            href=local_href(demo.archive.root / "items"),
            offsets=backend.offsets,
        )
    if isinstance(backend, StacBackend):
        stac: StacBackend = backend
        is_file = "://" not in stac.items
        base = Path(stac.items).resolve().parent if is_file else None
        return CogChipSource(
            lambda region, run_date: stac.scenes(region, params.windows(run_date)),
            params,
            style=style,
            href=local_href(base),
            offsets=stac.offsets,
        )
    if isinstance(backend, EarthEngineBackend):
        return EarthEngineChipSource(backend, style=style)
    return None


# -- the page's budget ------------------------------------------------------------------------


def collect_chips(
    source: ChipSource | None,
    regions: Sequence[tuple[Region, Sequence[ChangePolygon]]],
    run_date: date,
    *,
    budget: int = PAGE_CHIP_BUDGET,
    sites: int = MAX_SITES,
    threads: int = CHIP_THREADS,
) -> dict[str, list[SiteChips]]:
    """Chips of the top sites of each region, regions in the order given (rank order).

    Stops fetching once ``budget`` encoded bytes are embedded: the remaining sites are
    listed as missing ("page-size budget"), so the page says what it left out. A
    source that raises for a region costs that region's chips only.

    Regions are fetched on ``threads`` threads, at most that many ahead of the one being
    counted against the budget; the budget is applied in rank order as before, and the
    fetches not started when it runs out are cancelled.
    """
    out: dict[str, list[SiteChips]] = {}
    used = 0
    chosen = [(region, top_sites(polygons, sites)) for region, polygons in regions]
    chosen = [(region, picked) for region, picked in chosen if picked]

    def fetch(region: Region, picked: list[ChangePolygon]) -> list[SiteChips]:
        if source is None:
            return [missing_site(p, "no imagery source for chips") for p in picked]
        try:
            return list(source.site_chips(region, picked, run_date))
        except Exception as exc:  # a chip never breaks the report, whatever the source raised
            log.warning("chips.region_failed", region=region.name, error=f"{type(exc).__name__}: {exc}")
            return [missing_site(p, "imagery unavailable") for p in picked]

    ahead = max(1, threads)
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="chips") as pool:
        pending: deque[Future[list[SiteChips]]] = deque()
        queue = iter(chosen)
        for region, picked in chosen:
            if source is not None and used >= budget:  # nothing more is fetched
                for future in pending:
                    future.cancel()
                pending.clear()
                out[region.name] = [missing_site(p, "left out to keep the page small") for p in picked]
                continue
            while len(pending) < ahead and (nxt := next(queue, None)) is not None:
                pending.append(pool.submit(fetch, *nxt))
            made = pending.popleft().result()
            kept = []
            for site in made:
                if used + site.size > budget:
                    site = replace(
                        site,
                        before=Chip("before", missing="left out to keep the page small"),
                        after=Chip("after", missing="left out to keep the page small"),
                    )
                used += site.size
                kept.append(site)
            out[region.name] = kept
    log.info("chips.collected", regions=len(out), bytes=used, budget=budget)
    return out
