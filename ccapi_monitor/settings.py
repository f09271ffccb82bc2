"""Settings: every input of a run, validated once into one typed object.

Flags, their environment variables and the Step Functions execution input all
end up here; anything invalid raises :class:`InvalidInputError` (exit 3) before
anything is written.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.params import DetectionParams

Imagery = Literal["earthengine", "stac", "demo"]
Infrastructure = Literal["overpass", "pbf", "off"]
MetricsMode = Literal["auto", "cloudwatch", "log", "off"]

log = logging.getLogger(__name__)

#: Fields the Step Functions execution input may set; others are logged and ignored.
EXECUTION_INPUT_FIELDS = ("regions", "regions_count", "run_date", "force_refresh")


class Settings(BaseModel):
    """One run's configuration (ARCHITECTURE.md, "Command line" and "Configuration")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_date: date = Field(default_factory=lambda: datetime.now(UTC).date())
    regions_file: Path | None = None
    regions: tuple[str, ...] = ()
    regions_count: int | None = Field(None, ge=1)
    imagery: Imagery = "earthengine"
    stac_items: str | None = None
    infrastructure: Infrastructure = "overpass"
    osm_pbf: Path | None = None
    overpass_endpoints: tuple[str, ...] = (
        "https://overpass-api.de/api/interpreter",
        "https://overpass.kumi.systems/api/interpreter",
    )
    infrastructure_buffer_km: float = Field(
        25.0, ge=0, le=200, description="OSM features are measured inside the region plus this buffer (km)."
    )
    output: str = "./reports"
    cache: str = "./.ccapi-cache"
    environment: str = "local"
    max_concurrency: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Regions in flight; default 4, or half of ee_max_concurrency with Earth Engine.",
    )
    region_timeout_s: float = Field(1800.0, gt=0)
    force_refresh: bool = False
    auto_confirm: bool = False
    dry_run: bool = False
    # Earth Engine
    gee_project: str | None = Field(
        None, description="Google Cloud project that Earth Engine bills (GEE_PROJECT)."
    )
    gee_service_account_key: SecretStr | None = Field(
        None, description="Service-account key as JSON text (GEE_SERVICE_ACCOUNT_KEY); never logged."
    )
    gee_service_account_key_file: Path | None = Field(
        None, description="Path to a service-account key file (GEE_SERVICE_ACCOUNT_KEY_FILE)."
    )
    ee_max_concurrency: int = Field(16, ge=1, le=40)
    ee_deadline_s: float = Field(300.0, gt=0, description="Deadline of each Earth Engine request in seconds.")
    # AWS runtime
    kms_key_id: str | None = None
    metrics: MetricsMode = "auto"
    metric_namespace: str = Field(
        "CloudClearingAPI", description="CloudWatch namespace of the worker's metrics."
    )
    xray: bool = False
    task_token: SecretStr | None = Field(
        None, description="Step Functions task token (CCAPI_TASK_TOKEN); no token: no callback, no heartbeat."
    )
    heartbeat_seconds: float = Field(
        60.0, gt=0, description="Seconds between SendTaskHeartbeat calls (CCAPI_HEARTBEAT_SECONDS)."
    )
    execution_arn: str | None = Field(
        None, description="Step Functions execution ARN, added to every log line (CCAPI_EXECUTION_ARN)."
    )
    land_prices_file: Path | None = None
    detection: DetectionParams = Field(default_factory=DetectionParams)

    @property
    def regions_in_flight(self) -> int:
        """Earth Engine regions mostly wait on the network (two requests each), so keep enough
        of them in flight to fill the request limiter; local imagery is bound by the CPUs."""
        if self.max_concurrency is not None:
            return self.max_concurrency
        if self.imagery == "earthengine":
            return max(4, -(-self.ee_max_concurrency // 2))
        return 4


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


def build_settings(values: dict[str, Any]) -> Settings:
    """Validate raw values into :class:`Settings`; one line per problem, exit 3."""
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise InvalidInputError(f"invalid {where}: {first['msg']}") from None
