"""Before/after chips: read from real Sentinel-2 COGs and from the demo archive, fetched from a fake_ee
Earth Engine through the real client, and never a reason for the report to fail."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from PIL import Image
from shapely.geometry import box, mapping

from ccapi_monitor.detection.demo import DemoBackend, DemoConfig
from ccapi_monitor.detection.earthengine import EarthEngineBackend
from ccapi_monitor.detection.ee_quota import AdaptiveLimiter, RetryPolicy
from ccapi_monitor.detection.stac import BandScaling, Scene
from ccapi_monitor.models import ChangePolygon
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.regions import Region
from ccapi_monitor.reports.chips import (
    CHIP_PX,
    OUTLINE,
    STYLE_MAX,
    Chip,
    ChipFrame,
    CogChipSource,
    EarthEngineChipSource,
    SiteChips,
    chip_source_for,
    collect_chips,
    top_sites,
)
from tests.detection.ee_support import FakeEarthEngine, ee_error, service_account_key

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CCAPI_SHARED_DIR", REPO.parent / "shared"))
REAL = SHARED / "data" / "real" / "earth-search-2020-29RKH"
REAL_DAY = date(2020, 2, 19)
#: Run dates putting the real scene in the current window, then in the baseline window.
AFTER_RUN, BEFORE_RUN = date(2020, 3, 1), date(2020, 5, 1)
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real Earth Search scene not found at {REAL}")


def decode(jpeg: bytes | None) -> np.ndarray[Any, Any]:
    assert jpeg is not None
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        assert image.size == (CHIP_PX, CHIP_PX)
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def site(lon: float, lat: float, side: float = 0.003) -> ChangePolygon:
    geom = box(lon, lat, lon + side, lat + side)
    return ChangePolygon(
        region="r",
        change_class="built_up",
        area_ha=round((side * 111_000) ** 2 / 10_000, 2),
        centroid=(geom.centroid.x, geom.centroid.y),
        geometry=mapping(geom),
        first_detected=date(2020, 2, 19),
    )


# -- the real Earth Search scene (decimated COGs; item hrefs mapped to the local files) ---------


def real_item() -> pystac.Item:
    return pystac.Item.from_file(str(REAL / "S2A_29RKH_20200219_0_L2A.json"))


def real_href(overrides: dict[str, Path] | None = None) -> Callable[[pystac.Asset], str]:
    """The item's cloud hrefs mapped to the fixture's files (``B04.tif``...), some replaced."""
    keys = {v.href: k for k, v in real_item().assets.items()}

    def resolve(asset: pystac.Asset) -> str:
        key = keys.get(asset.href)
        if overrides and key in overrides:
            return str(overrides[key])
        return str(REAL / asset.href.rsplit("/", 1)[-1])

    return resolve


def real_source(item: pystac.Item | None = None, **kw: Any) -> CogChipSource:
    scene = Scene(REAL_DAY, (item or real_item(),))
    return CogChipSource(lambda region, run_date: [scene], DetectionParams(), **kw)


REAL_SITE = site(-11.4, 24.8)


def expected_rgb(lon: float, lat: float) -> list[float]:
    """True-colour value the chip should show at a point, read straight from the COGs."""
    item = real_item()
    out = []
    for key, name in (("red", "B04"), ("green", "B03"), ("blue", "B02")):
        with rasterio.open(REAL / f"{name}.tif") as src:
            (x,), (y,) = rasterio.warp.transform("EPSG:4326", src.crs, [lon], [lat])
            dn = np.array([next(src.sample([(x, y)]))[0]])
        reflectance = float(BandScaling.of(item.assets[key]).reflectance(dn)[0])
        out.append(255 * min(1.0, max(0.0, reflectance / STYLE_MAX["true"])) ** (1 / 1.4))
    return out


@needs_real
def test_real_scene_after_chip_shows_the_pixels_under_the_site():
    (chips,) = real_source(href=real_href()).site_chips(None, [REAL_SITE], AFTER_RUN)  # type: ignore[arg-type]
    assert chips.after.day == REAL_DAY
    assert chips.after.style == "true"
    assert chips.before.image is None
    assert chips.before.missing == "no acquisition in the window"
    pixels = decode(chips.after.image)
    centre = pixels[CHIP_PX // 2 - 2 : CHIP_PX // 2 + 3, CHIP_PX // 2 - 2 : CHIP_PX // 2 + 3].reshape(-1, 3)
    expected = expected_rgb(*REAL_SITE.centroid)
    assert np.abs(np.median(centre, axis=0) - expected).max() <= 16  # JPEG and one-pixel placement
    # The outline is drawn where the polygon's edge falls in the chip.
    frame_px = ChipFrame.around(REAL_SITE, "EPSG:32629", 100.0).pixel_rings(CHIP_PX)[0]
    x, y = (round(v) for v in frame_px[0])
    corner = pixels[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3)
    assert any(
        abs(int(r) - OUTLINE[0]) < 60 and abs(int(g) - OUTLINE[1]) < 60 and b < 120 for r, g, b in corner
    )


@needs_real
def test_real_scene_before_chip_from_the_baseline_window():
    (chips,) = real_source(href=real_href()).site_chips(None, [REAL_SITE], BEFORE_RUN)  # type: ignore[arg-type]
    assert chips.before.day == REAL_DAY
    assert chips.after.image is None
    assert decode(chips.before.image).mean() > 100  # desert: bright


@needs_real
def test_real_scene_faults_give_missing_chips(tmp_path: Path):
    # A band that cannot be opened: the chip is missing, nothing raises.
    broken = real_source(href=real_href({"red": tmp_path / "gone.tif"}))
    (chips,) = broken.site_chips(None, [REAL_SITE], AFTER_RUN)  # type: ignore[arg-type]
    assert chips.after.image is None
    assert chips.after.missing == "unreadable imagery"
    # Cloud over the site (SCL 9 everywhere, a real COG written by rasterio): not clear enough.
    cloudy = tmp_path / "SCL.tif"
    shutil.copy(REAL / "SCL.tif", cloudy)
    with rasterio.open(cloudy, "r+") as dst:
        dst.write(np.full((dst.height, dst.width), 9, dtype=np.uint8), 1)
    (chips,) = real_source(href=real_href({"scl": cloudy})).site_chips(None, [REAL_SITE], AFTER_RUN)  # type: ignore[arg-type]
    assert chips.after.missing == "no clear acquisition over the site"


@needs_real
def test_item_without_blue_falls_back_to_false_colour():
    item = real_item()
    del item.assets["blue"]
    (chips,) = real_source(item, href=real_href()).site_chips(None, [REAL_SITE], AFTER_RUN)  # type: ignore[arg-type]
    assert chips.after.style == "false"
    assert "false colour" in chips.after.caption()


# -- the demo archive -----------------------------------------------------------------------------

DEMO_RUN = date(2025, 8, 13)  # dry season, many events planted before it
DEMO_REGION = Region(
    name="chips_demo",
    province="test",
    focus="urban",
    priority=1,
    tier=1,
    geometry=box(107.3, -6.4, 107.36, -6.34),
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoBackend, list[ChangePolygon]]:
    config = DemoConfig(scale_m=40.0, baseline_step=2, event_every_days=1.0, all_assets=True)
    backend = DemoBackend(DetectionParams(), tmp_path_factory.mktemp("chips-demo"), config)
    backend.prepare([DEMO_REGION], DEMO_RUN)
    result = backend.detect(DEMO_REGION, DEMO_RUN)
    sites = top_sites(result.polygons)
    assert len(sites) >= 3, "the demo region should have several new sites"
    return backend, sites


def _greenness(jpeg: bytes | None, polygon: ChangePolygon, frame: ChipFrame) -> float:
    """NIR / red inside the polygon of a false-colour chip (R = NIR, G = red)."""
    pixels = decode(jpeg).astype(float)
    inside = frame.mask(CHIP_PX)
    return float(pixels[..., 0][inside].mean() / max(1.0, pixels[..., 1][inside].mean()))


@pytest.mark.slow
def test_demo_chips_show_green_before_and_cleared_after(demo):
    backend, sites = demo
    source = chip_source_for(backend, style="false")
    assert isinstance(source, CogChipSource)
    chips = source.site_chips(DEMO_REGION, sites, DEMO_RUN)
    windows = backend.params.windows(DEMO_RUN)
    greener = 0
    for chip in chips:
        assert chip.after.day is not None
        assert windows.current.contains(chip.after.day)
        assert chip.before.day is not None
        assert windows.baseline.contains(chip.before.day)
        frame = ChipFrame.around(chip.polygon, f"EPSG:{DEMO_REGION.utm_epsg}", 40.0)
        if _greenness(chip.before.image, chip.polygon, frame) > _greenness(
            chip.after.image, chip.polygon, frame
        ):
            greener += 1
    assert greener == len(chips), "every site was greener before than after"


@pytest.mark.slow
def test_demo_true_colour_chips_and_the_page_budget(demo):
    backend, sites = demo
    source = chip_source_for(backend)
    assert source is not None
    full = collect_chips(source, [(DEMO_REGION, sites)], DEMO_RUN)
    made = full[DEMO_REGION.name]
    assert [c.after.style for c in made] == ["true"] * len(made)
    one_site = made[0].size
    budget = one_site + 1  # room for exactly the first site
    limited = collect_chips(source, [(DEMO_REGION, sites)], DEMO_RUN, budget=budget)[DEMO_REGION.name]
    assert limited[0].size == one_site
    assert all(s.size == 0 and s.before.missing == "left out to keep the page small" for s in limited[1:])


def test_a_source_that_raises_costs_only_its_chips():
    class Broken:
        def site_chips(
            self, region: Region, polygons: Sequence[ChangePolygon], run_date: date
        ) -> list[SiteChips]:
            raise RuntimeError("boom")

    polygons = [site(107.31, -6.39), site(107.32, -6.38, 0.005)]
    out = collect_chips(Broken(), [(DEMO_REGION, polygons)], DEMO_RUN)
    assert [s.polygon.area_ha for s in out[DEMO_REGION.name]] == sorted(
        (p.area_ha for p in polygons), reverse=True
    )
    assert all(s.after.missing == "imagery unavailable" for s in out[DEMO_REGION.name])
    assert collect_chips(None, [(DEMO_REGION, polygons)], DEMO_RUN)[DEMO_REGION.name][0].before.missing


class FixedChips:
    """A chip source answering one fixed-size chip pair a site, recording the regions asked;
    ``barrier`` (when set) makes each fetch wait for another fetch running at the same time."""

    def __init__(self, size: int, barrier: threading.Barrier | None = None) -> None:
        self.size = size
        self.barrier = barrier
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def site_chips(
        self, region: Region, polygons: Sequence[ChangePolygon], run_date: date
    ) -> list[SiteChips]:
        with self.lock:
            self.asked.append(region.name)
        if self.barrier is not None:
            self.barrier.wait()
        return [
            SiteChips(p, Chip("before", b"b" * self.size), Chip("after", b"a" * self.size)) for p in polygons
        ]


def regions_with_sites(count: int) -> list[tuple[Region, list[ChangePolygon]]]:
    return [
        (dataclasses.replace(DEMO_REGION, name=f"r{i:02d}"), [site(107.31 + i * 0.01, -6.39)])
        for i in range(count)
    ]


def test_regions_are_fetched_concurrently_and_kept_in_rank_order() -> None:
    # Each fetch waits at a 2-party barrier: fetched one at a time, the first would time out.
    source = FixedChips(100, threading.Barrier(2, timeout=10))
    regions = regions_with_sites(6)
    out = collect_chips(source, regions, DEMO_RUN, threads=2)
    assert list(out) == [r.name for r, _ in regions]
    assert all(s.before.image and s.after.image for sites in out.values() for s in sites)
    assert sorted(source.asked) == [r.name for r, _ in regions]


def test_the_budget_is_spent_in_rank_order_and_later_regions_are_not_fetched() -> None:
    source = FixedChips(100)  # 200 bytes a site
    regions = regions_with_sites(20)
    out = collect_chips(source, regions, DEMO_RUN, budget=3 * 200, threads=3)
    kept = [name for name, sites in out.items() if sites[0].size]
    assert kept == ["r00", "r01", "r02"]
    assert all(
        sites[0].before.missing == "left out to keep the page small" for sites in list(out.values())[3:]
    )
    # at most `threads` fetches run ahead of the region that spent the budget
    assert len(source.asked) <= 3 + 3


def test_only_new_sites_largest_first():
    small, large, old = site(107.31, -6.39, 0.001), site(107.32, -6.38, 0.004), site(107.33, -6.37, 0.01)
    old = old.model_copy(update={"change": "persisting"})
    assert top_sites([small, old, large], 5) == [large, small]


# -- Earth Engine, offline: the real client against a fake server --------------------------------


def ee_backend(fake_ee: FakeEarthEngine) -> EarthEngineBackend:
    backend = EarthEngineBackend(
        DetectionParams(),
        project="ccapi-test",
        key_json=json.dumps(service_account_key(fake_ee.url + "/token")),
        key_file=None,
        deadline_s=2.0,
        url=fake_ee.url,
        limiter=AdaptiveLimiter(2),
        retry_policy=RetryPolicy(max_attempts=3, base_delay_s=0.002, max_delay_s=0.01),
    )
    backend.prepare([DEMO_REGION], date(2026, 11, 23))
    return backend


def test_earth_engine_chips_one_request_each_through_the_limiter(fake_ee: FakeEarthEngine):
    backend = ee_backend(fake_ee)
    source = chip_source_for(backend)
    assert isinstance(source, EarthEngineChipSource)
    polygons = [site(107.31, -6.39), site(107.33, -6.37)]
    chips = source.site_chips(DEMO_REGION, polygons, date(2026, 11, 23))
    assert fake_ee.hits["pixels"] == 2 * len(polygons)
    assert backend.limiter.in_flight == 0
    for chip in chips:
        decode(chip.before.image)
        assert chip.after.period == "latest clear pixels, 2026-10-24 to 2026-11-23"
        assert chip.before.period is not None
        assert chip.before.period.startswith("greenest clear pixels")
    bodies = [json.loads(b) for b in fake_ee.pixel_bodies]
    assert all(b["fileFormat"] == "JPEG" for b in bodies)
    assert {b["grid"]["crsCode"] for b in bodies} == {f"EPSG:{DEMO_REGION.utm_epsg}"}
    assert all(b["grid"]["dimensions"] == {"width": CHIP_PX, "height": CHIP_PX} for b in bodies)
    text = " ".join(fake_ee.pixel_bodies)
    assert "COPERNICUS/S2_SR_HARMONIZED" in text
    assert "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED" in text
    assert sum('"ImageCollection.qualityMosaic"' in b for b in fake_ee.pixel_bodies) == len(polygons)


def test_earth_engine_chip_retries_429_and_shows_a_refusal_as_missing(fake_ee: FakeEarthEngine):
    backend = ee_backend(fake_ee)
    replies = [ee_error(429, "Too many concurrent aggregations.", "RESOURCE_EXHAUSTED")]

    def answer(body: str) -> Any:
        if replies:
            return replies.pop()
        if '"ImageCollection.qualityMosaic"' in body:
            return ee_error(400, "Image.visualize: no band named 'B4'.", "INVALID_ARGUMENT")
        return 200, io.BytesIO(_jpeg()).getvalue()

    fake_ee.pixels = answer
    (chips,) = EarthEngineChipSource(backend).site_chips(
        DEMO_REGION, [site(107.31, -6.39)], date(2026, 11, 23)
    )
    assert chips.before.image is None
    assert chips.before.missing == "Earth Engine did not return the image"
    decode(chips.after.image)
    assert fake_ee.hits["pixels"] == 3  # before (429, then refused: not retried), after
    assert backend.limiter.snapshot()["counters"].get("quota") == 1


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (CHIP_PX, CHIP_PX), (90, 140, 60)).save(buffer, format="JPEG")
    return buffer.getvalue()
