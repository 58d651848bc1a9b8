"""Assembling the Definitions from Settings (kept apart so tests can pass explicit settings)."""

from __future__ import annotations

import dagster as dg

from superhero_dagster.assets.compaction import analytics_start
from superhero_dagster.assets.games import game_assets
from superhero_dagster.assets.schedules import build_analytics
from superhero_dagster.periods import Period
from superhero_dagster.resources import RedisResource, SinkResource
from superhero_dagster.sensors.completed_games import build_completed_games_sensor
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import SinkRoot

INGEST_JOB = "ingest_games"


def build_definitions(settings: Settings) -> dg.Definitions:
    ingest_job = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.assets(game_assets),
        executor_def=dg.in_process_executor,
        description="Materializes a batch of games (snapshot, metadata, podium) in one process.",
    )
    sensor = build_completed_games_sensor(
        ingest_job,
        interval_seconds=settings.sensor_interval_seconds,
        max_games_per_run=settings.max_games_per_run,
        max_games_per_tick=settings.max_games_per_tick,
        deadletter_max=settings.deadletter_max,
        max_live_partitions=settings.max_game_partitions,
        run_slots_fallback=settings.max_concurrent_runs,
    )
    analytics = build_analytics(
        start=settings.analytics_start or analytics_start(SinkRoot(settings.data_dir)),
        period=Period(settings.compaction_period),
        cron=settings.analytics_cron,
        retention_cron=settings.retention_cron,
        max_partitions=settings.max_game_partitions,
        retention_days=settings.retention_days,
        delete_game_files=settings.delete_game_files,
    )
    return dg.Definitions(
        assets=[game_assets, *analytics.assets],
        jobs=[ingest_job, *analytics.jobs],
        schedules=analytics.schedules,
        sensors=[sensor, *analytics.sensors],
        resources={
            # The URL is left to the environment at run time (it may carry a password, and
            # whatever is passed here is stored in every run's job snapshot and shown in the UI).
            "redis": RedisResource(
                namespace=settings.namespace,
                expire_after_seconds=settings.expire_after_seconds,
                snapshot_retention_seconds=settings.snapshot_retention_seconds,
                materialized_keep=settings.materialized_keep,
            ),
            "sink": SinkResource(
                root=str(settings.data_dir), compaction_period=settings.compaction_period
            ),
        },
        executor=dg.in_process_executor,
    )
