"""How the analytics side stays fresh: declarative automation for the current period's compaction
and the leaderboard, a sensor for the other periods with pending games, a schedule for retention.

* **Compaction of the current period and the leaderboard** run under declarative automation
  (:func:`refresh`: on each ``SUPERHERO_ANALYTICS_CRON`` tick, default every 2 minutes, if new
  data arrived since the asset was last requested), evaluated by this code location's own
  automation sensor (on by default, like the games sensor). The leaderboard waits for the
  compaction, so a tick gives one chain: new games → compaction of the current period →
  leaderboard; an idle demo launches nothing.
* **Closed periods with pending games** (the last minutes of the period that just closed, late
  games) are compacted by ``compact_pending_periods`` (``sensors/pending_periods.py``): automation
  only looks at the latest partition.
* **Retention** every few minutes (``SUPERHERO_RETENTION_CRON``): keeps the ``games`` partitions
  under ``SUPERHERO_MAX_GAME_PARTITIONS`` and drops those of old periods, verified games only;
  ``partition_cap_sensor`` requests a pass in between when the live set nears the cap.
* **Restore** (``restore_pruned_games``): a backfill over a time window rebuilds pruned games'
  per-game files.

Every job can also be launched by hand from the UI or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg

from superhero_dagster.assets.analytics import hero_leaderboard
from superhero_dagster.assets.compaction import GROUP as COMPACTED_GROUP
from superhero_dagster.assets.compaction import build_compaction
from superhero_dagster.instance_config import ANALYTICS_TAGS
from superhero_dagster.periods import Period
from superhero_dagster.restore import build_restore_job
from superhero_dagster.retention import build_retention_job
from superhero_dagster.sensors import default_status
from superhero_dagster.sensors.partition_cap import build_partition_cap_sensor
from superhero_dagster.sensors.pending_periods import build_pending_periods_sensor

LEADERBOARD_JOB = "hero_leaderboard_job"
COMPACTION_JOB = "compaction_job"
AUTOMATION_SENSOR = "analytics_automation_sensor"
RETENTION_SCHEDULE = "prune_game_partitions_schedule"
#: How often the automation sensor evaluates the conditions (Dagster's default for it is 30 s).
AUTOMATION_INTERVAL_SECONDS = 30
#: ``SUPERHERO_ANALYTICS_CRON=off``: the automation and pending-period sensors start stopped
#: (benchmarks, fault runs); ``SUPERHERO_RETENTION_CRON=off``: the retention schedule does.
OFF, DEFAULT_CRON = "off", "*/2 * * * *"


@dataclass(frozen=True)
class Analytics:
    assets: list[dg.AssetsDefinition]
    jobs: list[dg.JobDefinition | dg.UnresolvedAssetJobDefinition]
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]


def refresh(cron: str, only_after: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """On each cron tick, run if a dependency (of ``only_after``, if given) has updated since
    this asset was last requested, and no run of it is in progress; for a time-partitioned asset,
    its latest partition.

    Why not ``AutomationCondition.on_cron``: it waits for dependencies updated *after* the tick,
    so the last games of a burst (landed before the tick, then nothing) would never be compacted.

    Why not ``updated.since_last_handled()``: when a reset and an update fall into the same
    evaluation, ``since`` lets the reset win (``any_deps_updated`` carries no timestamps to
    order them). Its reset fires on the evaluation after a request and on the asset's own
    materialization, so a batch that landed while the requested run was starting or finishing
    was never seen again, and the last games of a run stayed uncompacted (found by a 40-minute
    ``bench_steady`` run). Here the reset only clears what no update refreshed in that same
    evaluation: an update right after a request asks for one more run instead of being lost.
    """
    updated = dg.AutomationCondition.any_deps_updated()
    if only_after is not None:
        updated = updated.allow(only_after)
    requested = dg.AutomationCondition.newly_requested()
    handled = (requested & ~updated) | dg.AutomationCondition.initial_evaluation()
    return (
        dg.AutomationCondition.in_latest_time_window()
        & dg.AutomationCondition.cron_tick_passed(cron, "UTC").since_last_handled()
        & updated.since(handled.with_label("requested, nothing new since"))
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"new data since the last request, on {cron} (UTC)")


def build_analytics(
    *,
    start: date,
    period: Period,
    cron: str,
    retention_cron: str,
    max_partitions: int,
    retention_days: int,
    delete_game_files: bool,
) -> Analytics:
    automatic = cron != OFF
    cron = cron if automatic else DEFAULT_CRON  # "off": the conditions stay, the sensor is stopped
    partitions_def = period.partitions_def(start)
    compaction = build_compaction(partitions_def, period, refresh(cron))
    compacted_keys = dg.AssetSelection.assets(*compaction.keys)
    leaderboard = hero_leaderboard.with_attributes(
        automation_condition=refresh(cron, only_after=compacted_keys)
    )
    leaderboard_job = dg.define_asset_job(
        LEADERBOARD_JOB,
        selection=dg.AssetSelection.assets(leaderboard),
        executor_def=dg.in_process_executor,
        tags=ANALYTICS_TAGS,
        description="Recomputes the hero leaderboard from the compacted and per-game Parquet files.",
    )
    compaction_job = dg.define_asset_job(
        COMPACTION_JOB,
        selection=compacted_keys,
        executor_def=dg.in_process_executor,
        tags=ANALYTICS_TAGS,
        description=f"Compacts the pending games of one {period.unit} (UTC) into "
        "compacted/<asset>/period=<key>/.",
    )
    retention_job = build_retention_job(max_partitions, retention_days, delete_game_files)
    automation = dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.groups(COMPACTED_GROUP) | dg.AssetSelection.assets(leaderboard),
        default_status=default_status(automatic),
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        emit_backfills=False,
        run_tags=ANALYTICS_TAGS,
        description=f"Compacts the current {period.unit} and refreshes the leaderboard on "
        f"`{cron}` (UTC) when new games arrived since the last request.",
    )
    pending = build_pending_periods_sensor(
        compaction_job, partitions_def, period, running=automatic
    )
    retention = dg.ScheduleDefinition(
        name=RETENTION_SCHEDULE,
        job=retention_job,
        cron_schedule=retention_cron if retention_cron != OFF else DEFAULT_CRON,
        execution_timezone="UTC",
        default_status=(
            dg.DefaultScheduleStatus.STOPPED
            if retention_cron == OFF
            else dg.DefaultScheduleStatus.RUNNING
        ),
        description="Keeps the games partitions under the cap and prunes old periods.",
    )
    return Analytics(
        assets=[leaderboard, compaction],
        jobs=[leaderboard_job, compaction_job, retention_job, build_restore_job(partitions_def)],
        schedules=[retention],
        sensors=[
            automation,
            pending,
            build_partition_cap_sensor(
                retention_job, max_partitions, running=retention_cron != OFF
            ),
        ],
    )
