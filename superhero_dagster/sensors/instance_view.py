"""What the sensor reads from the Dagster instance each tick, bounded by the tick's own size.

Two questions, each answered with bounded queries whatever the number of ``games`` partitions:

- How many game-batch runs are queued or running, against how many slots, and how many slots
  other runs hold? (up to three COUNT queries)
- Where do the tick's games sit in the partitions' insertion order, if they are partitions at all?
  A partition-key range must cover exactly its batch, so the planner needs the order of any game
  that is already a partition. Only the tick's own keys are checked for existence (one ``IN``
  query per 1,000 keys); the insertion order is read only for the newest partitions (the place
  where a replayed tick left its games), and only when one of the tick's games exists already.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from superhero_dagster.instance_config import ANALYTICS, GAMES_BATCH, RUN_KIND_TAG
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME

#: A run holds a queue slot in these states.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class RunSlots:
    """Game-batch runs in flight against their limit, and the queue slots other runs hold.

    ``others`` counts only the slots other runs can take: analytics runs up to their own tag
    limit (more of them wait in the queue without holding a slot), every untagged run.
    """

    in_flight: int
    limit: int
    others: int = 0
    overall: int | None = None

    @property
    def free(self) -> int:
        free = self.limit - self.in_flight
        if self.overall is not None:
            free = min(free, self.overall - self.in_flight - self.others)
        return max(0, free)


def run_slots(instance: dg.DagsterInstance, fallback_limit: int) -> RunSlots:
    """Game-batch runs in flight, the limit the run queue applies to them, and the slots other
    runs hold.

    The limits are read from the instance's QueuedRunCoordinator (its tag limits for game
    batches and analytics runs, its max_concurrent_runs), so an edited dagster.yaml is honoured;
    ``fallback_limit`` (the settings' SUPERHERO_MAX_CONCURRENT_RUNS) applies when the instance
    has no such queue.

    Why count the other runs: the game-batch tag limit equals the whole queue, so while an
    analytics run held one of the two slots the sensor still launched a second batch, which
    waited in the queue (p50 11 s in a 50 games/s ``bench_steady`` run) instead of its games
    joining the next, larger run.
    """

    def count(tags: dict[str, str] | None = None) -> int:
        return instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT, tags=tags or {}))

    games = count({RUN_KIND_TAG: GAMES_BATCH})
    queue = _queue_limits(instance)
    if queue is None:
        return RunSlots(in_flight=games, limit=fallback_limit)
    limit, analytics_limit, overall = queue
    if overall is None:
        return RunSlots(in_flight=games, limit=limit or fallback_limit)
    others = count() - games
    if analytics_limit is not None:  # analytics runs past their limit wait without a slot
        others -= max(0, count({RUN_KIND_TAG: ANALYTICS}) - analytics_limit)
    return RunSlots(in_flight=games, limit=limit, others=others, overall=overall)


def _queue_limits(instance: dg.DagsterInstance) -> tuple[int | None, int | None, int | None] | None:
    """(game-batch limit, analytics limit, max_concurrent_runs) of the instance's run queue;
    None without a run queue. The game-batch limit is at most max_concurrent_runs, so it is set
    whenever max_concurrent_runs is."""
    get_config = getattr(instance.run_coordinator, "get_run_queue_config", None)
    if get_config is None:
        return None
    config = get_config()

    def tag_limit(value: str) -> int | None:
        limits = [
            int(entry["limit"])
            for entry in config.tag_concurrency_limits or []
            if entry.get("key") == RUN_KIND_TAG and entry.get("value") in (value, None)
        ]
        return min(limits) if limits else None

    overall = config.max_concurrent_runs
    overall = overall if overall is not None and overall >= 0 else None
    games = tag_limit(GAMES_BATCH)
    if overall is not None:
        games = min(games, overall) if games is not None else overall
    return games, tag_limit(ANALYTICS), overall


@dataclass
class PartitionView:
    """The tick's games as the planner needs them: the newest partitions in order, and which of
    the tick's games are older partitions than that."""

    newest: list[str]
    older: set[str]
    keys_read: int


def partition_view(
    instance: dg.DagsterInstance, candidates: Sequence[str], window: int
) -> PartitionView:
    """``newest``: up to ``window`` most recently added partitions, oldest first, read only if
    some candidate exists; ``older``: existing candidates outside that window."""
    existing = instance.get_existing_dynamic_partitions(GAMES_PARTITIONS_NAME, list(candidates))
    if not existing:
        return PartitionView(newest=[], older=set(), keys_read=0)
    page = instance.get_paginated_dynamic_partitions(
        GAMES_PARTITIONS_NAME, limit=window, ascending=False
    )
    newest = list(reversed(page.results))
    return PartitionView(
        newest=newest, older=set(existing) - set(newest), keys_read=len(existing) + len(newest)
    )
