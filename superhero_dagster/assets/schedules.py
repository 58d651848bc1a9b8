"""How the analytics side stays fresh: declarative automation for compaction and the leaderboard,
a nightly schedule for the day that just closed, then retention.

* **Compaction of today and the leaderboard** run under declarative automation (:func:`refresh`:
  on each ``SUPERHERO_ANALYTICS_CRON`` tick, default every 2 minutes, if new data arrived since
  the asset last ran), evaluated by this code location's own automation sensor (on by default,
  like the games sensor). The leaderboard waits for the compaction, so a tick gives one chain:
  new games → compaction of today's partition → leaderboard; an idle demo launches nothing. A
  fresh ``make demo`` is green end to end within a few minutes, and *Materialize* never warns
  about unmaterialized upstream assets once the first compaction has run.
* **The day that just closed** is compacted once more at 00:15 UTC (games that ended in its last
  minutes), by a schedule: automation only looks at the latest partition.
* **Retention** at 01:15 UTC, after it; a day compacted late is simply pruned the next night
  (retention only touches compacted, verified days).

Every job can also be launched by hand from the UI or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import dagster as dg

from superhero_dagster.assets.analytics import hero_leaderboard
from superhero_dagster.assets.daily import GROUP as DAILY_GROUP
from superhero_dagster.assets.daily import build_daily_compaction, compaction_partitions
from superhero_dagster.retention import build_retention_job

LEADERBOARD_JOB = "hero_leaderboard_job"
DAILY_JOB = "daily_compaction_job"
AUTOMATION_SENSOR = "analytics_automation_sensor"
CLOSED_DAY_SCHEDULE = "compact_closed_day"
#: How often the automation sensor evaluates the conditions (Dagster's default for it is 30 s).
AUTOMATION_INTERVAL_SECONDS = 30
#: ``SUPERHERO_ANALYTICS_CRON=off``: the automation sensor starts stopped (benchmarks, fault runs).
OFF, DEFAULT_CRON = "off", "*/2 * * * *"


@dataclass(frozen=True)
class Analytics:
    assets: list[dg.AssetsDefinition]
    jobs: list[dg.JobDefinition | dg.UnresolvedAssetJobDefinition]
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]


def previous_day(scheduled: datetime) -> str:
    """The partition key of the UTC day before the schedule's tick."""
    return (scheduled.date() - timedelta(days=1)).isoformat()


def refresh(cron: str, only_after: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """On each cron tick, run if a dependency (of ``only_after``, if given) has updated since
    this asset last ran or was requested; for a time-partitioned asset, its latest partition.

    Why not ``AutomationCondition.on_cron``: it waits for dependencies updated *after* the tick,
    so the last games of a burst (landed before the tick, then nothing) would never be compacted.
    """
    updated = dg.AutomationCondition.any_deps_updated()
    if only_after is not None:
        updated = updated.allow(only_after)
    return (
        dg.AutomationCondition.in_latest_time_window()
        & dg.AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
        & updated.since_last_handled()
    ).with_label(f"new data since the last run, on {cron} (UTC)")


def build_analytics(
    *, start: date, cron: str, retention_days: int, delete_game_files: bool
) -> Analytics:
    automatic = cron != OFF
    cron = cron if automatic else DEFAULT_CRON  # "off": the conditions stay, the sensor is stopped
    daily_compaction = build_daily_compaction(compaction_partitions(start), refresh(cron))
    daily_keys = dg.AssetSelection.assets(*daily_compaction.keys)
    leaderboard = hero_leaderboard.with_attributes(
        automation_condition=refresh(cron, only_after=daily_keys)
    )
    leaderboard_job = dg.define_asset_job(
        LEADERBOARD_JOB,
        selection=dg.AssetSelection.assets(leaderboard),
        executor_def=dg.in_process_executor,
        description="Recomputes the hero leaderboard from the daily and per-game Parquet files.",
    )
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.assets(daily_compaction),
        executor_def=dg.in_process_executor,
        description="Compacts one UTC day of per-game files into daily/<asset>/date=D/.",
    )

    @dg.schedule(
        name=CLOSED_DAY_SCHEDULE,
        job=daily_job,
        cron_schedule="15 0 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Compacts yesterday once more, with the games of its last minutes.",
    )
    def compact_closed_day(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        key = previous_day(context.scheduled_execution_time)
        return dg.RunRequest(run_key=key, partition_key=key)

    retention_job = build_retention_job(retention_days, delete_game_files)
    automation = dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.groups(DAILY_GROUP) | dg.AssetSelection.assets(leaderboard),
        default_status=(
            dg.DefaultSensorStatus.RUNNING if automatic else dg.DefaultSensorStatus.STOPPED
        ),
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        emit_backfills=False,
        description=f"Compacts today and refreshes the leaderboard on `{cron}` (UTC) when new "
        "games arrived since the last tick.",
    )
    schedules = [
        compact_closed_day,
        dg.ScheduleDefinition(
            name="prune_game_partitions_daily",
            job=retention_job,
            cron_schedule="15 1 * * *",
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
        ),
    ]
    return Analytics(
        assets=[leaderboard, daily_compaction],
        jobs=[leaderboard_job, daily_job, retention_job],
        schedules=schedules,
        sensors=[automation],
    )
