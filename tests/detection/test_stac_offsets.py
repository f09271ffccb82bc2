"""Offsets checked against the pixels, real catalogue metadata, and one observation per day.

Real data: the Earth Search item and COGs in ``/work/shared/data/real/`` (see its README:
rio-tiler-pds and odc-stac test fixtures, Copernicus Sentinel data), read in place.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from structlog.testing import capture_logs

from ccapi_monitor.detection.grid import RegionGrid
from ccapi_monitor.detection.stac import (
    BASELINE_04_OFFSET,
    BandScaling,
    LedgerState,
    OffsetCorrection,
    OffsetLedger,
    SceneReader,
    StacBackend,
    asset_of,
    check_offset,
    processing_baseline,
    read_on_grid,
)
from ccapi_monitor.errors import DetectionError
from ccapi_monitor.params import DetectionParams
from tests.detection.conftest import REGION_A, DemoArchiveFixture, make_region

REAL = Path("/work/shared/data/real")
RKH = REAL / "earth-search-2020-29RKH"
RKH_ITEM = RKH / "S2A_29RKH_20200219_0_L2A.json"
#: Asset key -> the file the fixture's authors stored (10 m bands decimated to 100 m).
RKH_FILES = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
#: Inside tile 29RKH (UTM 29N), away from its edges.
RKH_REGION = make_region("rkh", -11.6, 24.6, size_deg=0.3)
PARAMS = DetectionParams()

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not mounted")


def rkh_item(folder: Path | None = None) -> dict[str, Any]:
    """The real item with its data assets pointing at the local COGs (in ``folder`` if given)."""
    item: dict[str, Any] = json.loads(RKH_ITEM.read_text())
    for key, name in RKH_FILES.items():
        item["assets"][key]["href"] = str((folder or RKH) / f"{name}.tif")
    return item


def read_dn(path: Path, grid: RegionGrid) -> np.ndarray:
    return read_on_grid(str(path), grid, (0, grid.height), 0)


def test_real_earth_search_item_metadata() -> None:
    item = pystac.Item.from_dict(rkh_item())
    assert item.collection_id == "sentinel-2-l2a"
    assert processing_baseline(item) == (2, 14)
    assert item.properties["earthsearch:boa_offset_applied"] is False
    for key in ("green", "red", "nir", "swir16", "scl"):
        assert asset_of(item, key) is item.assets[key]
    red = BandScaling.of(item.assets["red"])
    assert (red.scale, red.offset, red.nodata) == (0.0001, 0.0, 0)
    assert BandScaling.of(item.assets["scl"]) == BandScaling(nodata=0)


def test_real_item_is_read_as_declared_without_correction() -> None:
    """Baseline 02.14, offset 0: reflectance is DN / 10000 and nothing is corrected."""
    item = pystac.Item.from_dict(rkh_item())
    grid = RegionGrid.for_region(RKH_REGION, 100.0)
    reader = SceneReader(grid, PARAMS, None)
    scl, bands = reader.read_item(item, (0, grid.height))
    dn = read_dn(RKH / "B04.tif", grid)
    valid = scl > 0
    assert valid.mean() > 0.9
    np.testing.assert_array_equal(bands["red"][valid], dn[valid].astype(np.float32))  # ratio units: DN
    assert set(np.unique(scl[valid]).tolist()) <= {2, 5, 7, 8, 9, 10}
    assert reader.offsets.corrections() == []


def _reencode(tmp_path: Path, shift: int) -> Path:
    """The real COGs with ``shift`` added to every valid reflectance DN (SCL copied)."""
    folder = tmp_path / "cogs"
    folder.mkdir()
    for key, name in RKH_FILES.items():
        source = RKH / f"{name}.tif"
        if key == "scl":
            shutil.copy(source, folder / source.name)
            continue
        with rasterio.open(source) as src:
            profile, dn = src.profile, src.read(1).astype(np.int32)
        dn[dn > 0] += shift
        with rasterio.open(folder / source.name, "w", **profile) as dst:
            dst.write(dn.astype(np.uint16), 1)
    return folder


def test_real_item_reprocessed_with_offset_but_declaring_none_is_corrected(tmp_path: Path) -> None:
    """Baseline 05.10 pixels (DN + 1000) whose metadata lacks the offset: the check applies it,
    logs the item id, and the reflectance equals the original's."""
    document = rkh_item(_reencode(tmp_path, 1000))
    document["properties"]["s2:processing_baseline"] = "05.10"
    item = pystac.Item.from_dict(document)
    grid = RegionGrid.for_region(RKH_REGION, 100.0)
    reader = SceneReader(grid, PARAMS, None)
    with capture_logs() as logs:
        scl, bands = reader.read_item(item, (0, grid.height))
    (correction,) = reader.offsets.corrections()
    assert (correction.item_id, correction.declared_offset, correction.applied_offset) == (
        item.id,
        0.0,
        BASELINE_04_OFFSET,
    )
    assert [entry["item"] for entry in logs if entry["event"] == "stac.offset_corrected"] == [item.id]
    original_scl, original = SceneReader(grid, PARAMS, None).read_item(
        pystac.Item.from_dict(rkh_item()), (0, grid.height)
    )
    assert np.array_equal(scl, original_scl)
    for key in original:
        np.testing.assert_array_equal(bands[key], original[key])


def _pixels(red_dn: int, n: int = 400, scl: int = 4) -> tuple[dict[str, np.ndarray], np.ndarray]:
    dns = {
        "green": np.full((1, n), red_dn + 200, np.uint16),
        "red": np.full((1, n), red_dn, np.uint16),
        "nir": np.full((1, n), red_dn + 2500, np.uint16),
        "swir16": np.full((1, n), red_dn + 1200, np.uint16),
    }
    return dns, np.full((1, n), scl, np.uint8)


def _item(baseline: str) -> pystac.Item:
    document = rkh_item()
    document["properties"]["s2:processing_baseline"] = baseline
    return pystac.Item.from_dict(document)


@pytest.mark.parametrize(
    ("red_dn", "declared", "baseline", "expected"),
    [
        (300, -0.1, "05.10", 0.0),  # offset declared, vegetation red would be -0.07: not carried
        (1300, -0.1, "05.10", -0.1),  # declared and carried
        (1300, 0.0, "05.10", -0.1),  # carried, metadata lost it
        (300, 0.0, "05.10", 0.0),  # baseline 05.10 already harmonized: dark red is dark
        (1300, 0.0, "03.01", 0.0),  # before 04.00 there is no offset to find
    ],
)
def test_check_offset_both_directions(red_dn: int, declared: float, baseline: str, expected: float) -> None:
    dns, scl = _pixels(red_dn)
    verdict = check_offset(_item(baseline), dns, scl, BandScaling(offset=declared), PARAMS.offset_check_share)
    assert verdict is not None
    offset, correction = verdict
    assert offset == expected
    assert (correction is not None) == (expected != declared)
    if correction is not None:
        assert (correction.declared_offset, correction.applied_offset) == (declared, expected)


def test_check_offset_needs_enough_clear_vegetation_or_soil() -> None:
    dns, scl = _pixels(300, n=50)
    assert check_offset(_item("05.10"), dns, scl, BandScaling(offset=-0.1), 0.05) is None
    dns, water = _pixels(300, scl=6)  # water and cloud do not judge
    assert check_offset(_item("05.10"), dns, water, BandScaling(offset=-0.1), 0.05) is None


def test_real_odc_stac_items_group_one_scene_a_day(tmp_path: Path) -> None:
    """13 real Earth Search items of tile 35MNM (asset keys B04/SCL, no raster:bands)."""
    source = REAL / "stac-items" / "site2-2020_jun_jul-35MNM.geojson"
    backend = StacBackend(PARAMS, str(source))
    items = pystac.ItemCollection.from_file(str(source)).items
    assert len(items) == 13
    for item in items:
        assert asset_of(item, "red") is item.assets["B04"]
        assert asset_of(item, "scl") is item.assets["SCL"]
        assert processing_baseline(item) == (2, 12)
        assert BandScaling.of(item.assets["B04"]) == BandScaling()
    region = make_region("mnm", 27.4, -7.8, size_deg=0.1)
    scenes = backend.scenes(region, PARAMS.windows(date(2021, 3, 1)))
    assert len(scenes) == 13
    assert all(len(s.items) == 1 for s in scenes)
    assert [s.day for s in scenes] == sorted(s.day for s in scenes)


def test_real_planetary_computer_item_asset_keys() -> None:
    item = pystac.Item.from_file(
        str(REAL / "stac-items" / "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json")
    )
    assert asset_of(item, "swir16") is item.assets["B11"]
    assert processing_baseline(item) == (2, 12)


def test_items_of_another_catalogue_are_refused_with_one_line(tmp_path: Path) -> None:
    """A v0 Earth Search item (collection sentinel-s2-l2a-cogs) is not read by mistake."""
    path = tmp_path / "items.json"
    item = json.loads((REAL / "stac-items" / "S2A_28QCH_20200714_0_L2A.json").read_text())
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    problems = StacBackend(PARAMS, str(path)).preflight()
    assert len(problems) == 1
    assert "sentinel-s2-l2a-cogs" in problems[0]
    assert "--stac-collection" in problems[0]


# -- one observation per acquisition day ------------------------------------------------


def test_overlapping_granules_of_one_day_count_once(demo_archive: DemoArchiveFixture, tmp_path: Path) -> None:
    """alpha lies in two overlapping granules a day; adding a third copy of each granule
    (another id, same pixels) must change nothing: not a scene count, not a class."""
    path = demo_archive.backend.archive.items_path(REGION_A.name, demo_archive.run_date)
    features = json.loads(path.read_text())["features"]
    for feature in features:
        for asset in feature["assets"].values():
            asset["href"] = str((path.parent / asset["href"]).resolve())
    copies = [{**f, "id": f["id"].replace("_0_L2A", "_1_L2A")} for f in features]
    doubled = tmp_path / "items.json"
    doubled.write_text(json.dumps({"type": "FeatureCollection", "features": features + copies}))
    backend = StacBackend(demo_archive.backend.params, str(doubled))
    scenes = backend.scenes(REGION_A, demo_archive.backend.params.windows(demo_archive.run_date))
    assert {len(s.items) for s in scenes} == {4}
    result = backend.detect(REGION_A, demo_archive.run_date)
    expected = demo_archive.results[REGION_A.name]
    assert result.scenes == expected.scenes
    assert result.details["scenes_found"] == expected.details["scenes_found"] == len(scenes)
    assert result.area_ha == expected.area_ha
    assert result.observed_fraction == expected.observed_fraction
    assert [(p.change_class, p.area_ha) for p in result.polygons] == [
        (p.change_class, p.area_ha) for p in expected.polygons
    ]


def test_file_of_unknown_items_fails_detection_too(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    item = json.loads((REAL / "stac-items" / "S2A_28QCH_20200714_0_L2A.json").read_text())
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    with pytest.raises(DetectionError, match="no Sentinel-2 L2A item"):
        StacBackend(PARAMS, str(path)).detect(RKH_REGION, date(2020, 9, 1))


def test_a_ledgers_news_is_what_it_learned_since_it_last_told() -> None:
    """A demo worker replies with its ledger's news once a region: never the items of the
    regions it did before, and the run's ledger ends up with every verdict once."""
    fix = OffsetCorrection("b", "pixels carry the offset", 0.0, -0.1)
    worker = OffsetLedger()
    worker.absorb(LedgerState({"a": 0.0, "b": -0.1}, {"b": fix}, frozenset({"a", "b", "x"})))
    first = worker.news()
    assert (first.offsets, first.corrections, first.seen) == (
        {"a": 0.0, "b": -0.1},
        {"b": fix},
        {"a", "b", "x"},
    )
    worker.absorb(LedgerState({"a": 0.0, "c": 0.0}, {}, frozenset({"a", "c"})))
    second = worker.news()
    assert (second.offsets, second.corrections, second.seen) == ({"c": 0.0}, {}, {"c"})
    assert worker.news() == LedgerState({}, {}, frozenset())

    run = OffsetLedger()
    for news in (first, second):
        run.absorb(news)
    assert run.items_read == worker.items_read == 4
    assert run.corrections() == worker.corrections() == [fix]
