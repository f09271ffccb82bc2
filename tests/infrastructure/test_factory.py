"""Choosing the source from ``--infrastructure`` and ``--osm-pbf``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.infrastructure.factory import OffSource, create_infrastructure_source
from ccapi_monitor.infrastructure.overpass import OverpassSource
from ccapi_monitor.infrastructure.pbf import PbfSource
from ccapi_monitor.storage import LocalStore
from tests.infrastructure.osmdata import ACROSS, region

ENDPOINTS = ("https://overpass-api.de/api/interpreter",)


def test_each_kind_builds_its_source_with_the_buffer(cache: LocalStore, tmp_path: Path) -> None:
    overpass = create_infrastructure_source(
        "overpass", cache=cache, endpoints=ENDPOINTS, osm_pbf=None, buffer_km=10
    )
    local = create_infrastructure_source(
        "pbf", cache=cache, endpoints=ENDPOINTS, osm_pbf=tmp_path / "j.pbf", buffer_km=5
    )
    off = create_infrastructure_source("off", cache=cache, endpoints=ENDPOINTS, osm_pbf=None, buffer_km=25)

    assert isinstance(overpass, OverpassSource)
    assert overpass.buffer_km == 10
    assert overpass.endpoints == ENDPOINTS
    assert isinstance(local, PbfSource)
    assert local.buffer_km == 5
    assert local.path == tmp_path / "j.pbf"
    assert isinstance(off, OffSource)


def test_off_source_reports_off_without_figures() -> None:
    result = OffSource().fetch(region("across", *ACROSS))

    assert (result.source, result.status, result.features, result.score) == ("off", "off", None, None)
    assert OffSource().preflight() == []


@pytest.mark.parametrize(("kind", "message"), [("pbf", "--osm-pbf"), ("nominatim", "unknown")])
def test_unusable_choice_is_invalid_input(cache: LocalStore, kind: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        create_infrastructure_source(kind, cache=cache, endpoints=ENDPOINTS, osm_pbf=None, buffer_km=25)
