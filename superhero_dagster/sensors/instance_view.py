"""What the sensor reads from the Dagster instance each tick, bounded by the tick's own size.

Two questions, each answered with bounded queries whatever the number of ``games`` partitions:

- How many game-batch runs are queued or running, against how many slots? (one COUNT query)
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

from superhero_dagster.instance_config import GAMES_BATCH, RUN_KIND_TAG
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
    in_flight: int
    limit: int

    @property
    def free(self) -> int:
        return max(0, self.limit - self.in_flight)


def run_slots(instance: dg.DagsterInstance, fallback_limit: int) -> RunSlots:
    """Game-batch runs in flight, and the limit the run queue applies to them.

    The limit is read from the instance's QueuedRunCoordinator (its tag limit for game batches,
    else its max_concurrent_runs), so an edited dagster.yaml is honoured; ``fallback_limit`` (the
    settings' SUPERHERO_MAX_CONCURRENT_RUNS) applies when the instance has no such queue.
    """
    in_flight = instance.get_runs_count(
        dg.RunsFilter(statuses=IN_FLIGHT, tags={RUN_KIND_TAG: GAMES_BATCH})
    )
    return RunSlots(in_flight=in_flight, limit=_queue_limit(instance) or fallback_limit)


def _queue_limit(instance: dg.DagsterInstance) -> int | None:
    get_config = getattr(instance.run_coordinator, "get_run_queue_config", None)
    if get_config is None:
        return None
    config = get_config()
    limits = [
        int(entry["limit"])
        for entry in config.tag_concurrency_limits or []
        if entry.get("key") == RUN_KIND_TAG and entry.get("value") in (GAMES_BATCH, None)
    ]
    overall = config.max_concurrent_runs
    if overall is not None and overall >= 0:
        limits.append(overall)
    return min(limits) if limits else None


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
