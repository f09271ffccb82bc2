"""The Terraform folder: formatted, initialises offline, validates, passes its own tests and checkov.

Terraform runs in a temporary copy with its own CLI config pointing at the local provider
mirror, so the repository never gets a .terraform directory and nothing leaves the machine.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.terraform.asl_support import ASL_TEMPLATE, TEMPLATE_VARIABLES, TERRAFORM_DIR, render_template

PROVIDER_MIRROR = Path(os.environ.get("CCAPI_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
REPO_ROOT = TERRAFORM_DIR.parents[1]
TEST_FILES = sorted((TERRAFORM_DIR / "tests").glob("*.tftest.hcl"))
CHECKOV = REPO_ROOT / ".venv-tools" / "bin" / "checkov"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Workspace:
    """An initialised copy of infra/terraform and the environment to run terraform in it."""

    path: Path
    env: dict[str, str]

    def terraform(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["terraform", *args, "-no-color"],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def _require_terraform() -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed: Terraform checks skipped (CI has it)")
    if not PROVIDER_MIRROR.is_dir():
        pytest.skip(f"no AWS provider mirror at {PROVIDER_MIRROR}: Terraform checks skipped")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    _require_terraform()
    root = tmp_path_factory.mktemp("terraform")
    cli_config = root / "terraformrc"
    cli_config.write_text(
        f'provider_installation {{\n  filesystem_mirror {{\n    path = "{PROVIDER_MIRROR}"\n  }}\n}}\n',
        encoding="utf-8",
    )
    copy = root / "module"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    ws = Workspace(copy, env)
    init = ws.terraform("init", "-backend=false")
    assert init.returncode == 0, init.stdout + init.stderr
    return ws


def test_formatted() -> None:
    _require_terraform()
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, "terraform fmt would change:\n" + result.stdout + result.stderr


def test_validates(workspace: Workspace) -> None:
    result = workspace.terraform("validate")
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_test_suite_passes(workspace: Workspace) -> None:
    result = workspace.terraform("test", timeout_s=600)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = sum(len(re.findall(r'^run "', p.read_text(encoding="utf-8"), re.M)) for p in TEST_FILES)
    assert f"Success! {runs} passed, 0 failed." in result.stdout, result.stdout


def test_example_tfvars_pass_every_validation(workspace: Workspace) -> None:
    """terraform.tfvars.example is syntax users copy: plan it (mocked provider) with its values."""
    example = (TERRAFORM_DIR / "terraform.tfvars.example").read_text(encoding="utf-8")
    test_file = workspace.path / "tests" / "example_tfvars.tftest.hcl"
    test_file.write_text(
        f'mock_provider "aws" {{}}\n\nvariables {{\n{example}\n}}\n\nrun "example_plans" {{\n  command = plan\n}}\n',
        encoding="utf-8",
    )
    try:
        result = workspace.terraform("test", f"-filter=tests/{test_file.name}")
    finally:
        test_file.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed" in result.stdout, result.stdout


def test_python_renderer_matches_templatefile(workspace: Workspace) -> None:
    """The moto tests execute what Terraform deploys: both renderings agree byte for byte."""
    variables = {name: f"arn:aws:test:{name}:a,b" for name in sorted(TEMPLATE_VARIABLES)}
    hcl_map = "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in variables.items()) + "}"
    expression = f"base64encode(templatefile({json.dumps(ASL_TEMPLATE.name)}, {hcl_map}))"
    result = subprocess.run(
        ["terraform", "console", "-no-color"],
        cwd=workspace.path,
        env=workspace.env,
        input=expression + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = base64.b64decode(result.stdout.strip().strip('"')).decode("utf-8")
    assert rendered == render_template(ASL_TEMPLATE.read_text(encoding="utf-8"), variables)


def test_checkov_passes_with_justified_skips() -> None:
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV} missing: run `make tools` to build the tools venv; checkov skipped")
    # BC_SKIP_MAPPING / --skip-download keep checkov offline (no guideline download).
    result = subprocess.run(
        [str(CHECKOV), "-d", str(TERRAFORM_DIR), "--quiet", "--compact", "--skip-download"],
        cwd=REPO_ROOT,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout, result.stdout
    assert "Parsing errors" not in result.stdout, "a file checkov cannot parse is silently not scanned"
    for path in TERRAFORM_DIR.glob("*.tf"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip=" in line:
                check, _, reason = line.split("checkov:skip=", 1)[1].partition(":")
                assert len(reason.strip()) > 20, f"{path.name}: skip {check} needs a reason"
