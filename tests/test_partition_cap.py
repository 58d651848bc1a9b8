"""The live-set cap holds at any rate (issue 14): the games sensor adds no partition past it and
leaves those games in the buffer, in order; ``partition_cap_sensor`` asks for retention near it.
Real instance, real Redis; retention's deletes are done with the project's bulk delete."""

from __future__ import annotations

import uuid

import dagster as dg

from superhero_dagster.partitions import (
    GAMES_PARTITIONS_NAME,
    count_game_partitions,
    delete_game_partitions,
    live_game_partitions,
)
from superhero_dagster.retention import RETENTION_JOB
from superhero_dagster.sensors.partition_cap import HIGH_WATER, evaluate_cap
from superhero_dagster.sensors.planning import plan
from tests.test_sensor import KEYS, push, requested_games, tick, tokens
from tests.test_sensor_adaptive import partition_queries


def buffer(r) -> list[str]:
    return r.lrange(KEYS.buffer, 0, -1)


def test_plan_stops_before_the_first_game_past_the_room():
    old, fresh = tokens(1), tokens(6)
    entries = [fresh[0], "../../etc", fresh[1], old[0], fresh[1], fresh[2], fresh[3], old[0]]
    result = plan(entries, newest=[], max_per_run=100, older=set(old), max_new=2)
    assert result.new_partitions == fresh[:2]
    # junk, the older game and the duplicate before the stop are consumed; fresh[2] is not
    assert len(result.rejected) == 1 and result.duplicates == 1
    assert result.held == 3
    (span,) = result.spans
    assert (span.head, span.last, span.length) == (fresh[0], fresh[1], 5)
    assert [b.tokens for b in result.batches] == [(fresh[0], fresh[1]), (old[0],)]


def test_plan_with_no_room_still_takes_games_that_are_partitions_already():
    old = tokens(2)
    fresh = tokens(1)
    result = plan([old[0], old[1], *fresh], newest=old, max_per_run=10, max_new=0)
    assert result.new_partitions == [] and result.held == 1
    assert [b.tokens for b in result.batches] == [tuple(old)]
    nothing = plan(fresh, newest=[], max_per_run=10, max_new=0)
    assert (nothing.spans, nothing.batches, nothing.held) == ([], [], 1)


def test_live_count_is_exact_across_gaps_and_bounded(instance):
    assert live_game_partitions(instance, 100) == 0
    keys = tokens(1000)
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    assert live_game_partitions(instance, 5000) == 1000
    # a kept old game at the start, the 900 after it pruned: the span says 1000, there are 100
    delete_game_partitions(instance, keys[1:901])
    assert live_game_partitions(instance, 5000) == 1000  # roomy either way: the span is enough
    assert live_game_partitions(instance, 1000, adding=1) == 100  # tight: counted
    assert count_game_partitions(instance, 50) == 50
    with partition_queries() as queries:
        assert count_game_partitions(instance, 10_000) == 100
    assert queries and all(" LIMIT " in q for q in queries), queries


def test_sensor_holds_games_past_the_cap_and_takes_them_once_retention_made_room(
    settings, r, instance
):
    cap = 50
    s = settings.with_(max_game_partitions=cap, max_games_per_run=500)
    existing = tokens(cap - 3)
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, existing)
    games = tokens(10)
    push(r, games)

    first = tick(s, instance, None)
    assert requested_games(first, instance) == games[:3]
    assert count_game_partitions(instance, 10 * cap) == cap

    full = tick(s, instance, first.cursor)  # acknowledges the first tick's three
    assert not full.run_requests and not full.dynamic_partitions_requests
    assert "the cap is 50" in full.skip_reason.skip_message, full.skip_reason
    assert buffer(r) == games[3:]

    delete_game_partitions(instance, existing[:5])  # a retention pass
    later = tick(s, instance, full.cursor)
    assert requested_games(later, instance) == games[3:8]
    assert count_game_partitions(instance, 10 * cap) == cap
    tick(s, instance, later.cursor)
    assert buffer(r) == games[8:]


def test_a_kept_old_game_does_not_stall_the_sensor(settings, r, instance):
    """Retention keeps an unverified old game and prunes the rest: the id span is far over the
    cap, the live set is not."""
    s = settings.with_(max_game_partitions=100)
    keys = tokens(300)
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    delete_game_partitions(instance, keys[1:290])  # 11 left, span 300
    games = tokens(20)
    push(r, games)
    result = tick(s, instance, None)
    assert requested_games(result, instance) == games


def test_cap_sensor_requests_retention_at_the_mark_once_in_flight(instance):
    cap = 100
    mark = int(cap * HIGH_WATER)
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, tokens(mark - 1))
    below = evaluate_cap(instance, cap)
    assert not below.run_requests and f"below {mark}" in below.skip_reason.skip_message

    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, tokens(1))
    (request,) = evaluate_cap(instance, cap).run_requests
    assert request.tags["superhero/live_partitions"] == str(mark)

    instance.add_run(
        dg.DagsterRun(
            job_name=RETENTION_JOB, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
        )
    )
    busy = evaluate_cap(instance, cap)
    assert not busy.run_requests and "in flight" in busy.skip_reason.skip_message


def test_cap_sensor_is_in_the_definitions_and_targets_retention(settings):
    from superhero_dagster.assembly import build_definitions

    defs = build_definitions(settings.with_(max_game_partitions=1234))
    sensor = defs.get_sensor_def("partition_cap_sensor")
    assert sensor.job_name == RETENTION_JOB
    assert "1234" in (sensor.description or "")
    off = build_definitions(settings.with_(retention_cron="off"))
    assert off.get_sensor_def("partition_cap_sensor").default_status == (
        dg.DefaultSensorStatus.STOPPED
    )


def test_end_ids_match_dagsters_pages_and_walk_the_row_ids(instance):
    import sqlalchemy
    from dagster._core.types.pagination import StorageIdCursor

    from superhero_dagster.partitions import end_partition_id

    def dagsters(newest: bool) -> int | None:
        page = instance.get_paginated_dynamic_partitions(GAMES_PARTITIONS_NAME, 1, not newest)
        return StorageIdCursor.from_cursor(page.cursor).storage_id if page.results else None

    assert end_partition_id(instance, newest=True) is None
    instance.add_dynamic_partitions("other", tokens(5))
    keys = tokens(50)
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    instance.add_dynamic_partitions("other", tokens(5))
    for step in (None, keys[:3] + keys[-2:], keys[3:-2]):
        if step:
            delete_game_partitions(instance, step)
        for newest in (True, False):
            assert end_partition_id(instance, newest=newest) == dagsters(newest), (step, newest)
    assert end_partition_id(instance, newest=False) is None  # every games partition deleted

    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, tokens(3))
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if "dynamic_partitions" in statement and "coalesce" in statement:
            seen.append((statement, parameters))

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    try:
        end_partition_id(instance, newest=True)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    ((statement, parameters),) = seen
    with instance.event_log_storage.index_connection() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    # The row ids from one end, not the (name, key) index with a sort of every key.
    assert "idx_dynamic_partitions" not in details and "TEMP B-TREE" not in details, details


def test_end_ids_and_count_on_postgres(tmp_path, monkeypatch, postgres_db):
    """The same answers from the project's Postgres event log (local server, throwaway DB)."""
    from superhero_dagster.instance_config import write_instance_yaml
    from superhero_dagster.partitions import end_partition_id

    write_instance_yaml(tmp_path / "home", storage="postgres", postgres_url=postgres_db)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with dg.DagsterInstance.get() as instance:
        assert end_partition_id(instance, newest=True) is None
        instance.add_dynamic_partitions("other", tokens(3))
        keys = tokens(40)
        instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
        first = end_partition_id(instance, newest=False)
        last = end_partition_id(instance, newest=True)
        assert first is not None and last == first + 39
        delete_game_partitions(instance, keys[:5] + keys[10:30])
        assert end_partition_id(instance, newest=False) == first + 5
        assert live_game_partitions(instance, 100) == 35  # the span fits
        assert live_game_partitions(instance, 35, adding=1) == 15  # tight: counted
