"""The scaling model behind docs/scaling.md: weekly wall time and Fargate cost, single task vs fan-out.

``python tools/scaling_model.py`` prints the tables docs/scaling.md shows; a test keeps the
page equal to this output, so a changed input (a new benchmark figure, a new price) changes
both or fails. Inputs and their sources are the constants below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# --- measured (benchmarks/README.md, 2 cores) -------------------------------------------------
#: STAC backend: one 20 x 20 km region at 10 m, a year of scenes, local COGs, 2 vCPU.
STAC_S_PER_REGION = 17.5
#: Earth Engine backend: server work per region, from the benchmark's model of Earth Engine
#: (lognormal, sigma 0.8, median 30 s statistics + 0.6 x that for polygons): mean request-seconds.
EE_REQUEST_S_PER_REGION = 30.0 * math.exp(0.8**2 / 2) * 1.6
EE_PROJECT_QUOTA = 40  # concurrent requests per Cloud project
EE_PER_TASK = EE_PROJECT_QUOTA  # the worker's default ee_max_concurrency: the whole quota
EE_SHARED_PER_TASK = 16  # --ee-max-concurrency for a project other users share

# --- assumed overheads (not measurable offline; AWS documents no fixed figure) -----------------
TASK_START_S = 60.0  # Fargate provisioning + image pull, billed
PREFLIGHT_S = 60.0  # ValidateInputs task, both variants
ASSEMBLE_S = 60.0  # read results, write reports (measured locally: see docs/scaling.md)

# --- Fargate price (AWS list price, Linux/x86, US East (N. Virginia), per second, 1-min minimum) -
VCPU_HOUR_USD = 0.04048
GB_HOUR_USD = 0.004445
TASK_VCPU, TASK_GB = 2, 8  # Terraform's default task size
TASK_HOUR_USD = TASK_VCPU * VCPU_HOUR_USD + TASK_GB * GB_HOUR_USD

SHARD_SIZE = 25
INLINE_MAP_CONCURRENCY = 40
REGION_COUNTS = (29, 330, 1000)
SINGLE_TASK_TIMEOUT_S = 7200  # RunWeeklyMonitoring's TimeoutSeconds


@dataclass(frozen=True)
class Estimate:
    wall_s: float
    task_s: float  # billed task-seconds

    @property
    def usd(self) -> float:
        return self.task_s / 3600.0 * TASK_HOUR_USD


def stac_single(regions: int) -> Estimate:
    work = TASK_START_S + regions * STAC_S_PER_REGION
    return Estimate(PREFLIGHT_S + work, PREFLIGHT_S + TASK_START_S + work)


def stac_fan_out(regions: int, shard_size: int = SHARD_SIZE) -> Estimate:
    shards = math.ceil(regions / shard_size)
    waves = math.ceil(shards / INLINE_MAP_CONCURRENCY)
    shard_s = TASK_START_S + min(shard_size, regions) * STAC_S_PER_REGION
    billed = PREFLIGHT_S + TASK_START_S + shards * TASK_START_S + regions * STAC_S_PER_REGION
    billed += TASK_START_S + ASSEMBLE_S
    wall = PREFLIGHT_S + waves * shard_s + TASK_START_S + ASSEMBLE_S
    return Estimate(wall, billed)


def ee_single(regions: int, per_task: int = EE_PER_TASK) -> Estimate:
    work = TASK_START_S + regions * EE_REQUEST_S_PER_REGION / min(per_task, EE_PROJECT_QUOTA)
    return Estimate(PREFLIGHT_S + work, PREFLIGHT_S + TASK_START_S + work)


def ee_fan_out(regions: int, shard_size: int = SHARD_SIZE, per_task: int = EE_PER_TASK) -> Estimate:
    shards = math.ceil(regions / shard_size)
    tasks = max(1, min(shards, EE_PROJECT_QUOTA // per_task))
    slots = tasks * per_task
    compute = regions * EE_REQUEST_S_PER_REGION / slots
    billed = PREFLIGHT_S + TASK_START_S + shards * TASK_START_S + compute * tasks + TASK_START_S + ASSEMBLE_S
    wall = PREFLIGHT_S + math.ceil(shards / tasks) * TASK_START_S + compute + TASK_START_S + ASSEMBLE_S
    return Estimate(wall, billed)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


def table() -> str:
    lines = [
        "| regions | backend | single task: wall | single: Fargate $ | fan-out: wall | fan-out: Fargate $ | shards |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for regions in REGION_COUNTS:
        shards = math.ceil(regions / SHARD_SIZE)
        rows: tuple[tuple[str, Estimate, Estimate | None], ...] = (
            ("STAC", stac_single(regions), stac_fan_out(regions)),
            (
                f"Earth Engine, {EE_PER_TASK} requests a task (default)",
                ee_single(regions),
                ee_fan_out(regions),
            ),
            (
                f"Earth Engine, {EE_SHARED_PER_TASK} requests a task (shared project)",
                ee_single(regions, EE_SHARED_PER_TASK),
                ee_fan_out(regions, per_task=EE_SHARED_PER_TASK),
            ),
        )
        for name, single, fan in rows:
            over = (
                " (over the 2 h task timeout)" if single.wall_s - PREFLIGHT_S > SINGLE_TASK_TIMEOUT_S else ""
            )
            lines.append(
                f"| {regions:,} | {name} | {_minutes(single.wall_s)}{over} | {single.usd:.3f} | "
                + (f"{_minutes(fan.wall_s)} | {fan.usd:.3f} | {shards} |" if fan else "n/a | n/a | 1 |")
            )
    return "\n".join(lines)


def crossover() -> str:
    """The smallest region count from which fan-out finishes sooner (STAC), and the single task's limit."""
    first = next(n for n in range(1, 5000) if stac_fan_out(n).wall_s < stac_single(n).wall_s)
    limit = math.floor((SINGLE_TASK_TIMEOUT_S - TASK_START_S) / STAC_S_PER_REGION)
    return (
        f"- STAC: fan-out finishes sooner from **{first} regions** on; one task cannot finish more "
        f"than **{limit} regions** within RunWeeklyMonitoring's 2-hour timeout (local reads; fewer "
        "with remote reads).\n"
        f"- Earth Engine: no crossover. With the default {EE_PER_TASK} requests per task (the whole quota) "
        "one task is as fast as any fan-out can be, for one task's price; the Map would run its shards "
        "one after another and only add task starts. With "
        f"`--ee-max-concurrency {EE_SHARED_PER_TASK}` (a shared project) the Map runs "
        f"{EE_PROJECT_QUOTA // EE_SHARED_PER_TASK} tasks "
        f"({EE_PROJECT_QUOTA // EE_SHARED_PER_TASK * EE_SHARED_PER_TASK} slots), which beats one task at "
        f"{EE_SHARED_PER_TASK} but not one at {EE_PROJECT_QUOTA}."
    )


def main() -> None:
    print(f"Task: {TASK_VCPU} vCPU, {TASK_GB} GB at ${TASK_HOUR_USD:.5f} an hour; shard size {SHARD_SIZE}.")
    print()
    print(table())
    print()
    print(crossover())


if __name__ == "__main__":
    main()
