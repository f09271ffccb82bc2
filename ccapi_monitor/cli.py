"""Command line: ``ccapi-monitor run | preflight | regions`` (ARCHITECTURE.md, "Command line").

Every flag also reads its environment variable. For the fields that the Step
Functions execution input may carry, precedence is: command-line flag, then
execution input, then environment variable, then default.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from ccapi_monitor import __version__
from ccapi_monitor.errors import CCAPIError, ExitCode, InvalidInputError
from ccapi_monitor.logs import configure_logging
from ccapi_monitor.regions import load_regions
from ccapi_monitor.settings import Settings, build_settings, parse_execution_input

#: Options shared by ``run`` and ``preflight``: (flags, env var, click kwargs).
_COMMON_OPTIONS: list[tuple[tuple[str, ...], str | None, dict[str, Any]]] = [
    (
        ("--regions-file",),
        "CCAPI_REGIONS_FILE",
        {
            "type": click.Path(path_type=Path),
            "help": "GeoJSON FeatureCollection of regions; default: the packaged Java regions.",
        },
    ),
    (("--regions",), None, {"help": "Comma-separated region names to run (subset)."}),
    (("--regions-count",), None, {"type": int, "help": "Run the first N regions by priority, then name."}),
    (("--run-date",), "CCAPI_RUN_DATE", {"help": "YYYY-MM-DD (or an ISO timestamp); default: today (UTC)."}),
    (
        ("--imagery",),
        "CCAPI_IMAGERY",
        {
            "type": click.Choice(["earthengine", "stac", "demo"]),
            "default": "earthengine",
            "show_default": True,
            "help": "Imagery backend; never falls back to demo silently.",
        },
    ),
    (
        ("--stac-items",),
        "CCAPI_STAC_ITEMS",
        {"help": "stac backend: a STAC API URL or an ItemCollection JSON file."},
    ),
    (
        ("--infrastructure",),
        "CCAPI_INFRASTRUCTURE",
        {
            "type": click.Choice(["overpass", "pbf", "off"]),
            "help": "OSM source; default overpass, but off with --imagery demo.",
        },
    ),
    (
        ("--osm-pbf",),
        "CCAPI_OSM_PBF",
        {"type": click.Path(path_type=Path), "help": "Local .osm.pbf extract for --infrastructure pbf."},
    ),
    (
        ("--overpass-endpoint",),
        "CCAPI_OVERPASS_ENDPOINTS",
        {"multiple": True, "help": "Overpass API endpoint (repeatable; env: comma-separated)."},
    ),
    (
        ("--output",),
        "CCAPI_REPORTS_URI",
        {
            "default": "./reports",
            "show_default": True,
            "help": "Reports: s3://bucket/prefix or a local folder.",
        },
    ),
    (
        ("--cache",),
        "CCAPI_CACHE_URI",
        {
            "default": "./.ccapi-cache",
            "show_default": True,
            "help": "Checkpoints and caches: s3://bucket/prefix or a local folder.",
        },
    ),
    (
        ("--environment",),
        "CCAPI_ENVIRONMENT",
        {"default": "local", "show_default": True, "help": "Metric dimension and report label."},
    ),
    (
        ("--max-concurrency",),
        "CCAPI_MAX_CONCURRENCY",
        {
            "type": int,
            "help": "Regions in flight [default: 4; with earthengine, half of --ee-max-concurrency].",
        },
    ),
    (
        ("--region-timeout",),
        "CCAPI_REGION_TIMEOUT_SECONDS",
        {"type": float, "default": 1800.0, "show_default": True, "help": "Per-region deadline in seconds."},
    ),
    (
        ("--kms-key-id",),
        "CCAPI_KMS_KEY_ID",
        {"help": "KMS key for S3 server-side encryption (default: the bucket's own setting)."},
    ),
    (
        ("--metrics",),
        "CCAPI_METRICS",
        {
            "type": click.Choice(["auto", "cloudwatch", "log", "off"]),
            "default": "auto",
            "show_default": True,
            "help": "CloudWatch metrics; auto: CloudWatch when AWS credentials exist, else a log line.",
        },
    ),
    (
        ("--xray/--no-xray",),
        "CCAPI_XRAY",
        {
            "default": False,
            "show_default": True,
            "help": "Send X-Ray segments to the daemon (AWS_XRAY_DAEMON_ADDRESS).",
        },
    ),
    (
        ("--land-prices",),
        "CCAPI_LAND_PRICES_FILE",
        {
            "type": click.Path(path_type=Path),
            "help": "CSV/JSON overriding the benchmark land price per market tier.",
        },
    ),
    (
        ("--ee-max-concurrency",),
        "CCAPI_EE_MAX_CONCURRENCY",
        {
            "type": int,
            "default": 16,
            "show_default": True,
            "help": "Earth Engine requests in flight for the whole process (project quota: 40).",
        },
    ),
    (
        ("--input-json",),
        "CCAPI_EXECUTION_INPUT",
        {"help": "Step Functions execution input: regions, regions_count, run_date, force_refresh."},
    ),
]

#: Settings fields read from the environment only (no flag): secrets and runtime wiring.
ENV_ONLY: dict[str, str] = {
    "GEE_PROJECT": "gee_project",
    "GEE_SERVICE_ACCOUNT_KEY": "gee_service_account_key",
    "GEE_SERVICE_ACCOUNT_KEY_FILE": "gee_service_account_key_file",
    "CCAPI_TASK_TOKEN": "task_token",
    "CCAPI_HEARTBEAT_SECONDS": "heartbeat_seconds",
    "CCAPI_EXECUTION_ARN": "execution_arn",
}


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for flags, envvar, kwargs in reversed(_COMMON_OPTIONS):
        func = click.option(*flags, envvar=envvar, show_envvar=envvar is not None, **kwargs)(func)
    return func


def fail(message: str, code: ExitCode) -> NoReturn:
    """One line on stderr and the documented exit code."""
    click.echo(f"ccapi-monitor: error: {message}", err=True)
    sys.exit(int(code))


def _parse_run_date(value: str | None) -> date | None:
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).date()
    except ValueError:
        raise InvalidInputError(f"run_date must be YYYY-MM-DD, got {value!r}") from None


def _split_names(value: Any, where: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        names = [n.strip() for n in value.split(",")]
    elif isinstance(value, list) and all(isinstance(n, str) for n in value):
        names = [n.strip() for n in value]
    else:
        raise InvalidInputError(f"{where} must be a list of region names or a comma-separated string")
    if any(not n for n in names):
        raise InvalidInputError(f"{where} contains an empty region name")
    return tuple(names)


def _int_field(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{where} must be an integer, got {value!r}")
    return value


def settings_from_cli(
    ctx: click.Context, options: dict[str, Any], environ: dict[str, str] | None = None
) -> Settings:
    """Merge flags, execution input and environment into validated :class:`Settings`."""
    env = dict(os.environ if environ is None else environ)
    execution = parse_execution_input(options.get("input_json"))

    def from_cli(name: str) -> bool:
        return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE

    run_date_text = options.get("run_date")
    if "run_date" in execution and not from_cli("run_date"):
        run_date_text = (
            execution["run_date"] if isinstance(execution["run_date"], str) else repr(execution["run_date"])
        )
    run_date = _parse_run_date(run_date_text)
    today = datetime.now(UTC).date()
    if run_date is not None and run_date > today + timedelta(days=1):
        raise InvalidInputError(f"run_date {run_date} is in the future: no imagery exists for it yet")

    names = _split_names(options.get("regions"), "--regions")
    if "regions" in execution and not from_cli("regions"):
        names = _split_names(execution["regions"], "input regions")
    count = options.get("regions_count")
    if "regions_count" in execution and not from_cli("regions_count"):
        count = _int_field(execution["regions_count"], "input regions_count")
    force_refresh = bool(options.get("force_refresh"))
    if "force_refresh" in execution and not from_cli("force_refresh"):
        if not isinstance(execution["force_refresh"], bool):
            raise InvalidInputError("input force_refresh must be true or false")
        force_refresh = execution["force_refresh"]
    if count is not None and count < 1:
        raise InvalidInputError(f"regions_count must be at least 1, got {count}")
    if names and count is not None:
        raise InvalidInputError("give either regions or regions_count, not both")

    imagery = options["imagery"]
    infrastructure = options.get("infrastructure") or ("off" if imagery == "demo" else "overpass")
    values: dict[str, Any] = {
        "regions_file": options.get("regions_file"),
        "regions": names,
        "regions_count": count,
        "imagery": imagery,
        "stac_items": options.get("stac_items"),
        "infrastructure": infrastructure,
        "osm_pbf": options.get("osm_pbf"),
        "output": options["output"],
        "cache": options["cache"],
        "environment": options["environment"],
        "max_concurrency": options["max_concurrency"],
        "region_timeout_s": options["region_timeout"],
        "force_refresh": force_refresh,
        "auto_confirm": bool(options.get("auto_confirm")),
        "dry_run": bool(options.get("dry_run")),
        "kms_key_id": options.get("kms_key_id"),
        "metrics": options["metrics"],
        "xray": options["xray"],
        "land_prices_file": options.get("land_prices"),
        "ee_max_concurrency": options["ee_max_concurrency"],
    }
    endpoints: tuple[str, ...] = tuple(options.get("overpass_endpoint") or ())
    if len(endpoints) == 1 and "," in endpoints[0]:
        endpoints = tuple(e.strip() for e in endpoints[0].split(",") if e.strip())
    if endpoints:
        values["overpass_endpoints"] = tuple(endpoints)
    if run_date is not None:
        values["run_date"] = run_date
    for var, field in ENV_ONLY.items():
        if env.get(var):
            values[field] = env[var]
    if values["infrastructure"] == "pbf" and not values["osm_pbf"]:
        raise InvalidInputError("--infrastructure pbf needs --osm-pbf PATH (or CCAPI_OSM_PBF)")
    if values["imagery"] == "stac" and not values["stac_items"]:
        raise InvalidInputError("--imagery stac needs --stac-items PATH_OR_URL (or CCAPI_STAC_ITEMS)")
    return build_settings(values)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="ccapi-monitor")
def main() -> None:
    """Weekly land clearing and construction monitor for Java (Sentinel-2, OSM, AWS)."""


@main.command()
@common_options
@click.option(
    "--auto-confirm",
    is_flag=True,
    envvar="CCAPI_AUTO_CONFIRM",
    show_envvar=True,
    help="Run without asking (required without a terminal).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and exit 0.")
@click.option(
    "--force-refresh",
    is_flag=True,
    envvar="CCAPI_FORCE_REFRESH",
    show_envvar=True,
    help="Ignore checkpoints of this week and recompute every region.",
)
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Run the weekly job: detect, enrich, score, publish."""
    from ccapi_monitor.job import run_job  # heavy imports only when a run happens

    configure_logging()
    sys.exit(int(run_job(lambda: settings_from_cli(ctx, options))))


@main.command()
@common_options
@click.pass_context
def preflight(ctx: click.Context, **options: Any) -> None:
    """Check credentials, buckets, endpoints and the regions file; exit 0 or 4."""
    from ccapi_monitor.job import preflight_job

    configure_logging()
    sys.exit(int(preflight_job(lambda: settings_from_cli(ctx, options))))


@main.command("regions")
@click.option(
    "--regions-file",
    envvar="CCAPI_REGIONS_FILE",
    show_envvar=True,
    type=click.Path(path_type=Path),
    help="GeoJSON FeatureCollection to validate; default: the packaged Java regions.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the regions as JSON.")
def regions_command(regions_file: Path | None, as_json: bool) -> None:
    """List and validate a regions file."""
    try:
        regions = load_regions(regions_file)
    except CCAPIError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        rows = [
            {**r.to_feature()["properties"], "area_km2": round(r.area_km2, 2), "utm_epsg": r.utm_epsg}
            for r in regions
        ]
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'name':34} {'province':16} {'focus':14} prio tier  area_km2  utm")
    for r in regions:
        click.echo(
            f"{r.name:34} {r.province:16} {r.focus:14} {r.priority:4} {r.tier:4} {r.area_km2:9.1f}  {r.utm_epsg}"
        )
    click.echo(f"{len(regions)} regions, valid")
