"""The sensor that drains the listener's buffer into ``games`` partitions and batched runs."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import redis

from superhero_dagster.instance_config import GAMES_BATCH, RUN_KIND_TAG
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.decode import deadletter_json
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME, games_partitions
from superhero_dagster.resources import RedisResource
from superhero_dagster.sensors.buffer import BufferReader
from superhero_dagster.sensors.planning import Batch, TickPlan, parse_cursor, plan

SENSOR_NAME = "completed_games_sensor"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def run_request_for(batch: Batch) -> dg.RunRequest:
    """One run over a batch: a single partition, or a contiguous range of them."""
    tags = {RUN_KIND_TAG: GAMES_BATCH, "superhero/games": str(len(batch.tokens))}
    if len(batch.tokens) == 1:
        return dg.RunRequest(run_key=batch.run_key, partition_key=batch.tokens[0], tags=tags)
    tags |= {RANGE_START_TAG: batch.tokens[0], RANGE_END_TAG: batch.tokens[-1]}
    return dg.RunRequest(run_key=batch.run_key, tags=tags)


def _dead_letter(client: redis.Redis, keys: ProjectKeys, plan_: TickPlan, limit: int) -> None:
    """Entries that are not game tokens cannot become partitions: keep them for a human."""
    if not plan_.rejected:
        return
    pipe = client.pipeline(transaction=False)
    at = datetime.now(UTC).isoformat()
    for entry, reason in plan_.rejected:
        record = deadletter_json(
            f"buffer entry refused by sensor: {reason}", entry, at=at, listener=SENSOR_NAME
        )
        pipe.lpush(keys.deadletter, record)
    pipe.ltrim(keys.deadletter, 0, limit - 1)
    pipe.hincrby(keys.stats, "deadlettered", len(plan_.rejected))
    pipe.execute()


def evaluate_tick(
    context: dg.SensorEvaluationContext,
    redis_resource: RedisResource,
    *,
    max_games_per_run: int,
    max_games_per_tick: int,
    deadletter_max: int,
) -> dg.SensorResult:
    """Acknowledge what the committed cursor requested, then plan the next slice of the buffer."""
    client = redis_resource.client()
    keys = redis_resource.project_keys
    reader = BufferReader(client, keys.buffer)
    for span in parse_cursor(context.cursor):
        reader.ack(span.length, span.head, span.last)
    entries = reader.peek(max_games_per_tick)
    if not entries:
        return dg.SensorResult(skip_reason="buffer is empty", cursor=TickPlan().cursor())
    existing = context.instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)
    tick = plan(entries, existing, max_games_per_run)
    _dead_letter(client, keys, tick, deadletter_max)
    context.log.info(
        f"{len(entries)} buffered entries: {len(tick.new_partitions)} new games, "
        f"{len(tick.batches)} runs, {tick.duplicates} duplicates, {len(tick.rejected)} refused"
    )
    return dg.SensorResult(
        run_requests=[run_request_for(b) for b in tick.batches],
        dynamic_partitions_requests=(
            [games_partitions.build_add_request(tick.new_partitions)] if tick.new_partitions else []
        ),
        cursor=tick.cursor(),
    )


def build_completed_games_sensor(
    job: dg.JobDefinition | Any,
    *,
    interval_seconds: int,
    max_games_per_run: int,
    max_games_per_tick: int,
    deadletter_max: int,
) -> dg.SensorDefinition:
    """The sensor, on by default; knobs come from Settings when the code location loads."""

    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Drains the listener's Redis buffer: adds one `games` partition per captured game and "
            f"requests runs of up to {max_games_per_run} games each."
        ),
    )
    def completed_games_sensor(
        context: dg.SensorEvaluationContext, redis: RedisResource
    ) -> dg.SensorResult:
        return evaluate_tick(
            context,
            redis,
            max_games_per_run=max_games_per_run,
            max_games_per_tick=max_games_per_tick,
            deadletter_max=deadletter_max,
        )

    return completed_games_sensor
