"""One invocation of the worker: the glue between settings, runner, reports and AWS.

``run_job`` owns the process-level concerns: the Step Functions heartbeat from the
first second, signals, the confirmation prompt, publishing order, metrics, the
callback and the exit code. Everything it calls is testable on its own.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click
import structlog

from ccapi_monitor.aws.metrics import publish_run_metrics
from ccapi_monitor.aws.stepfunctions import TaskCallback
from ccapi_monitor.changes import load_previous_run
from ccapi_monitor.detection import ImageryBackend, create_backend
from ccapi_monitor.errors import AbortedError, CCAPIError, ExitCode, InvalidInputError
from ccapi_monitor.fanout import (
    FanOutStore,
    Shard,
    collect_results,
    fan_out_duration_s,
    merged_imagery,
    plan_shards,
    record_shard,
    shard_payload,
)
from ccapi_monitor.infrastructure.base import InfrastructureSource
from ccapi_monitor.infrastructure.factory import create_infrastructure_source
from ccapi_monitor.logs import register_secret
from ccapi_monitor.market.sources import build_source, load_market
from ccapi_monitor.models import NO_PREVIOUS_RUN_NOTE, ImageryInfo, PreviousRunInfo, RunSummary
from ccapi_monitor.plan import Plan, build_plan, select_regions
from ccapi_monitor.quality import gate_run
from ccapi_monitor.regions import Region, load_regions
from ccapi_monitor.reports.publish import publish_run
from ccapi_monitor.reports.terminal import summary_table
from ccapi_monitor.runner import REGION_THREAD_PREFIX, RunDependencies, Runner, build_summary, new_run_id
from ccapi_monitor.scoring import load_land_prices, require_tiers
from ccapi_monitor.settings import Settings
from ccapi_monitor.skip_calendar import skip_decision
from ccapi_monitor.storage import Store
from ccapi_monitor.store_factory import open_store
from ccapi_monitor.tracing import Tracer, set_tracer

log = structlog.get_logger(__name__)

SettingsFactory = Callable[[], Settings]


class AbortController:
    """Turns SIGINT/SIGTERM and a heartbeat's TaskTimedOut into one abort, raised in the main thread.

    The signal handler raises :class:`AbortedError` wherever the main thread is (preparing
    imagery, waiting for regions, publishing), so the process stops within seconds;
    ``latest.json`` is written last, so an interrupted publish leaves it unchanged.
    """

    def __init__(self) -> None:
        self.code: ExitCode | None = None
        self.reason = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.code is None:
            self.code = ExitCode.SIGINT if signum == signal.SIGINT else ExitCode.SIGTERM
            self.reason = self.reason or f"received {signal.Signals(signum).name}"
        raise AbortedError(f"interrupted: {self.reason}", exit_code=self.code)

    @contextmanager
    def installed(self) -> Iterator[AbortController]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals can only be handled on the main thread (e.g. some test runners)
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for number, handler in self._previous.items():
                signal.signal(number, handler)

    def watch(self, callback: TaskCallback) -> None:
        """When Step Functions gives up on the task, stop the way SIGTERM stops."""

        def wait_for_abort() -> None:
            callback.aborted.wait()
            if self.code is None:
                self.code = ExitCode.SIGTERM
                self.reason = (
                    f"Step Functions ended the task ({callback.abort_reason or 'heartbeat rejected'})"
                )
                signal.raise_signal(signal.SIGTERM)

        threading.Thread(target=wait_for_abort, name="abort-watch", daemon=True).start()

    def check(self) -> ExitCode | None:
        return self.code


def _progress(done: int, failed: int, total: int) -> None:
    """A one-line progress display for people at a terminal; logs carry the rest."""
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        click.echo(f"\rregions: {done}/{total} done, {failed} failed", err=True, nl=False)
        if end:
            click.echo("", err=True)


def _confirm(settings: Settings, plan: Plan) -> bool:
    """Ask on a TTY; refuse at once without one (never hang, never EOFError)."""
    if settings.auto_confirm:
        return True
    if not sys.stdin.isatty():
        raise InvalidInputError(
            "no terminal to confirm on: pass --auto-confirm (or set CCAPI_AUTO_CONFIRM=1) to run unattended"
        )
    click.echo(plan.render())
    return click.confirm("Run this plan?", default=False)


def _register_settings_secrets(settings: Settings) -> None:
    for secret in (settings.gee_service_account_key, settings.task_token):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if settings.execution_arn:
        structlog.contextvars.bind_contextvars(execution_arn=settings.execution_arn)


def _stores(settings: Settings) -> tuple[Store, Store]:
    return (
        open_store(settings.output, kms_key_id=settings.kms_key_id),
        open_store(settings.cache, kms_key_id=settings.kms_key_id),
    )


def _infrastructure(settings: Settings, cache: Store) -> InfrastructureSource:
    return create_infrastructure_source(
        settings.infrastructure,
        cache=cache,
        endpoints=settings.overpass_endpoints,
        osm_pbf=settings.osm_pbf,
        buffer_km=settings.infrastructure_buffer_km,
    )


def _select(settings: Settings) -> list[Region]:
    return select_regions(load_regions(settings.regions_file), settings.regions, settings.regions_count)


def _report_error(code: ExitCode, message: str) -> None:
    click.echo(f"ccapi-monitor: error: {message}", err=True)
    log.error("run_failed", exit_code=int(code), error=message)


def _hard_exit_if_threads_linger(code: ExitCode) -> None:
    """Region threads cannot be killed; after an abort, do not let them hold the exit past stopTimeout."""
    lingering = [t for t in threading.enumerate() if t.name.startswith(REGION_THREAD_PREFIX) and t.is_alive()]
    if lingering:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))


def _execute(settings: Settings, aborts: AbortController, callback: TaskCallback) -> RunSummary | None:
    """Plan, confirm, run and publish; ``None`` when the person at the prompt declined.

    A shard (``--shard K/N``) runs its share of the selection and writes the results to the
    cache store instead of publishing (docs/scaling.md).
    """
    regions = _select(settings)
    shard = Shard.parse(settings.shard) if settings.shard else None
    if shard is not None:
        regions = shard.select(regions)
    backend = create_backend(settings)
    params = backend.params
    imagery = ImageryInfo.model_validate(backend.describe(settings.run_date))
    plan = build_plan(settings, regions, params, imagery)
    if settings.dry_run:
        click.echo(plan.render())
        return None
    if not _confirm(settings, plan):
        click.echo("nothing run: the plan was not confirmed", err=True)
        return None
    started_at = datetime.now(UTC)
    reports, cache = _stores(settings)
    infrastructure = _infrastructure(settings, cache)
    prices = load_land_prices(settings.land_prices)
    require_tiers({r.tier for r in regions}, prices)
    deps = RunDependencies(
        backend=backend,
        infrastructure=infrastructure,
        reports=reports,
        cache=cache,
        prices=prices,
        params=params,
        previous=load_previous_run(reports, before=settings.run_date),
        imagery_info=imagery,
        market=load_market(build_source(settings, cache), regions, settings.run_date),
    )
    run_id = settings.run_id or new_run_id()
    tracer = Tracer(settings.xray)
    set_tracer(tracer)
    with tracer.run(run_id):
        summary = Runner(
            settings, regions, deps, run_id=run_id, abort_check=aborts.check, progress=_progress
        ).run()
        if aborts.check() is not None:
            raise AbortedError(f"interrupted: {aborts.reason}", exit_code=aborts.code or ExitCode.SIGTERM)
        if shard is not None:
            record_shard(FanOutStore(cache, settings.run_date, run_id), shard, summary, started_at)
            return summary
        return _publish(settings, summary, regions, reports, backend, infrastructure)


def _publish(
    settings: Settings,
    summary: RunSummary,
    regions: list[Region],
    reports: Store,
    backend: ImageryBackend,
    infrastructure: InfrastructureSource,
) -> RunSummary:
    """Quality gate, reports (``latest.json`` last), metrics: a single run's or assemble's."""
    summary = gate_run(
        summary,
        regions={r.name: r.geometry for r in regions},
        reports=reports,
        accept=settings.accept_quality,
    )
    uris = publish_run(
        reports,
        summary,
        regions,
        backend=backend,
        infrastructure=infrastructure,
        chips=settings.report_chips,
        move_latest=summary.exit_code not in (ExitCode.FAILED, ExitCode.QUALITY_FAILED),
    )
    summary = summary.model_copy(update={"report_uris": uris})
    publish_run_metrics(summary, mode=settings.metrics, namespace=settings.metric_namespace)
    if sys.stdout.isatty():  # a person at a terminal: the top regions and where the page is
        click.echo(summary_table(summary))
    return summary


def _assemble(settings: Settings, aborts: AbortController, callback: TaskCallback) -> RunSummary:
    """Fan-out's last step: every region's result from the store (missing: failed), then publish."""
    if not settings.run_id:
        raise InvalidInputError("assemble needs --run-id (or CCAPI_RUN_ID): the id the shards ran with")
    regions = _select(settings)
    backend = create_backend(settings)
    reports, cache = _stores(settings)
    store = FanOutStore(cache, settings.run_date, settings.run_id)
    records = store.shard_records()
    results, _missing = collect_results(regions, store, settings.run_id)
    first = records[0] if records else None
    if first is not None:
        windows, params, previous_run = first.windows, first.parameters, first.previous_run
    else:  # no shard finished: the run fails, and its report still says what was asked for
        params = backend.params
        windows = params.windows(settings.run_date)
        previous = load_previous_run(reports, before=settings.run_date)
        previous_run = previous.describe() if previous else PreviousRunInfo(note=NO_PREVIOUS_RUN_NOTE)
    imagery = merged_imagery(records) or ImageryInfo.model_validate(backend.describe(settings.run_date))
    summary = build_summary(
        settings,
        regions,
        results,
        run_id=settings.run_id,
        duration_s=fan_out_duration_s(records) or 0.0,
        imagery=imagery,
        windows=windows,
        params=params,
        previous_run=previous_run,
    )
    structlog.contextvars.bind_contextvars(run_id=settings.run_id)
    tracer = Tracer(settings.xray)
    set_tracer(tracer)
    with tracer.run(settings.run_id):
        return _publish(settings, summary, regions, reports, backend, _infrastructure(settings, cache))


Execute = Callable[[Settings, AbortController, TaskCallback], RunSummary | None]


def _conclude(
    callback: TaskCallback,
    code: ExitCode,
    *,
    summary: RunSummary | None = None,
    message: str = "",
    output: dict[str, Any] | None = None,
    echo: bool = True,
) -> ExitCode:
    """Every outcome of ``run`` and ``preflight`` leaves through here: a failure's one stderr
    line and log event, then the one callback (docs/design/exit-codes.md)."""
    if code not in (ExitCode.OK, ExitCode.PARTIAL) and echo:
        _report_error(code, message)
    callback.report_exit(int(code), summary, message, output=output)
    return code


def run_job(
    settings_factory: SettingsFactory, *, callback: TaskCallback | None = None, execute: Execute = _execute
) -> ExitCode:
    """The whole ``ccapi-monitor run`` (or, with ``execute=_assemble``, ``assemble``); returns the
    exit code (docs/design/exit-codes.md)."""
    callback = callback or TaskCallback.from_env()
    callback.start()  # heartbeats from the first second, before anything can fail
    aborts = AbortController()
    aborts.watch(callback)
    summary: RunSummary | None = None
    try:
        with aborts.installed():
            try:
                settings = settings_factory()
                _register_settings_secrets(settings)
                callback.use_heartbeat_seconds(settings.heartbeat_seconds)
                summary = execute(settings, aborts, callback)
                if summary is None:  # dry run, or the plan was declined
                    return _conclude(callback, ExitCode.OK)
                code = ExitCode(summary.exit_code)
                if settings.shard and execute is _execute:
                    # A shard answers with a small summary whatever its size; stdout shows it to people.
                    output = shard_payload(Shard.parse(settings.shard), summary)
                    click.echo(json.dumps(output))
                    return _conclude(
                        callback, code, summary=summary, message="no region succeeded", output=output
                    )
                if code == ExitCode.QUALITY_FAILED and summary.quality is not None:
                    # Reports were written for review; the ASL routes quality_failed to CCAPI.DataQualityFailed.
                    return _conclude(callback, code, summary=summary, message=summary.quality.summary_line())
                return _conclude(callback, code, summary=summary, message="no region succeeded")
            except CCAPIError as exc:
                code = _conclude(callback, exc.exit_code, summary=summary, message=str(exc))
                if isinstance(exc, AbortedError):
                    _hard_exit_if_threads_linger(code)
                return code
            except Exception as exc:  # a bug or an unexpected library failure: still exit 1 with a callback
                log.exception("run_crashed")
                message = f"{type(exc).__name__}: {exc}"
                return _conclude(callback, ExitCode.FAILED, summary=summary, message=message)
    finally:
        callback.stop()


def assemble_job(settings_factory: SettingsFactory, *, callback: TaskCallback | None = None) -> ExitCode:
    """``ccapi-monitor assemble``: the same process-level handling as a run (heartbeats,
    signals, callback, exit code), around :func:`_assemble`."""
    return run_job(settings_factory, callback=callback, execute=_assemble)


def preflight_job(settings_factory: SettingsFactory, *, callback: TaskCallback | None = None) -> ExitCode:
    """``ccapi-monitor preflight``: one line per failed check; exit 0 or 4 (3 for bad input)."""
    from ccapi_monitor.preflight import run_preflight

    callback = callback or TaskCallback.from_env()
    callback.start()
    try:
        try:
            settings = settings_factory()
            _register_settings_secrets(settings)
            callback.use_heartbeat_seconds(settings.heartbeat_seconds)
            # The skip calendar comes first: a holiday needs no credentials and no Earth Engine.
            skip = None if settings.force else skip_decision(settings.skip_calendar, settings.run_date)
            if skip is not None:
                click.echo(f"preflight: skipped: {skip.run_date} is on the skip calendar ({skip.reason})")
                log.info(
                    "run_skipped", run_date=skip.run_date.isoformat(), reason=skip.reason, source=skip.source
                )
                return _conclude(callback, ExitCode.OK, output=skip.callback())
            regions = _select(settings)
            _, cache = _stores(settings)
            backend = create_backend(settings)
            infrastructure = _infrastructure(settings, cache)
            problems = run_preflight(settings, backend=backend, infrastructure=infrastructure)
        except CCAPIError as exc:
            return _conclude(callback, exc.exit_code, message=str(exc))
        except Exception as exc:  # a bug: exit 1 with a callback, like run
            log.exception("preflight_crashed")
            return _conclude(callback, ExitCode.FAILED, message=f"{type(exc).__name__}: {exc}")
        if problems:
            for line in problems:
                click.echo(f"preflight: FAIL {line}", err=True)
            return _conclude(callback, ExitCode.PREFLIGHT_FAILED, message="; ".join(problems), echo=False)
        click.echo("preflight: all checks passed", err=settings.plan_shards)
        output: dict[str, Any] = {
            "status": "succeeded",
            "exit_code": 0,
            "preflight": "ok",
            "run_date": settings.run_date.isoformat(),
        }
        if settings.plan_shards:  # fan-out: the Map's items (docs/scaling.md)
            output["plan"] = plan_shards(
                regions,
                shard_size=settings.shard_size,
                run_id=settings.run_id or new_run_id(),
                run_date=settings.run_date,
                imagery=settings.imagery,
                ee_max_concurrency=settings.ee_max_concurrency,
            )
            click.echo(json.dumps(output["plan"]))
        return _conclude(callback, ExitCode.OK, output=output)
    finally:
        callback.stop()
