"""Names and numbers in the docs agree with the code: regions, flags, variables, Terraform versions.

A command, name or number in the docs that the code contradicts is a bug; these checks read
every Markdown file a user reads and compare what they name with what the code defines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from ccapi_monitor.cli import main
from ccapi_monitor.regions import load_regions
from ccapi_monitor.settings import Settings, Source

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", ROOT / "infra" / "terraform" / "README.md"])
TERRAFORM = ROOT / "infra" / "terraform"
ENV_NAME = re.compile(r"\bCCAPI_[A-Z0-9_]*[A-Z0-9]\b")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _shell_lines(path: Path) -> list[str]:
    """Every line of the shell blocks of a document (continuations joined)."""
    lines, fence, pending = [], None, ""
    for raw in _text(path).splitlines():
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else (stripped[3:].strip().split(" ")[0].lower() or "text")
            continue
        if fence in {"bash", "sh", "shell"}:
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            lines.append(pending + stripped)
            pending = ""
    return lines


def test_region_names_in_docs_exist() -> None:
    known = {region.name for region in load_regions(None)}
    named: dict[str, set[str]] = {}
    for path in DOCS:
        text = _text(path)
        for listed in re.findall(r'\\?"regions\\?"\s*:\s*\[([^\]]*)\]', text):
            for name in re.findall(r'\\?"([^"\\]+)\\?"', listed):
                named.setdefault(name, set()).add(path.name)
        for line in _shell_lines(path):
            for listed in re.findall(r"--regions[ =]([\w,-]+)", line):
                for name in listed.split(","):
                    named.setdefault(name, set()).add(path.name)
    unknown = {name: sorted(where) for name, where in named.items() if name not in known}
    assert not unknown, f"region names the regions file does not have: {unknown}"


def _cli_flags() -> set[str]:
    flags = {"--help", "-h"}
    commands = main.commands.values() if isinstance(main, click.Group) else []
    for command in commands:
        for param in command.params:
            flags.update(param.opts)
            flags.update(param.secondary_opts)
    return flags


def test_flags_in_command_lines_exist() -> None:
    known = _cli_flags()
    wrong: list[str] = []
    for path in DOCS:
        for line in _shell_lines(path):
            match = re.match(r"^(ccapi-monitor|python3? run_weekly_java_monitor\.py)\s+(.*)", line)
            if not match:
                continue
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", match.group(2).split("#")[0]):
                if flag not in known:
                    wrong.append(f"{path.name}: {flag} in `{line}`")
    assert not wrong, "flags the CLI does not have:\n" + "\n".join(wrong)


def _settings_env() -> set[str]:
    names = set()
    for info in Settings.model_fields.values():
        for meta in info.metadata:
            if isinstance(meta, Source) and meta.env:
                names.add(meta.env)
    return names


def _code_env() -> set[str]:
    names: set[str] = set()
    for folder in ("ccapi_monitor", "tests", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(ENV_NAME.findall(_text(path)))
    return names


def test_environment_variables_in_docs_and_terraform_are_read_by_the_code() -> None:
    known = _code_env()
    sources = [*DOCS, *TERRAFORM.glob("*.tf")]
    unknown = {
        name: sorted(p.name for p in sources if name in _text(p))
        for p in sources
        for name in ENV_NAME.findall(_text(p))
        if name not in known
    }
    assert not unknown, f"variables no code reads: {unknown}"


def test_every_worker_variable_in_the_task_definition_is_a_setting() -> None:
    ecs = _text(TERRAFORM / "ecs.tf")
    given = set(re.findall(r'name\s*=\s*"(CCAPI_[A-Z_]+)"', ecs))
    assert {"CCAPI_METRIC_NAMESPACE", "CCAPI_SKIP_CALENDAR"} <= given
    assert given <= _settings_env(), f"the worker ignores {sorted(given - _settings_env())}"


def _required_terraform() -> tuple[int, int]:
    match = re.search(r'required_version\s*=\s*">=\s*(\d+)\.(\d+)', _text(TERRAFORM / "versions.tf"))
    assert match is not None
    return int(match.group(1)), int(match.group(2))


def test_terraform_versions_in_docs_match_required_version() -> None:
    required = _required_terraform()
    claims = []
    for path in DOCS:
        for major, minor in re.findall(
            r"Terraform (?:>= ?)?(\d+)\.(\d+)(?:\.\d+)? or (?:later|newer)", _text(path)
        ):
            claims.append((path.name, (int(major), int(minor))))
    assert claims, "the docs should say which Terraform they need"
    wrong = [(doc, version) for doc, version in claims if version != required]
    assert not wrong, f"versions.tf requires >= {required}; the docs say {wrong}"


def test_stop_timeout_in_docs_matches_the_task_definition() -> None:
    seconds = re.search(r"stopTimeout\s*=\s*(\d+)", _text(TERRAFORM / "ecs.tf"))
    assert seconds is not None
    for path in DOCS:
        for claim in re.findall(r"(\d+)\s*(?:s|seconds)\b[^.\n]{0,40}`stopTimeout`", _text(path)):
            assert claim == seconds.group(1), f"{path.name} says {claim} s; ecs.tf has {seconds.group(1)} s"


def test_runbook_has_a_row_for_every_action_slack_names() -> None:
    from ccapi_monitor.slack_notifier import ACTIONS

    runbook = _text(ROOT / "docs" / "runbook.md")
    missing = [name for name in ACTIONS if f"| `{name}`" not in runbook]
    assert not missing, f"error names without a runbook row: {missing}"


def test_doc_shell_variables_are_defined_before_use() -> None:
    """A command that uses $X must follow an assignment of X in the same doc, or X is bound by the test world."""
    bound = {
        "STATE_MACHINE_ARN",
        "EXECUTION_ARN",
        "RUN_DATE",
        "REPORT_KEY",
        "REPORTS_URI",
        "CACHE_URI",
        "SUCCESS_TOPIC_ARN",
        "FAILURE_TOPIC_ARN",
        "LOG_GROUP",
        "CLUSTER_ARN",
        "TASK_ARN",
        "GEE_SECRET_ARN",
        "SCHEDULE_NAME",
        "SCHEDULE_DLQ_URL",
        "ENVIRONMENT",
        "AWS_REGION",
        "EDITOR",
        "GEE_PROJECT",
    }
    for doc in ("docs/deployment.md", "docs/runbook.md"):
        defined = set(bound)
        problems = []
        for line in _shell_lines(ROOT / doc):
            for name in re.findall(r"(?:^|[\s;(])(?:export\s+)?([A-Z_][A-Z0-9_]*)=", line):
                defined.add(name)
            for name in re.findall(r"(?:read -rsp? \"[^\"]*\" )([A-Z_]+)", line):
                defined.add(name)
            used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", line))
            problems += [f"${name} in `{line}`" for name in used - defined]
        assert not problems, f"{doc}: undefined shell variables:\n" + "\n".join(problems)


def test_execution_inputs_in_docs_are_json_with_known_fields() -> None:
    fields = {
        "run_date",
        "regions",
        "regions_count",
        "force_refresh",
        "force",
        "trigger",
        "enable_scraping",
        "accept_quality",
    }
    seen = 0
    for path in DOCS:
        for line in _shell_lines(path):
            for raw in re.findall(r"--input '(\{.*?\})'", line):
                document = json.loads(raw)
                seen += 1
                assert set(document) <= fields, f"{path.name}: unknown input fields in {raw}"
    assert seen >= 2, "the docs show execution inputs; none were found"
