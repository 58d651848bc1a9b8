"""A retention pass as soon as the live ``games`` partitions near the cap, not at the next cron.

Why: the retention schedule prunes to ``PRUNE_TO`` (80 %) of the cap every few minutes, which
leaves room for 20 % of the cap per interval: 10,000 games at a cap of 50,000, i.e. 83 games/s
over 2 minutes. Faster traffic filled the set before the next pass (51,500 of 50,000 in a 30-minute
run at 100 games/s). The games sensor now holds games in the buffer rather than cross the cap, and
this sensor keeps that hold short: when the set reaches :data:`HIGH_WATER` of the cap and no
retention run is queued or running, it requests one. The schedule stays for the age rule and for
quiet periods.

Cost per evaluation: two one-row reads of the partitions table (their row-id span), a bounded
count only when the span reaches the mark, and one COUNT of in-flight retention runs.
"""

from __future__ import annotations

import dagster as dg

from superhero_dagster.partitions import live_game_partitions
from superhero_dagster.retention import PRUNE_TO, RETENTION_JOB
from superhero_dagster.sensors import default_status
from superhero_dagster.sensors.instance_view import IN_FLIGHT

SENSOR_NAME = "partition_cap_sensor"
#: Halfway between retention's target and the cap.
HIGH_WATER = PRUNE_TO + (1 - PRUNE_TO) / 2
INTERVAL_SECONDS = 10


def high_water_mark(cap: int) -> int:
    return int(cap * HIGH_WATER)


def evaluate_cap(instance: dg.DagsterInstance, cap: int) -> dg.SensorResult:
    mark = high_water_mark(cap)
    live = live_game_partitions(instance, cap, adding=cap - mark)
    if live < mark:
        return dg.SensorResult(skip_reason=f"{live} live games partitions, below {mark} of {cap}")
    running = instance.get_runs_count(dg.RunsFilter(job_name=RETENTION_JOB, statuses=IN_FLIGHT))
    if running:
        return dg.SensorResult(
            skip_reason=f"{live} live games partitions (mark {mark}); a retention run is in flight"
        )
    return dg.SensorResult(
        run_requests=[dg.RunRequest(tags={"superhero/live_partitions": str(live)})]
    )


def build_partition_cap_sensor(
    retention_job: dg.JobDefinition, cap: int, *, running: bool
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=retention_job,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status(running),
        description=(
            f"Requests a retention pass when the live games partitions reach {high_water_mark(cap)}"
            f" of the cap {cap} and none is in flight (the games sensor holds games past the cap)."
        ),
    )
    def partition_cap_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        return evaluate_cap(context.instance, cap)

    return partition_cap_sensor
