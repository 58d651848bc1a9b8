"""Jobs and schedules of the analytics side: leaderboard hourly, compaction daily, then retention.

All three schedules are on by default (like the sensor): a fresh ``make demo`` shows a leaderboard
within the hour and keeps the number of ``games`` partitions bounded without anyone clicking.
Compaction of day D runs at 00:15 UTC on D+1 (the daily partitions end at yesterday), retention at
01:15 UTC, after it; a day compacted late is simply pruned the next night (retention only touches
compacted, verified days). Every job can also be launched by hand from the UI or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from superhero_dagster.assets.analytics import hero_leaderboard
from superhero_dagster.assets.daily import daily_compaction
from superhero_dagster.retention import build_retention_job

LEADERBOARD_JOB = "hero_leaderboard_job"
DAILY_JOB = "daily_compaction_job"


@dataclass(frozen=True)
class Analytics:
    assets: list[dg.AssetsDefinition]
    jobs: list[dg.JobDefinition | dg.UnresolvedAssetJobDefinition]
    schedules: list[dg.ScheduleDefinition | dg.UnresolvedPartitionedAssetScheduleDefinition]


def build_analytics(retention_days: int, delete_game_files: bool) -> Analytics:
    leaderboard_job = dg.define_asset_job(
        LEADERBOARD_JOB,
        selection=dg.AssetSelection.assets(hero_leaderboard),
        executor_def=dg.in_process_executor,
        description="Recomputes the hero leaderboard from the daily and per-game Parquet files.",
    )
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.assets(daily_compaction),
        partitions_def=daily_compaction.partitions_def,
        executor_def=dg.in_process_executor,
        description="Compacts one UTC day of per-game files into daily/<asset>/date=D/.",
    )
    retention_job = build_retention_job(retention_days, delete_game_files)
    running = dg.DefaultScheduleStatus.RUNNING
    schedules = [
        dg.ScheduleDefinition(
            name="hero_leaderboard_hourly",
            job=leaderboard_job,
            cron_schedule="5 * * * *",
            execution_timezone="UTC",
            default_status=running,
        ),
        dg.build_schedule_from_partitioned_job(
            daily_job,
            name="daily_compaction_schedule",
            hour_of_day=0,
            minute_of_hour=15,
            default_status=running,
        ),
        dg.ScheduleDefinition(
            name="prune_game_partitions_daily",
            job=retention_job,
            cron_schedule="15 1 * * *",
            execution_timezone="UTC",
            default_status=running,
        ),
    ]
    return Analytics(
        assets=[hero_leaderboard, daily_compaction],
        jobs=[leaderboard_job, daily_job, retention_job],
        schedules=schedules,
    )
