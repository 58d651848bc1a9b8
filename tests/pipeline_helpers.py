"""Helpers for the end-to-end tests: polling, background listeners, draining the sensor by hand."""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from superhero_dagster.assembly import build_definitions
from superhero_dagster.assets.games import game_assets
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.service import run_listener
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.resources import RedisResource, SinkResource
from superhero_dagster.sensors.completed_games import RANGE_END_TAG, RANGE_START_TAG, SENSOR_NAME
from superhero_dagster.sensors.instance_view import IN_FLIGHT
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from superhero_dagster.stack import Stack
from tests.listener_helpers import poll_until

T = TypeVar("T")


def poll(
    fn: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.05, what: str = ""
) -> T:
    """``poll_until`` with a longer default timeout and a description for the failure."""
    try:
        return poll_until(fn, timeout=timeout, interval=interval)
    except AssertionError as exc:
        raise AssertionError(f"{what or fn}: {exc}") from None


@contextmanager
def listeners(settings: Settings, count: int) -> Iterator[list[threading.Thread]]:
    """``count`` listeners in threads, stopped (and joined) when the block ends."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=run_listener, args=(settings, stop, f"test-{i}"), daemon=True)
        for i in range(count)
    ]
    for t in threads:
        t.start()
    try:
        yield threads
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


def sensor_tick(settings: Settings, instance: dg.DagsterInstance, cursor: str | None):
    """Evaluate the sensor once and apply its partition requests, as the daemon would."""
    (sensor,) = [s for s in build_definitions(settings).sensors if s.name == SENSOR_NAME]
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"redis": RedisResource(url=settings.redis_url)}
    ) as ctx:
        result = sensor(ctx)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, list(request.partition_keys))
    return result


def execute(settings: Settings, instance: dg.DagsterInstance, request: dg.RunRequest):
    """Run one of the sensor's run requests in-process against the real instance."""
    return dg.materialize(
        [game_assets],
        instance=instance,
        partition_key=request.partition_key,
        tags=dict(request.tags),
        resources={
            "redis": RedisResource(url=settings.redis_url),
            "sink": SinkResource(
                root=str(settings.data_dir), compaction_period=settings.compaction_period
            ),
        },
    )


def store(r, docs: list[str]) -> list[str]:
    """Put snapshots where the listener would and return their tokens, in order."""
    tokens = [json.loads(d)["game_token"] for d in docs]
    for t, d in zip(tokens, docs, strict=True):
        r.set(ProjectKeys().snapshot(t), d)
    return tokens


def run_batch(instance, settings, tokens: list[str], **redis_kw) -> dg.ExecuteInProcessResult:
    """Materialize ``tokens`` as one batch run, as the sensor would request it (in-process)."""
    known = set(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME))
    instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, [t for t in tokens if t not in known])
    tags = {RANGE_START_TAG: tokens[0], RANGE_END_TAG: tokens[-1]} if len(tokens) > 1 else {}
    return dg.materialize(
        [game_assets],
        instance=instance,
        partition_key=tokens[0] if len(tokens) == 1 else None,
        tags=tags,
        resources={
            "redis": RedisResource(url=settings.redis_url, **redis_kw),
            "sink": SinkResource(
                root=str(settings.data_dir), compaction_period=settings.compaction_period
            ),
        },
        raise_on_error=False,
    )


@contextmanager
def daemon_stack(settings: Settings, r, log_dir: Path, listener_count: int) -> Iterator[Stack]:
    """``listener_count`` real listeners and a real ``dagster-daemon``, listeners alive on exit."""
    with Stack(settings, log_dir) as stack:
        for i in range(listener_count):
            stack.start_listener(i)
        stack.start_daemon()
        poll(
            lambda: r.hlen(ProjectKeys(settings.namespace).listeners) >= listener_count,
            timeout=60,
            what=f"{listener_count} listener heartbeat(s)",
        )
        yield stack


def wait_landed(stack: Stack, settings: Settings, tokens: list[str], timeout: float) -> None:
    """Until every game is in both sinks and no run is left in flight (a batch's materializations
    are recorded after its files are written); fails at once (with its log) if the daemon died."""
    sink = SinkRoot(settings.data_dir)

    def landed() -> bool:
        assert stack.alive("daemon"), stack.log_tail("daemon")
        return all(set(tokens) <= set(sink.tokens(a)) for a in (GAME_METADATA, GAME_PODIUM))

    poll(landed, timeout=timeout, interval=0.5, what="all games in both sinks")
    home = InstanceRef.from_dir(str(settings.resolved_dagster_home))
    with dg.DagsterInstance.from_ref(home) as instance:
        in_flight = dg.RunsFilter(statuses=IN_FLIGHT)
        poll(
            lambda: instance.get_runs_count(in_flight) == 0,
            timeout=timeout,
            interval=0.5,
            what="no run queued or running",
        )


def materialization_counts(
    instance: dg.DagsterInstance, assets: tuple[str, ...]
) -> collections.Counter[tuple[str, str]]:
    """(asset, game) -> materialization events, read page by page (Dagster caps a page at 10k)."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for asset in assets:
        cursor = None
        while True:
            page = instance.fetch_materializations(dg.AssetKey(asset), limit=5000, cursor=cursor)
            for rec in page.records:
                counts[(asset, rec.partition_key or "")] += 1
            if not page.has_more:
                break
            cursor = page.cursor
    return counts
