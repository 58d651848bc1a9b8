"""The buffer-draining sensor, driven through build_sensor_context with a real instance and Redis."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import redis

from superhero_dagster.assembly import build_definitions
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.resources import RedisResource
from superhero_dagster.sensors.completed_games import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    SENSOR_NAME,
)
from superhero_dagster.settings import Settings

KEYS = ProjectKeys()


def tokens(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def sensor_for(settings: Settings) -> dg.SensorDefinition:
    (sensor,) = [s for s in build_definitions(settings).sensors if s.name == SENSOR_NAME]
    return sensor


def tick(settings: Settings, instance, cursor: str | None) -> dg.SensorResult:
    """One evaluation, then apply what the daemon would: add the requested partitions."""
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"redis": RedisResource(url=settings.redis_url)},
    ) as ctx:
        result = sensor_for(settings)(ctx)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, list(request.partition_keys))
    return result


def requested_games(result: dg.SensorResult, instance) -> list[str]:
    """Every game a tick's run requests cover, resolved through the real partition store."""
    keys = instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)
    out: list[str] = []
    for req in result.run_requests or []:
        if req.partition_key:
            out.append(req.partition_key)
        else:
            start, end = req.tags[RANGE_START_TAG], req.tags[RANGE_END_TAG]
            out.extend(keys[keys.index(start) : keys.index(end) + 1])
    return out


def push(r: redis.Redis, items: list[str]) -> None:
    r.rpush(KEYS.buffer, *items)


def test_new_games_become_partitions_and_batched_runs(settings, r, instance):
    games = tokens(25)
    push(r, games)
    result = tick(settings.with_(max_games_per_run=10), instance, None)
    assert instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME) == games
    sizes = [
        len(requested_games(dg.SensorResult(run_requests=[rr]), instance))
        for rr in result.run_requests
    ]
    assert sizes == [10, 10, 5]
    assert requested_games(result, instance) == games
    assert len({rr.run_key for rr in result.run_requests}) == 3
    # Nothing leaves the buffer until a later tick sees the committed cursor.
    assert r.llen(KEYS.buffer) == 25


def test_second_tick_acknowledges_and_requests_nothing_new(settings, r, instance):
    games = tokens(7)
    push(r, games)
    first = tick(settings, instance, None)
    second = tick(settings, instance, first.cursor)
    assert second.run_requests == [] or second.run_requests is None
    assert r.llen(KEYS.buffer) == 0
    more = tokens(3)
    push(r, more)
    third = tick(settings, instance, second.cursor)
    assert requested_games(third, instance) == more


def test_tick_lost_before_commit_loses_nothing_and_replays_same_runs(settings, r, instance):
    games = tokens(12)
    push(r, games)
    first = tick(settings.with_(max_games_per_run=5), instance, None)
    # The daemon died: first.cursor was never committed, so the next tick gets the old cursor.
    late = tokens(2)
    push(r, late)
    replay = tick(settings.with_(max_games_per_run=5), instance, None)
    assert requested_games(replay, instance)[:12] == games
    assert [rr.run_key for rr in replay.run_requests][:2] == [
        rr.run_key for rr in first.run_requests
    ][:2]
    assert requested_games(replay, instance)[12:] == late
    # Acknowledging the same cursor twice never removes games it did not request.
    after = tick(settings, instance, replay.cursor)
    tick(settings, instance, replay.cursor)
    assert r.llen(KEYS.buffer) == 0
    assert after.run_requests in ([], None)


def test_work_per_tick_is_bounded(settings, r, instance):
    games = tokens(2500)
    push(r, games)
    s = settings.with_(max_games_per_tick=1000, max_games_per_run=300)
    cursor = None
    seen: list[str] = []
    for _ in range(3):
        result = tick(s, instance, cursor)
        got = requested_games(result, instance)
        assert len(got) <= 1000
        assert all(int(rr.tags["superhero/games"]) <= 300 for rr in result.run_requests)
        seen.extend(got)
        cursor = result.cursor
    assert seen == games
    assert len(set(seen)) == len(seen)


def test_duplicates_in_a_tick_are_requested_once_and_junk_is_dead_lettered(settings, r, instance):
    games = tokens(3)
    push(r, [games[0], games[1], games[0], "../../etc/passwd", games[2]])
    result = tick(settings, instance, None)
    assert requested_games(result, instance) == games
    letters = [json.loads(x) for x in r.lrange(KEYS.deadletter, 0, -1)]
    assert len(letters) == 1
    assert "../../etc/passwd" in letters[0]["raw"]
    assert "refused" in letters[0]["reason"]


def test_rebuffered_old_game_gets_its_own_run(settings, r, instance):
    old = tokens(3)
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, old)
    fresh = tokens(2)
    push(r, [fresh[0], old[1], fresh[1]])
    result = tick(settings, instance, None)
    assert requested_games(result, instance) == [fresh[0], old[1], fresh[1]]
    # A range must never sweep in partitions that are not part of the batch.
    assert old[0] not in requested_games(result, instance)
    assert old[2] not in requested_games(result, instance)


def test_empty_buffer_skips(settings, r, instance):
    result = tick(settings, instance, None)
    assert not result.run_requests
    assert result.skip_reason is not None
