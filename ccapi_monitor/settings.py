"""Settings: every input of a run, validated once into one typed object.

Where a value comes from is declared on the field itself, with a :class:`Source` in its
annotation:

- the command-line flag is always ``--`` plus the field name with dashes
  (``region_timeout`` is ``--region-timeout``); ``Source(flag=False)`` means none;
- ``env`` names its environment variable;
- ``execution_input=True`` lets the Step Functions execution input (``--input-json``) set it;
- ``commands`` says which commands take the flag (default ``run`` and ``preflight``).

Precedence: flag, then execution input, then environment variable, then default.
:mod:`ccapi_monitor.cli` builds its options from these declarations, :func:`resolve` merges
the sources, and ``docs/configuration.md`` is generated from them (``make config-docs``).

Adding a setting with a flag, an environment variable and an execution-input field is one
change in this module, then ``make config-docs``::

    run_id: Annotated[str | None, Source(env="CCAPI_RUN_ID", execution_input=True)] = Field(
        None, description="What the setting is for, as the --help text says it."
    )

A parser for a textual form (a comma-separated list, a timestamp) is a field validator
here; a rule between settings ("--x needs --y", "not both") is one line in
:data:`REQUIRES` or :data:`EXCLUSIVE`. Anything invalid raises
:class:`InvalidInputError` (exit 3, one line) before anything is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.market import sample_feed_path
from ccapi_monitor.market.models import MarketSourceName
from ccapi_monitor.params import DetectionParams
from ccapi_monitor.skip_calendar import SkipCalendar

Imagery = Literal["earthengine", "stac", "demo"]
Infrastructure = Literal["overpass", "pbf", "off"]
MetricsMode = Literal["auto", "cloudwatch", "log", "off"]
ReportChips = Literal["true-colour", "false-colour", "off"]

log = logging.getLogger(__name__)

#: The commands that take a setting unless its Source says otherwise. ``assemble`` resolves the
#: same selection, stores and imagery as the shards it assembles (docs/scaling.md).
RUN_AND_PREFLIGHT = ("run", "preflight", "assemble")
#: Ceiling of regions processed at once (threads; Earth Engine regions mostly wait).
MAX_REGIONS_IN_FLIGHT = 64


@dataclass(frozen=True)
class Source:
    """How a setting is given from outside (see the module docstring)."""

    env: str | None = None
    flag: bool = True
    execution_input: bool = False
    commands: tuple[str, ...] = RUN_AND_PREFLIGHT
    #: The default as ``--help`` states it, when the field's own default is computed.
    show_default: str | None = None


def flag_name(field: str) -> str:
    """The command-line flag of a setting: its name with dashes."""
    return "--" + field.replace("_", "-")


def _env_only(env: str) -> Source:
    return Source(env=env, flag=False)


class Settings(BaseModel):
    """One run's configuration (docs/design/configuration.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_date: Annotated[
        date, Source(env="CCAPI_RUN_DATE", execution_input=True, show_default="today (UTC)")
    ] = Field(
        default_factory=lambda: datetime.now(UTC).date(),
        description="YYYY-MM-DD (or an ISO timestamp).",
    )
    regions_file: Annotated[Path | None, Source(env="CCAPI_REGIONS_FILE")] = Field(
        None, description="GeoJSON FeatureCollection of regions; default: the packaged Java regions."
    )
    regions: Annotated[tuple[str, ...], Source(execution_input=True)] = Field(
        (), description="Region names to run, a subset (repeatable, or comma-separated)."
    )
    regions_count: Annotated[int | None, Source(execution_input=True)] = Field(
        None, ge=1, description="Run the first N regions by priority, then name."
    )
    imagery: Annotated[Imagery, Source(env="CCAPI_IMAGERY")] = Field(
        "earthengine", description="Imagery backend; never falls back to demo silently."
    )
    stac_items: Annotated[str | None, Source(env="CCAPI_STAC_ITEMS")] = Field(
        None, description="stac backend: a STAC API URL or an ItemCollection JSON file."
    )
    stac_collection: Annotated[str, Source(env="CCAPI_STAC_COLLECTION")] = Field(
        "sentinel-2-c1-l2a",
        description="stac backend: the collection searched; sentinel-2-l2a is still read "
        "(each item's offset is checked against its pixels).",
    )
    infrastructure: Annotated[
        Infrastructure, Source(env="CCAPI_INFRASTRUCTURE", show_default="overpass; off with --imagery demo")
    ] = Field("overpass", description="OSM source.")
    osm_pbf: Annotated[Path | None, Source(env="CCAPI_OSM_PBF")] = Field(
        None, description="Local .osm.pbf extract for --infrastructure pbf."
    )
    overpass_endpoints: Annotated[tuple[str, ...], Source(env="CCAPI_OVERPASS_ENDPOINTS")] = Field(
        (
            "https://overpass-api.de/api/interpreter",
            "https://overpass.kumi.systems/api/interpreter",
        ),
        description="Overpass API endpoints, tried in order (repeatable, or comma-separated).",
    )
    infrastructure_buffer_km: float = Field(
        25.0, ge=0, le=200, description="OSM features are measured inside the region plus this buffer (km)."
    )
    output: Annotated[str, Source(env="CCAPI_REPORTS_URI")] = Field(
        "./reports", description="Reports: s3://bucket/prefix or a local folder."
    )
    cache: Annotated[str, Source(env="CCAPI_CACHE_URI")] = Field(
        "./.ccapi-cache", description="Checkpoints and caches: s3://bucket/prefix or a local folder."
    )
    report_chips: Annotated[ReportChips, Source(env="CCAPI_REPORT_CHIPS", commands=("run",))] = Field(
        "true-colour",
        description="Before/after image chips of the top new sites in report.html: true-colour, "
        "false-colour (NIR, red, green) or off.",
    )
    environment: Annotated[str, Source(env="CCAPI_ENVIRONMENT")] = Field(
        "local", description="Metric dimension and report label."
    )
    max_concurrency: Annotated[
        int | None,
        Source(env="CCAPI_MAX_CONCURRENCY", show_default="4; with earthengine, twice --ee-max-concurrency"),
    ] = Field(None, ge=1, le=MAX_REGIONS_IN_FLIGHT, description="Regions in flight.")
    region_timeout: Annotated[float, Source(env="CCAPI_REGION_TIMEOUT_SECONDS")] = Field(
        1800.0, gt=0, description="Per-region deadline in seconds."
    )
    force_refresh: Annotated[
        bool, Source(env="CCAPI_FORCE_REFRESH", execution_input=True, commands=("run",))
    ] = Field(False, description="Ignore checkpoints of this week and recompute every region.")
    accept_quality: Annotated[bool, Source(execution_input=True, commands=("run",))] = Field(
        False,
        description="Publish a run whose critical data-quality findings an operator reviewed (docs/quality.md).",
    )
    auto_confirm: Annotated[bool, Source(env="CCAPI_AUTO_CONFIRM", commands=("run",))] = Field(
        False, description="Run without asking (required without a terminal)."
    )
    dry_run: Annotated[bool, Source(commands=("run",))] = Field(
        False, description="Print the plan and exit 0."
    )
    # Earth Engine
    gee_project: Annotated[str | None, _env_only("GEE_PROJECT")] = Field(
        None, description="Google Cloud project that Earth Engine bills."
    )
    gee_service_account_key: Annotated[SecretStr | None, _env_only("GEE_SERVICE_ACCOUNT_KEY")] = Field(
        None, description="Service-account key as JSON text; never logged."
    )
    gee_service_account_key_file: Annotated[Path | None, _env_only("GEE_SERVICE_ACCOUNT_KEY_FILE")] = Field(
        None, description="Path to a service-account key file."
    )
    # The whole quota by default: the weekly run is the project's main user, one task at 40
    # is as fast as any fan-out (docs/scaling.md), and the limiter's AIMD shrinks the window
    # when other users hold slots (429s). A shared project sets it lower.
    ee_max_concurrency: Annotated[int, Source(env="CCAPI_EE_MAX_CONCURRENCY")] = Field(
        40,
        ge=1,
        le=40,
        description="Earth Engine requests in flight for the whole process (project quota: 40).",
    )
    ee_deadline_s: float = Field(300.0, gt=0, description="Deadline of each Earth Engine request in seconds.")
    # AWS runtime
    kms_key_id: Annotated[str | None, Source(env="CCAPI_KMS_KEY_ID")] = Field(
        None, description="KMS key for S3 server-side encryption (default: the bucket's own setting)."
    )
    metrics: Annotated[MetricsMode, Source(env="CCAPI_METRICS")] = Field(
        "auto",
        description="CloudWatch metrics; auto: CloudWatch when AWS credentials exist, else a log line.",
    )
    metric_namespace: Annotated[str, Source(env="CCAPI_METRIC_NAMESPACE")] = Field(
        "CloudClearingAPI",
        pattern=r"^[A-Za-z0-9._/#:-]{1,255}$",
        description="CloudWatch namespace of the worker's metrics (Terraform's metric_namespace; the task role allows only it).",
    )
    xray: Annotated[bool, Source(env="CCAPI_XRAY")] = Field(
        False, description="Send X-Ray segments to the daemon (AWS_XRAY_DAEMON_ADDRESS)."
    )
    task_token: Annotated[SecretStr | None, _env_only("CCAPI_TASK_TOKEN")] = Field(
        None, description="Step Functions task token; no token: no callback, no heartbeat."
    )
    heartbeat_seconds: Annotated[float, _env_only("CCAPI_HEARTBEAT_SECONDS")] = Field(
        60.0, gt=0, description="Seconds between SendTaskHeartbeat calls."
    )
    execution_arn: Annotated[str | None, _env_only("CCAPI_EXECUTION_ARN")] = Field(
        None, description="Step Functions execution ARN, added to every log line."
    )
    skip_calendar: Annotated[
        SkipCalendar, Source(env="CCAPI_SKIP_CALENDAR", flag=False, commands=("preflight",))
    ] = Field(
        default_factory=SkipCalendar,
        description="JSON skip calendar (public holidays country, dates, windows) that preflight checks first; unset: nothing skipped.",
    )
    force: Annotated[bool, Source(execution_input=True, commands=("preflight",))] = Field(
        False, description="Run even when the run date is on the skip calendar."
    )
    land_prices: Annotated[Path | None, Source(env="CCAPI_LAND_PRICES_FILE")] = Field(
        None, description="CSV/JSON overriding the benchmark land price per market tier."
    )
    # Market data (docs/market.md)
    market: Annotated[
        MarketSourceName,
        Source(
            env="CCAPI_MARKET",
            commands=("run",),
            show_default="static; feed (synthetic sample) with --imagery demo",
        ),
    ] = Field("static", description="Market data source of the score's market term and the report.")
    market_feed: Annotated[str | None, Source(env="CCAPI_MARKET_FEED", commands=("run",))] = Field(
        None, description="--market feed: price feed URI (path, s3:// or https://; CSV, JSON or Parquet)."
    )
    market_feed_token: Annotated[SecretStr | None, _env_only("CCAPI_MARKET_FEED_TOKEN")] = Field(
        None, description="Bearer token for an HTTPS price feed; never logged."
    )
    market_listings: Annotated[tuple[str, ...], Source(env="CCAPI_MARKET_LISTINGS", commands=("run",))] = (
        Field(
            (),
            description="--market listings: listing pages, URL or REGION=URL (repeatable, or comma-separated).",
        )
    )
    enable_scraping: Annotated[
        bool, Source(env="CCAPI_ENABLE_SCRAPING", execution_input=True, commands=("run",))
    ] = Field(
        True, description="Fetch market data over the network; off: cached copies or the static table only."
    )
    detection: DetectionParams = Field(default_factory=DetectionParams)
    # Fan-out (docs/scaling.md)
    shard: Annotated[str | None, Source(env="CCAPI_SHARD", commands=("run",))] = Field(
        None,
        description="Fan-out: compute shard K/N of the selected regions into the cache store; "
        "publishes nothing (needs --run-id).",
    )
    run_id: Annotated[str | None, Source(env="CCAPI_RUN_ID", commands=("run", "preflight", "assemble"))] = (
        Field(
            None, description="The run's id instead of a new one; fan-out: shared by the shards and assemble."
        )
    )
    shard_size: Annotated[int, Source(env="CCAPI_SHARD_SIZE", commands=("preflight",))] = Field(
        25, ge=1, le=1000, description="Fan-out: regions per shard in the plan of --plan-shards."
    )
    plan_shards: Annotated[bool, Source(commands=("preflight",))] = Field(
        False, description="Fan-out: also print and return the plan (run id, shards, the Map's concurrency)."
    )

    # -- textual forms -------------------------------------------------------------------------

    @field_validator("metric_namespace")
    @classmethod
    def _own_namespace(cls, value: str) -> str:
        if value.startswith("AWS/"):
            raise ValueError("namespaces starting with AWS/ are reserved for AWS services")
        return value

    @field_validator("skip_calendar", mode="before")
    @classmethod
    def _parse_skip_calendar(cls, value: Any) -> Any:
        """CCAPI_SKIP_CALENDAR is JSON text (Terraform's jsonencode of skip_calendar)."""
        return SkipCalendar.from_json(value) if isinstance(value, str) else value

    @field_validator("run_date", mode="before")
    @classmethod
    def _parse_run_date(cls, value: Any) -> Any:
        """A date, or a scheduler's ISO timestamp (taken in UTC)."""
        if isinstance(value, date):
            return value
        if not isinstance(value, str):
            raise ValueError(f"must be YYYY-MM-DD, got {value!r}")
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).date()
        except ValueError:
            raise ValueError(f"must be YYYY-MM-DD, got {value!r}") from None

    @field_validator("run_date")
    @classmethod
    def _not_in_the_future(cls, value: date) -> date:
        if value > datetime.now(UTC).date() + timedelta(days=1):
            raise ValueError(f"{value} is in the future: no imagery exists for it yet")
        return value

    @field_validator("shard")
    @classmethod
    def _parse_shard(cls, value: str | None) -> str | None:
        from ccapi_monitor.fanout import Shard  # fanout reads the models, which read these settings' types

        return None if value is None else Shard.parse(value).label

    @field_validator("run_id")
    @classmethod
    def _check_run_id(cls, value: str | None) -> str | None:
        from ccapi_monitor.fanout import validate_run_id

        return None if value is None else validate_run_id(value)

    @field_validator("regions", "overpass_endpoints", "market_listings", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        """A list, a comma-separated string, or repeated flags that may each hold commas."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ValueError("must be a list of names or a comma-separated string")
        names = tuple(n.strip() for item in items for n in item.split(","))
        if any(not n for n in names):
            raise ValueError("contains an empty name")
        return names

    @model_validator(mode="before")
    @classmethod
    def _infrastructure_default(cls, values: Any) -> Any:
        """The demo imagery runs offline: no OSM unless asked for, market figures from the sample feed."""
        if isinstance(values, dict) and values.get("infrastructure") is None:
            values = {**values, "infrastructure": "off" if values.get("imagery") == "demo" else "overpass"}
        if isinstance(values, dict) and values.get("imagery") == "demo":
            if values.get("market") is None:
                values = {**values, "market": "feed"}
            if values.get("market") == "feed" and values.get("market_feed") is None:
                values = {**values, "market_feed": str(sample_feed_path())}
        return values

    # -- rules between settings ------------------------------------------------------------------

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Settings:
        for field, value, needed in REQUIRES:
            current = getattr(self, field)
            triggered = current == value if value is not None else _given(current)
            if triggered and not _given(getattr(self, needed)):
                given = flag_name(field) + (f" {value}" if value is not None else "")
                raise InvalidInputError(f"{given} needs {_how_to_set(needed)}")
        for first, second in EXCLUSIVE:
            if _given(getattr(self, first)) and _given(getattr(self, second)):
                raise InvalidInputError(f"give either {flag_name(first)} or {flag_name(second)}, not both")
        return self

    @property
    def regions_in_flight(self) -> int:
        """Earth Engine regions mostly wait on the network (two requests each), so keep more
        of them in flight than the request limiter has slots: it then always has a queue to
        serve largest-first, and a slot freed by a region's quicker request is reused at once
        instead of idling until the region's other request ends (benchmarks/README.md:
        half the slots' worth of regions ran up to 2x the lower bound). Local imagery is
        bound by the CPUs."""
        if self.max_concurrency is not None:
            return self.max_concurrency
        if self.imagery == "earthengine":
            return min(MAX_REGIONS_IN_FLIGHT, 2 * self.ee_max_concurrency)
        return 4


#: ``(setting, value, needed)``: when ``setting`` has ``value`` (``None``: any non-empty
#: value), ``needed`` must be given too.
REQUIRES: tuple[tuple[str, object, str], ...] = (
    ("imagery", "stac", "stac_items"),
    ("infrastructure", "pbf", "osm_pbf"),
    ("shard", None, "run_id"),
    ("market", "feed", "market_feed"),
    ("market", "listings", "market_listings"),
)
#: Pairs of settings that may not both be given.
EXCLUSIVE: tuple[tuple[str, str], ...] = (("regions", "regions_count"),)


def source_of(model: type[BaseModel], field: str) -> Source | None:
    """The :class:`Source` declared on ``model.field``; ``None``: fixed in code."""
    return next((m for m in model.model_fields[field].metadata if isinstance(m, Source)), None)


def sources(model: type[BaseModel] = Settings) -> dict[str, Source]:
    """Every field of ``model`` that can be set from outside, in declaration order."""
    found = {name: source_of(model, name) for name in model.model_fields}
    return {name: source for name, source in found.items() if source is not None}


def _given(value: object) -> bool:
    return value is not None and value != () and value != ""


def _how_to_set(field: str) -> str:
    source = sources()[field]
    how = flag_name(field) if source.flag else ""
    if source.env:
        how = f"{how} (or {source.env})" if how else source.env
    return how


#: Fields the Step Functions execution input may set; others are logged and ignored.
EXECUTION_INPUT_FIELDS = tuple(name for name, s in sources().items() if s.execution_input)


def parse_execution_input(text: str | None) -> dict[str, Any]:
    """Parse and screen the Step Functions execution input (``--input-json``)."""
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--input-json is not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise InvalidInputError("--input-json must be a JSON object")
    unknown = sorted(set(data) - set(EXECUTION_INPUT_FIELDS))
    if unknown:
        log.warning("execution input: ignoring unknown fields %s", ", ".join(unknown))
    return {k: v for k, v in data.items() if k in EXECUTION_INPUT_FIELDS}


def resolve(flags: Mapping[str, Any], execution_input: str | None, environ: Mapping[str, str]) -> Settings:
    """Merge the sources by precedence (flag, execution input, environment) into Settings.

    ``flags`` holds only the values given on the command line, by field name.
    """
    execution = parse_execution_input(execution_input)
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, source in sources().items():
        env_value = environ.get(source.env, "").strip() if source.env else ""
        if name in flags:
            values[name], origin[name] = flags[name], flag_name(name)
        elif name in execution:
            values[name], origin[name] = execution[name], f"execution input {name}"
        elif env_value:
            values[name], origin[name] = env_value, str(source.env)
    return build_settings(values, origin)


def build_settings(values: Mapping[str, Any], origin: Mapping[str, str] | None = None) -> Settings:
    """Validate raw values into :class:`Settings`; the first problem as one line, exit 3."""
    try:
        return Settings.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        where = (origin or {}).get(field, field)
        error = (first.get("ctx") or {}).get("error")
        message = str(error) if first["type"] == "value_error" and error is not None else first["msg"]
        raise InvalidInputError(f"invalid {where}: {message}") from None
