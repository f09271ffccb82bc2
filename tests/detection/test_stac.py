"""The stac backend on real COG/STAC files (written by the demo generator)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pystac
import pytest
import rasterio
from shapely.geometry import shape

from ccapi_monitor.detection.demo import DemoBackend
from ccapi_monitor.detection.stac import LEGACY_COLLECTION, BandScaling, StacBackend
from ccapi_monitor.errors import AbortedError, DetectionError
from ccapi_monitor.params import DetectionParams
from tests.detection.conftest import (
    REGION_A,
    REGION_B,
    TEST_CONFIG,
    DemoArchiveFixture,
    accuracy,
    make_region,
)


def _items(archive: DemoArchiveFixture, region: str) -> list[dict[str, Any]]:
    """Item dicts of a region with absolute asset hrefs (so they can be saved anywhere)."""
    path = archive.backend.archive.items_path(region, archive.run_date)
    features: list[dict[str, Any]] = json.loads(path.read_text())["features"]
    for feature in features:
        for asset in feature["assets"].values():
            asset["href"] = str((path.parent / asset["href"]).resolve())
    return features


def _save(tmp_path: Path, features: list[dict[str, Any]], name: str = "items.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def _backend(archive: DemoArchiveFixture, items: str, **kw: Any) -> StacBackend:
    return StacBackend(archive.backend.params, items, **kw)


def _same_result(a: Any, b: Any) -> None:
    assert a.area_ha == b.area_ha
    assert a.observed_fraction == b.observed_fraction
    assert [(p.change_class, p.area_ha, p.geometry) for p in a.polygons] == [
        (p.change_class, p.area_ha, p.geometry) for p in b.polygons
    ]


def test_band_scaling_offset_is_exact() -> None:
    dn = np.array([0, 1001, 1500, 4000], dtype=np.uint16)
    with_offset = BandScaling(scale=1e-4, offset=-0.1)
    plain = BandScaling()
    shifted = dn - np.uint16(1000) * (dn > 0)
    np.testing.assert_array_equal(with_offset.reflectance(dn)[1:], plain.reflectance(shifted)[1:])
    np.testing.assert_array_equal(
        with_offset.reflectance(dn, scaled=False)[1:], plain.reflectance(shifted, scaled=False)[1:]
    )
    assert with_offset.reflectance(dn)[2] == pytest.approx(0.05)
    assert with_offset.valid(dn).tolist() == [False, True, True, True]  # type: ignore[union-attr]
    assert BandScaling(nodata=None).valid(dn) is None


def test_same_scene_with_and_without_offset_metadata_gives_same_classes(
    demo_archive: DemoArchiveFixture, tmp_path: Path
) -> None:
    """Every item whose pixels carry the offset re-encoded without it (DN - 1000, metadata
    without offset) and every other one with it, all labelled correctly: the same classes
    as the archive, whose mislabelled items the offset check corrected."""
    features = _items(demo_archive, REGION_A.name)
    assert any(f["properties"]["demo:declared_offset_wrong"] for f in features)
    flipped = 0
    for feature in features:
        props = feature["properties"]
        for key, asset in feature["assets"].items():
            if key == "scl":
                continue
            band = asset["raster:bands"][0]
            had_offset = (band.get("offset") == -0.1) != props["demo:declared_offset_wrong"]
            band.pop("offset", None), band.pop("scale", None)
            with rasterio.open(asset["href"]) as src:
                profile, dn = src.profile, src.read(1).astype(np.int32)
            valid = dn > 0
            dn[valid] += -1000 if had_offset else 1000
            out = tmp_path / f"{feature['id']}_{key}.tif"
            with rasterio.open(out, "w", **profile) as dst:
                dst.write(dn.astype(np.uint16), 1)
            asset["href"] = str(out)
            if had_offset:
                flipped += 1
            else:
                band.update(scale=0.0001, offset=-0.1)
        props["s2:processing_baseline"] = "05.10" if not had_offset else "03.01"
        props["earthsearch:boa_offset_applied"] = props["demo:declared_offset_wrong"] = False
    assert 0 < flipped < len(features) * 4  # the archive mixes both encodings
    backend = _backend(demo_archive, _save(tmp_path, features))
    result = backend.detect(REGION_A, demo_archive.run_date)
    assert backend.offsets.corrections() == []  # labelled correctly now: nothing to correct
    assert demo_archive.results[REGION_A.name].details["offset_corrections"]
    _same_result(result, demo_archive.results[REGION_A.name].model_copy(update={"source": "stac"}))


def test_missing_asset_fails_that_region_only(demo_archive: DemoArchiveFixture, tmp_path: Path) -> None:
    features = _items(demo_archive, REGION_A.name) + _items(demo_archive, REGION_B.name)
    broken = features[3]
    del broken["assets"]["nir"]
    backend = _backend(demo_archive, _save(tmp_path, features))
    with pytest.raises(DetectionError, match=f"{broken['id']}.*nir"):
        backend.detect(REGION_A, demo_archive.run_date)
    other = backend.detect(REGION_B, demo_archive.run_date)
    _same_result(other, demo_archive.results[REGION_B.name])


def test_unreadable_asset_names_the_item(demo_archive: DemoArchiveFixture, tmp_path: Path) -> None:
    features = _items(demo_archive, REGION_A.name)
    garbage = tmp_path / "red.tif"
    garbage.write_bytes(b"this is not a GeoTIFF")
    features[-1]["assets"]["red"]["href"] = str(garbage)
    features[-2]["assets"]["scl"]["href"] = str(tmp_path / "gone.tif")
    backend = _backend(demo_archive, _save(tmp_path, features))
    with pytest.raises(DetectionError, match=f"{features[-2]['id']}.*'scl' is unreadable"):
        backend.detect(REGION_A, demo_archive.run_date)


def test_strips_give_the_same_result_as_one_tile(demo_archive: DemoArchiveFixture) -> None:
    items = str(demo_archive.backend.archive.items_path(REGION_A.name, demo_archive.run_date))
    one = _backend(demo_archive, items, strip_rows=10_000).detect(REGION_A, demo_archive.run_date)
    many = _backend(demo_archive, items, strip_rows=37, io_threads=3).detect(REGION_A, demo_archive.run_date)
    _same_result(one, many)
    assert one.scenes == many.scenes


def test_cancel_between_tiles(demo_archive: DemoArchiveFixture) -> None:
    items = str(demo_archive.backend.archive.items_path(REGION_A.name, demo_archive.run_date))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(AbortedError):
        _backend(demo_archive, items).detect(REGION_A, demo_archive.run_date, cancel)


def test_insufficient_observations_is_never_zero_hectares(demo_archive: DemoArchiveFixture) -> None:
    items = str(demo_archive.backend.archive.items_path(REGION_A.name, demo_archive.run_date))
    backend = _backend(demo_archive, items)
    windows = backend.params.windows(demo_archive.run_date)
    scenes = [s for s in backend.scenes(REGION_A, windows) if not windows.current.contains(s.day)]
    result = backend.detect_scenes(REGION_A, demo_archive.run_date, scenes)
    assert result.status == "insufficient_observations"
    assert result.observed_fraction == 0.0
    assert result.area_ha is None
    assert result.polygons == []
    assert result.scenes["current"] == 0


def test_observed_fraction_threshold(demo_archive: DemoArchiveFixture) -> None:
    items = str(demo_archive.backend.archive.items_path(REGION_A.name, demo_archive.run_date))
    fraction = demo_archive.results[REGION_A.name].observed_fraction
    strict = demo_archive.backend.params.model_copy(
        update={"min_observed_fraction": min(1.0, fraction + 1e-3)}
    )
    result = StacBackend(strict, items).detect(REGION_A, demo_archive.run_date)
    assert fraction < 1.0 or result.status == "ok"
    if fraction < 1.0:
        assert result.status == "insufficient_observations"
        assert result.area_ha is None


def test_non_rectangular_region_counts_only_inside(demo_archive: DemoArchiveFixture) -> None:
    west, south, east, north = REGION_A.bounds
    triangle = shape(
        {"type": "Polygon", "coordinates": [[(west, south), (east, south), (west, north), (west, south)]]}
    )
    region = make_region("triangle", 0, 0, geometry=triangle)
    items = str(demo_archive.backend.archive.items_path(REGION_A.name, demo_archive.run_date))
    result = _backend(demo_archive, items).detect(region, demo_archive.run_date)
    full = demo_archive.results[REGION_A.name]
    assert result.status == "ok"
    assert result.polygons
    half_diagonal_deg = 0.75 * TEST_CONFIG.scale_m / 111_000  # pixel centre inside: corners this near
    for polygon in result.polygons:
        assert triangle.buffer(half_diagonal_deg).contains(shape(polygon.geometry))
    outside = [p for p in full.polygons if not shape(p.geometry).intersects(triangle)]
    assert outside  # the full square region has changes the triangle must not count
    assert sum(result.area_ha.values()) < sum(full.area_ha.values())  # type: ignore[union-attr]


@pytest.mark.slow
def test_region_across_a_utm_zone_border(tmp_path: Path) -> None:
    """108 E: MGRS tiles in zones 48 and 49, mosaicked and warped onto the zone-49 grid."""
    region = make_region("border", 107.97, -6.75)
    run_date = date(2025, 8, 13)
    backend = DemoBackend(DetectionParams(max_polygons=100_000), tmp_path, TEST_CONFIG)
    backend.prepare([region], run_date)
    result = backend.detect(region, run_date)
    epsgs = {
        i["properties"]["proj:epsg"]
        for i in json.loads(backend.archive.items_path(region.name, run_date).read_text())["features"]
    }
    assert epsgs == {32748, 32749}
    assert region.utm_epsg == 32749
    assert result.details["grid"]["epsg"] == 32749
    assert result.details["items_found"] == 2 * result.details["scenes_found"]
    scores = accuracy(result, backend.truth_path(region.name, run_date), region, backend.params.scale_m)
    for name, score in scores.items():
        assert score["truth_px"] > 0, name
        assert score["users"] >= 0.85, (name, score)
        assert score["producers"] >= 0.85, (name, score)


def test_preflight_and_describe(tmp_path: Path) -> None:
    missing = StacBackend(DetectionParams(), str(tmp_path / "nope.json"))
    assert "does not exist" in missing.preflight()[0]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "cannot read STAC items" in StacBackend(DetectionParams(), str(bad)).preflight()[0]
    described = missing.describe(date(2025, 1, 6))
    assert described["source"] == "stac"
    assert described["collection"] == "sentinel-2-c1-l2a"  # the default: consistent offsets
    assert described["items"] == str(tmp_path / "nope.json")


class _StacApi(BaseHTTPRequestHandler):
    """The two endpoints pystac-client needs: a landing page and POST /search."""

    features: ClassVar[list[dict[str, Any]]] = []
    searches: ClassVar[list[dict[str, Any]]] = []

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        root = f"http://127.0.0.1:{self.server.server_port}"  # type: ignore[attr-defined]
        self._send(
            {
                "type": "Catalog",
                "id": "test",
                "description": "test",
                "stac_version": "1.0.0",
                "conformsTo": [
                    "https://api.stacspec.org/v1.0.0/core",
                    "https://api.stacspec.org/v1.0.0/item-search",
                ],
                "links": [
                    {"rel": "self", "href": root + "/"},
                    {"rel": "root", "href": root + "/"},
                    {
                        "rel": "search",
                        "href": root + "/search",
                        "method": "POST",
                        "type": "application/geo+json",
                    },
                ],
            }
        )

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).searches.append(body)
        start, end = body["datetime"].split("/")
        hits = [f for f in self.features if start[:10] <= f["properties"]["datetime"][:10] <= end[:10]]
        self._send({"type": "FeatureCollection", "features": hits, "links": []})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stac_api(demo_archive: DemoArchiveFixture) -> Iterator[str]:
    _StacApi.features = _items(demo_archive, REGION_A.name)
    _StacApi.searches = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StacApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_stac_api_search(demo_archive: DemoArchiveFixture, stac_api: str) -> None:
    backend = _backend(demo_archive, stac_api, collection=LEGACY_COLLECTION)
    assert backend.preflight() == []
    result = backend.detect(REGION_A, demo_archive.run_date)
    search = _StacApi.searches[-1]
    assert search["collections"] == ["sentinel-2-l2a"]
    assert _backend(demo_archive, stac_api).collection == "sentinel-2-c1-l2a"
    assert search["intersects"]["type"] == "Polygon"
    _same_result(result, demo_archive.results[REGION_A.name])
    assert pystac.Item.from_dict(_StacApi.features[0]).id.startswith("S2D_")
