"""Install the project into a fresh venv exactly as the image does, then run it from there.

No container engine runs on these machines, so this is the closest check of the image: the
same build context (the Dockerfile's own COPY sources), the same script (docker/install.sh),
the same lock, the runtime stage's environment, and the default entry script run from a
directory that holds nothing but that script, so nothing can be imported from the work tree.
uv's cache makes this fast on a warm machine; a fresh CI machine fetches wheels from PyPI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_dockerfile import DOCKERFILE, ROOT, context_copies, parse_dockerfile

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

#: Builder settings that only change speed (bytecode, copies instead of links), not the result.
SPEED_ONLY = {"UV_COMPILE_BYTECODE", "UV_LINK_MODE", "UV", "PYTHON"}


def _uv() -> str:
    local = Path(sys.executable).parent / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to install the image's environment (pip install uv)")
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    """The host environment minus anything that could point the run at real services."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CCAPI_", "GEE_", "VIRTUAL_ENV", "PYTHON", "UV_"))
    }
    # boto3 must not look for instance credentials at 169.254.169.254.
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


def _offline(env: dict[str, str]) -> dict[str, str]:
    """Route any HTTP(S) request to a closed local port: the demo must need no network."""
    closed = "http://127.0.0.1:9"
    env = {k: v for k, v in env.items() if k.lower() not in {"http_proxy", "https_proxy", "no_proxy"}}
    env.update(HTTP_PROXY=closed, HTTPS_PROXY=closed, http_proxy=closed, https_proxy=closed)
    return env


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(venv, app dir) built from a copy of the Docker build context."""
    root = tmp_path_factory.mktemp("image")
    context = root / "src"
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    for stage in stages:
        for sources, _ in context_copies(stage):
            for source in sources:
                target = context / source
                target.parent.mkdir(parents=True, exist_ok=True)
                if (ROOT / source).is_dir():
                    # symlinks=True: Docker's COPY keeps links, so a link to a file outside
                    # the copied sources must dangle here as it would in the image.
                    shutil.copytree(
                        ROOT / source,
                        target,
                        symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"),
                    )
                else:
                    shutil.copy2(ROOT / source, target)
    builder_env = {k: v for k, v in stages[0].env().items() if k not in SPEED_ONLY}
    env = _clean_env(UV=_uv(), PYTHON=sys.executable, **builder_env)
    venv = root / "venv"
    command = ["sh", str(context / "docker/install.sh"), "all", str(venv), str(context)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        # No index reachable (offline laptop): the same install from uv's cache alone.
        print(f"install from the index failed, retrying from uv's cache only:\n{result.stderr[-2000:]}")
        shutil.rmtree(venv, ignore_errors=True)
        offline = {**env, "UV_OFFLINE": "1"}
        result = subprocess.run(
            command, env=offline, capture_output=True, text=True, check=False, timeout=900
        )
    assert result.returncode == 0, f"docker/install.sh failed:\n{result.stdout}\n{result.stderr}"
    app = root / "app"
    app.mkdir()
    shutil.copy2(context / "run_weekly_java_monitor.py", app)
    return venv, app


def _runtime_env(venv: Path, home: Path) -> dict[str, str]:
    """The runtime stage's ENV, with /tmp replaced by a test directory."""
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    env = {
        k: v.replace("/tmp", str(home)).replace("/opt/venv", str(venv)).replace("$PATH", os.environ["PATH"])
        for k, v in stages[-1].env().items()
    }
    return _clean_env(**env)


def test_installed_package_comes_from_the_venv_not_the_work_tree(image_venv: tuple[Path, Path]) -> None:
    venv, app = image_venv
    code = "import ccapi_monitor, importlib.resources as r; print(ccapi_monitor.__file__)"
    code += "; print(r.files('ccapi_monitor').joinpath('data/java.geojson').is_file())"
    result = subprocess.run(
        [str(venv / "bin/python"), "-c", code], cwd=app, capture_output=True, text=True, check=True
    )
    location, data = result.stdout.split()
    assert Path(location).is_relative_to(venv), location
    assert data == "True", "package data (regions) missing from the wheel"


def test_help_runs_from_the_installed_entry_points(image_venv: tuple[Path, Path], tmp_path: Path) -> None:
    venv, app = image_venv
    env = _runtime_env(venv, tmp_path)
    cli = subprocess.run(
        [str(venv / "bin/ccapi-monitor"), "--help"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert {"run", "preflight", "regions"} <= set(cli.stdout.split())
    # The image's default command, with --help appended the way `docker run IMAGE --help` cannot.
    script = subprocess.run(
        [str(venv / "bin/python"), "run_weekly_java_monitor.py", "--help"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    assert "--auto-confirm" in script.stdout


def test_one_region_demo_run_from_the_image_environment(
    image_venv: tuple[Path, Path], tmp_path: Path
) -> None:
    venv, app = image_venv
    reports, cache = tmp_path / "reports", tmp_path / "cache"
    result = subprocess.run(
        [
            str(venv / "bin/ccapi-monitor"),
            "run",
            "--imagery",
            "demo",
            "--auto-confirm",
            "--regions-count",
            "1",
            "--output",
            str(reports),
            "--cache",
            str(cache),
        ],
        cwd=app,
        env=_offline(_runtime_env(venv, tmp_path)),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    latest = json.loads((reports / "weekly" / "latest.json").read_text())
    report_files = sorted((reports / "weekly").glob("*/*/report.json"))
    assert len(report_files) == 1, latest
    report = json.loads(report_files[0].read_text())
    assert report["imagery"]["source"] == "demo"
    assert [r["status"] for r in report["regions"]] == ["ok"]
    assert report["exit_code"] == 0
    # Nothing was written next to the entry script: the image's /app is read-only.
    assert sorted(p.name for p in app.iterdir()) == ["run_weekly_java_monitor.py"]
