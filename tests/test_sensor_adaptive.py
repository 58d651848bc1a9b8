"""Adaptive batching and bounded ticks: the sensor waits while the run queue is full, and reads
only the tick's own partition keys however many partitions exist (real instance, real Redis)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy

from superhero_dagster.instance_config import (
    ANALYTICS,
    GAMES_BATCH,
    RUN_KIND_TAG,
    write_instance_yaml,
)
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.sensors.instance_view import partition_view, run_slots
from tests.test_sensor import KEYS, push, requested_games, tick


def tokens(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


@pytest.fixture
def plain_instance(dagster_home) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


@pytest.fixture
def queued_instance(dagster_home) -> Iterator[dg.DagsterInstance]:
    """init-instance's config: a run queue with 2 slots for game batches."""
    write_instance_yaml(dagster_home, max_concurrent_runs=2)
    with dg.DagsterInstance.get() as instance:
        yield instance


def batch_run(target: dg.DagsterInstance, kind: str | None = GAMES_BATCH) -> dg.DagsterRun:
    """A run holding a queue slot (stored as running; no process behind it): a game batch, an
    analytics run (``kind=ANALYTICS``) or an untagged one (``kind=None``)."""
    return target.add_run(
        dg.DagsterRun(
            job_name="ingest_games" if kind == GAMES_BATCH else "other_job",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={RUN_KIND_TAG: kind} if kind else {},
        )
    )


def test_full_queue_requests_nothing_then_one_larger_run(settings, r, queued_instance):
    s = settings.with_(max_games_per_run=500)
    first, later = tokens(5), tokens(10)
    runs = [batch_run(queued_instance), batch_run(queued_instance)]
    push(r, first)
    result = tick(s, queued_instance, None)
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert result.skip_reason and "2 game-batch runs" in result.skip_reason.skip_message
    push(r, later)
    result = tick(s, queued_instance, result.cursor)
    assert not result.run_requests
    assert r.llen(KEYS.buffer) == 15  # nothing acknowledged, nothing lost
    queued_instance.report_run_canceled(runs[0])  # one slot frees up
    result = tick(s, queued_instance, result.cursor)
    assert len(result.run_requests) == 1  # one run for the free slot, not one per tick's worth
    assert requested_games(result, queued_instance) == first + later
    result = tick(s, queued_instance, result.cursor)
    assert r.llen(KEYS.buffer) == 0


def test_no_more_runs_than_free_slots_per_tick(settings, r, queued_instance):
    s = settings.with_(max_games_per_run=10, max_games_per_tick=1000)
    games = tokens(45)
    push(r, games)
    batch_run(queued_instance)  # 1 of 2 slots taken
    result = tick(s, queued_instance, None)
    assert len(result.run_requests) == 1
    assert requested_games(result, queued_instance) == games[:10]
    assert run_slots(queued_instance, 99).limit == 2  # read from the instance's queue config


def test_slots_held_by_analytics_and_untagged_runs_count_as_taken(settings, r, queued_instance):
    """2 slots, game batches up to 2, analytics up to 1: while an analytics run holds a slot and
    a batch the other, a second batch would only wait in the queue, so the tick requests none."""
    s = settings.with_(max_games_per_run=500)
    push(r, tokens(5))
    analytics = batch_run(queued_instance, ANALYTICS)
    batch_run(queued_instance)
    result = tick(s, queued_instance, None)
    assert not result.run_requests
    assert "1 queue slots held by other runs" in result.skip_reason.skip_message
    queued_instance.report_run_canceled(analytics)
    untagged = batch_run(queued_instance, None)  # an ad-hoc UI run takes a slot as well
    result = tick(s, queued_instance, result.cursor)
    assert not result.run_requests
    queued_instance.report_run_canceled(untagged)
    result = tick(s, queued_instance, result.cursor)
    assert len(result.run_requests) == 1


def test_analytics_runs_waiting_past_their_limit_do_not_starve_game_batches(
    settings, r, queued_instance
):
    """Analytics runs beyond their tag limit wait in the queue without a slot; the slot kept for
    game batches stays usable."""
    for _ in range(3):
        batch_run(queued_instance, ANALYTICS)
    slots = run_slots(queued_instance, 99)
    assert (slots.in_flight, slots.others, slots.overall, slots.free) == (0, 1, 2, 1)
    push(r, tokens(5))
    result = tick(settings.with_(max_games_per_run=500), queued_instance, None)
    assert len(result.run_requests) == 1


@contextlib.contextmanager
def partition_queries() -> Iterator[list[str]]:
    """Every SQL statement reading the dynamic partitions table while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if "dynamic_partitions" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(" ".join(statement.split()))

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)


def test_a_tick_over_20k_partitions_reads_only_a_bounded_number(settings, r, plain_instance):
    instance = plain_instance
    seeded = tokens(20_000)
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, seeded)
    fresh = tokens(40)
    old = seeded[7_000]  # a re-buffered old game, far outside any window
    push(r, [*fresh[:20], old, *fresh[20:]])
    s = settings.with_(max_games_per_tick=100, max_games_per_run=500)
    with partition_queries() as queries:
        result = tick(s, instance, None)
    # Every read of the partitions table in the tick is bounded by the tick's size: a key list
    # (IN) or a LIMIT, never the whole table.
    assert queries, "the tick read no partitions at all?"
    for query in queries:
        limit = re.search(r"LIMIT (\d+|\?)", query)
        assert " IN (" in query or limit, query
    # ...and the plan is still right: the old game alone, the new ones in two contiguous runs.
    assert requested_games(result, instance) == [*fresh[:20], old, *fresh[20:]]
    sizes = [int(rr.tags["superhero/games"]) for rr in result.run_requests]
    assert sizes == [20, 1, 20]
    view = partition_view(instance, [*fresh, old], window=100)
    assert view.keys_read <= 100 + 41
    assert old in view.older and len(view.newest) == 100


def test_replayed_tick_keeps_its_ranges_contiguous(settings, r, plain_instance):
    instance = plain_instance
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, tokens(500))
    games = tokens(30)
    push(r, games)
    s = settings.with_(max_games_per_tick=100, max_games_per_run=12)
    first = tick(s, instance, None)  # adds the partitions, then "dies" before committing
    again = tick(s, instance, None)  # the same tick again: games are now the newest partitions
    assert [rr.run_key for rr in again.run_requests] == [rr.run_key for rr in first.run_requests]
    assert requested_games(again, instance) == games
