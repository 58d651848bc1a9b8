"""The sensor that drains the listener's buffer into ``games`` partitions and batched runs."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import redis

from superhero_dagster.instance_config import GAMES_BATCH, RUN_KIND_TAG
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.decode import deadletter_json
from superhero_dagster.partitions import games_partitions, live_game_partitions
from superhero_dagster.resources import RedisResource
from superhero_dagster.sensors.buffer import BufferReader
from superhero_dagster.sensors.instance_view import partition_view, run_slots
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
    max_live_partitions: int,
    run_slots_fallback: int = 2,
) -> dg.SensorResult:
    """Acknowledge what the committed cursor requested, then plan the next slice of the buffer.

    Adaptive batching: the tick requests at most as many runs as the run queue has free slots for
    game batches (slots held by analytics and other runs count as taken), and none while they are
    all taken; the games wait in the buffer meanwhile, so a slow machine gets fewer, larger runs
    instead of a queue of small ones.

    The live-set cap: the tick adds no more partitions than fit under ``max_live_partitions``;
    the games past that wait in the buffer, in order, until retention has pruned compacted games
    (``partition_cap_sensor`` asks for a pass when the set nears the cap). So the cap holds at any
    rate, and a backlog waits in Redis, where the listener keeps buffering, rather than in Dagster.
    """
    client = redis_resource.client()
    keys = redis_resource.project_keys
    reader = BufferReader(client, keys.buffer)
    for span in parse_cursor(context.cursor):
        reader.ack(span.length, span.head, span.last)
    slots = run_slots(context.instance, run_slots_fallback)
    if not slots.free:
        return dg.SensorResult(
            skip_reason=(
                f"{slots.in_flight} game-batch runs queued or running (limit {slots.limit}), "
                f"{slots.others} queue slots held by other runs; "
                f"{reader.depth()} games wait in the buffer for a larger run"
            ),
            cursor=TickPlan().cursor(),
        )
    entries = reader.peek(min(max_games_per_tick, slots.free * max_games_per_run))
    if not entries:
        return dg.SensorResult(skip_reason="buffer is empty", cursor=TickPlan().cursor())
    view = partition_view(context.instance, entries, window=max_games_per_tick)
    tick = plan(entries, view.newest, max_games_per_run, view.older)
    live = (
        live_game_partitions(context.instance, max_live_partitions, len(tick.new_partitions))
        if tick.new_partitions
        else 0
    )
    room = max_live_partitions - live
    if len(tick.new_partitions) > room:
        tick = plan(entries, view.newest, max_games_per_run, view.older, max_new=room)
        if not tick.spans:
            return dg.SensorResult(
                skip_reason=(
                    f"{live} live games partitions, the cap is {max_live_partitions}: "
                    f"{reader.depth()} games wait in the buffer until retention prunes "
                    "compacted games"
                ),
                cursor=TickPlan().cursor(),
            )
    _dead_letter(client, keys, tick, deadletter_max)
    held = (
        f"; {tick.held} held in the buffer ({live} live partitions, cap {max_live_partitions})"
        if tick.held
        else ""
    )
    context.log.info(
        f"{len(entries)} buffered entries: {len(tick.new_partitions)} new games, "
        f"{len(tick.batches)} runs, {tick.duplicates} duplicates, {len(tick.rejected)} refused"
        f"{held}; {slots.in_flight}/{slots.limit} batch runs in flight, {slots.others} slots "
        f"held by other runs, {view.keys_read} partition keys read"
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
    max_live_partitions: int,
    run_slots_fallback: int = 2,
) -> dg.SensorDefinition:
    """The sensor, on by default; knobs come from Settings when the code location loads."""

    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Drains the listener's Redis buffer: adds one `games` partition per captured game and "
            f"requests runs of up to {max_games_per_run} games each, no more than the run queue "
            "has free slots for (the buffer grows meanwhile, so the next run is larger), and "
            f"no more partitions than keep the live set under {max_live_partitions}."
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
            max_live_partitions=max_live_partitions,
            run_slots_fallback=run_slots_fallback,
        )

    return completed_games_sensor
