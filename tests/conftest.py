"""Shared test setup: no test reaches a real cloud, and every test starts from clean env."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import ee
import pytest

from tests.detection.ee_support import FakeEarthEngine

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

_CLEARED_PREFIXES = ("AWS_", "CCAPI_", "GEE_", "GOOGLE_APPLICATION_CREDENTIALS")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Strip cloud credentials and project variables; boto3 finds no credentials quickly."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-3")


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the worker as a subprocess: clean, offline, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED_PREFIXES)}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        AWS_DEFAULT_REGION="ap-southeast-3",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def ccapi_command() -> list[str]:
    """The installed console script's equivalent, run with this interpreter."""
    return [sys.executable, "-m", "ccapi_monitor"]


@pytest.fixture
def fake_ee() -> Iterator[FakeEarthEngine]:
    """A fake Earth Engine server (REST API and token endpoint) for one test; ``ee`` is reset after."""
    server = FakeEarthEngine().start()
    yield server
    server.stop()
    ee.Reset()
