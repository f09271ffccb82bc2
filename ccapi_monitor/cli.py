"""Command line: ``ccapi-monitor run | preflight | assemble | regions | grid`` (docs/design/cli.md).

The flags of ``run`` and ``preflight`` are generated from :class:`~ccapi_monitor.settings.Settings`
(one flag per settable field, named after it); precedence and validation live in
:func:`ccapi_monitor.settings.resolve`.
"""

from __future__ import annotations

import json
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource
from pydantic.fields import FieldInfo

from ccapi_monitor import __version__
from ccapi_monitor.errors import CCAPIError, ExitCode
from ccapi_monitor.grid_regions import DEFAULT_MIN_LAND_FRACTION
from ccapi_monitor.logs import configure_logging
from ccapi_monitor.regions import load_regions
from ccapi_monitor.settings import (
    EXECUTION_INPUT_FIELDS,
    Settings,
    Source,
    flag_name,
    resolve,
    sources,
)

#: The environment variable that carries the Step Functions execution input (``--input-json``).
EXECUTION_INPUT_ENV = "CCAPI_EXECUTION_INPUT"


def _click_kwargs(info: FieldInfo, source: Source) -> dict[str, Any]:
    """Click's view of a setting: its type from the annotation, help and default from the field.

    Click only parses flags; it does not read the environment and only flags given on the
    command line are used, so :func:`ccapi_monitor.settings.resolve` alone decides precedence
    and validates (exit 3, where click would exit 2 on a bad environment value).
    """
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    kwargs: dict[str, Any] = {"help": info.description or ""}
    if typing.get_origin(annotation) is typing.Literal:
        kwargs["type"] = click.Choice([str(a) for a in typing.get_args(annotation)])
    elif annotation in (int, float):
        kwargs["type"] = annotation
    elif annotation is Path:
        kwargs["type"] = click.Path(path_type=Path)
    elif typing.get_origin(annotation) is tuple:
        kwargs["multiple"] = True
    notes = [f"env var: {source.env}"] if source.env else []
    if source.show_default is not None:
        notes.append(f"default: {source.show_default}")
    elif info.default_factory is None and info.default not in (None, (), False):
        # Shown only: the value click reports for an absent flag is ignored (not COMMANDLINE).
        kwargs.update(default=info.default, show_default=True)
    if notes:
        kwargs["help"] += f" [{'; '.join(notes)}]"
    return kwargs


def settings_options(command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``command`` with a flag for every setting it takes, plus ``--input-json``."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option(
            "--input-json",
            envvar=EXECUTION_INPUT_ENV,
            show_envvar=True,
            help="Step Functions execution input: " + ", ".join(EXECUTION_INPUT_FIELDS) + ".",
        )(func)
        for name, source in reversed(sources().items()):
            if not source.flag or command not in source.commands:
                continue
            info = Settings.model_fields[name]
            flag = flag_name(name)
            if info.annotation is bool:
                flag = f"{flag}/--no-{flag[2:]}"
            func = click.option(flag, **_click_kwargs(info, source))(func)
        return func

    return decorate


def settings_from_cli(ctx: click.Context, options: Mapping[str, Any]) -> Settings:
    """The command line's own values (not defaults), merged with execution input and environment."""
    given = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in options.items()
        if name in Settings.model_fields and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }
    return resolve(given, options.get("input_json"), os.environ)


def fail(message: str, code: ExitCode) -> NoReturn:
    """One line on stderr and the documented exit code."""
    click.echo(f"ccapi-monitor: error: {message}", err=True)
    sys.exit(int(code))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="ccapi-monitor")
def main() -> None:
    """Weekly land clearing and construction monitor for Java (Sentinel-2, OSM, AWS)."""


@main.command()
@settings_options("run")
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Run the weekly job: detect, enrich, score, publish."""
    from ccapi_monitor.job import run_job  # heavy imports only when a run happens

    configure_logging()
    sys.exit(int(run_job(lambda: settings_from_cli(ctx, options))))


@main.command()
@settings_options("preflight")
@click.pass_context
def preflight(ctx: click.Context, **options: Any) -> None:
    """Check credentials, buckets, endpoints and the regions file; exit 0 or 4."""
    from ccapi_monitor.job import preflight_job

    configure_logging()
    sys.exit(int(preflight_job(lambda: settings_from_cli(ctx, options))))


@main.command()
@settings_options("assemble")
@click.pass_context
def assemble(ctx: click.Context, **options: Any) -> None:
    """Fan-out: publish the run the shards of --run-id computed (missing regions: failed)."""
    from ccapi_monitor.job import assemble_job

    configure_logging()
    sys.exit(int(assemble_job(lambda: settings_from_cli(ctx, options))))


@main.command()
@click.option("--cell-km", type=float, default=20.0, show_default=True, help="Edge of a square cell in km.")
@click.option(
    "--min-land-fraction",
    type=float,
    default=DEFAULT_MIN_LAND_FRACTION,
    show_default=True,
    help="Keep a cell when at least this share of it is land (Natural Earth 1:10m).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the regions file here instead of printing it.",
)
def grid(cell_km: float, min_land_fraction: float, output: Path | None) -> None:
    """Write a regions file of square cells covering Java's land (docs/scaling.md)."""
    from ccapi_monitor.grid_regions import GridSpec, grid_collection

    try:
        document = grid_collection(GridSpec(cell_km=cell_km, min_land_fraction=min_land_fraction))
    except CCAPIError as exc:
        fail(str(exc), exc.exit_code)
    text = json.dumps(document, indent=1) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", ExitCode.INVALID_INPUT)
    click.echo(f"{len(document['features'])} cells of {cell_km:g} km written to {output}", err=True)


def regions_file_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--regions-file`` (env ``CCAPI_REGIONS_FILE``) for the commands outside Settings."""
    return click.option(
        "--regions-file",
        envvar="CCAPI_REGIONS_FILE",
        show_envvar=True,
        type=click.Path(path_type=Path),
        help=help_text,
    )


@main.command("regions")
@regions_file_option("GeoJSON FeatureCollection to validate; default: the packaged Java regions.")
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


@main.command("compare")
@click.option(
    "--first", type=click.Choice(["earthengine", "stac", "demo"]), required=True, help="First backend."
)
@click.option(
    "--second", type=click.Choice(["earthengine", "stac", "demo"]), required=True, help="Second backend."
)
@click.option("--run-date", required=True, help="Run date (YYYY-MM-DD), the same for both.")
@click.option("--regions", "region_names", default="", help="Region names, comma-separated (default: all).")
@click.option("--regions-count", type=int, default=None, help="The first N regions by priority.")
@click.option("--stac-items", default=None, help="stac backend: STAC API URL or ItemCollection file.")
@click.option("--stac-collection", default=None, help="stac backend: collection searched.")
@click.option("--cache", default=None, help="Cache folder (the demo archive is kept there).")
@click.option("--tolerance-ha", type=float, default=1.0, show_default=True, help="Hectares always allowed.")
@click.option(
    "--tolerance-share",
    type=float,
    default=0.05,
    show_default=True,
    help="Plus this share of the larger figure.",
)
@click.option("--min-iou", type=float, default=0.8, show_default=True, help="Smallest footprint IoU allowed.")
def compare_command(
    first: str,
    second: str,
    run_date: str,
    region_names: str,
    regions_count: int | None,
    stac_items: str | None,
    stac_collection: str | None,
    cache: str | None,
    tolerance_ha: float,
    tolerance_share: float,
    min_iou: float,
) -> None:
    """Run two imagery backends on the same regions and date; exit 1 when they disagree.

    Prints, per region and class, both backends' hectares, their difference and the
    footprint IoU. With the demo on either side both use the demo archive's pixel size.
    """
    from ccapi_monitor.compare import compare_backends, render
    from ccapi_monitor.detection import create_backend
    from ccapi_monitor.detection.demo import DemoBackend
    from ccapi_monitor.plan import select_regions

    configure_logging()
    given: dict[str, Any] = {"run_date": run_date, "imagery": first}
    if region_names:
        given["regions"] = [n for n in region_names.split(",") if n]
    if regions_count is not None:
        given["regions_count"] = regions_count
    for name, value in (("stac_items", stac_items), ("stac_collection", stac_collection), ("cache", cache)):
        if value is not None:
            given[name] = value
    try:
        settings = resolve(given, None, os.environ)
        if "demo" in (first, second):
            settings = settings.model_copy(update={"detection": DemoBackend.demo_params(settings.detection)})
        backends = [create_backend(settings.model_copy(update={"imagery": name})) for name in (first, second)]
        regions = select_regions(
            load_regions(settings.regions_file), settings.regions, settings.regions_count
        )
        rows = compare_backends(backends[0], backends[1], regions, settings.run_date)
    except CCAPIError as exc:
        fail(str(exc), exc.exit_code)
    for line in render(rows, first, second):
        click.echo(line)
    bad = [r for r in rows if isinstance(r, tuple) or not r.within(tolerance_ha, tolerance_share, min_iou)]
    if bad:
        click.echo(f"{len(bad)} of {len(rows)} rows above tolerance", err=True)
        sys.exit(int(ExitCode.FAILED))
    click.echo(f"{len(rows)} rows within tolerance")


@main.group("history")
def history_group() -> None:
    """The curated GeoParquet history under the reports root (docs/history.md)."""


@history_group.command("rebuild")
@click.option(
    "--output",
    envvar="CCAPI_REPORTS_URI",
    show_envvar=True,
    default="./reports",
    show_default=True,
    help="Reports: s3://bucket/prefix or a local folder.",
)
@regions_file_option("Regions whose outlines the regions table carries; default: the packaged Java regions.")
def history_rebuild(output: str, regions_file: Path | None) -> None:
    """Write history/changes and history/regions again from the published runs (idempotent)."""
    from ccapi_monitor.reports.history import rebuild_history
    from ccapi_monitor.store_factory import open_store

    configure_logging()
    try:
        outlines = {r.name: r.to_feature()["geometry"] for r in load_regions(regions_file)}
        store = open_store(output)
        if not store.list_keys("weekly/"):
            fail(
                f"no runs under {output}/weekly/: nothing to rebuild the history from", ExitCode.INVALID_INPUT
            )
        chosen = rebuild_history(store, outlines)
    except CCAPIError as exc:
        fail(str(exc), exc.exit_code)
    for run_date, run_id in sorted(chosen.items()):
        click.echo(f"{run_date.isoformat()}  {run_id}")
    click.echo(f"history rebuilt: {len(chosen)} week{'s' if len(chosen) != 1 else ''}")
