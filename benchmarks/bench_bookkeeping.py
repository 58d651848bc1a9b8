"""Dagster's own time per game in a batch run: per-game events vs batched writes, both storages.

The real multi-asset runs in this process over N game partitions against a fresh instance per
variant (init-instance's dagster.yaml, planned events collapsed as the daemon does). Every variant
does the same asset work on the same snapshots; only how the step reports its games and how the
storage writes them differ:

- before: one ``AssetMaterialization`` per game and asset (``per_game_events``), stored one by one
  (stock ``SqliteEventLogStorage`` / ``PostgresEventLogStorage``, no DAGSTER_EVENT_BATCH_SIZE);
- after: one ``MaterializeResult`` per asset over the range with per-game metadata, and
  DAGSTER_EVENT_BATCH_SIZE set; SQLite through the project's ``BatchingSqliteEventLogStorage``.

"Dagster ms/game" is the marginal cost: (time of an N-game run - time of an n-game run) / (N - n),
which leaves out the fixed cost of a run, minus the asset's own work per game (the same pure
functions and sink writes timed outside Dagster). Each run's materializations are checked (one per
game and asset, each with its own row count), so a fast variant cannot be a wrong one.

    .venv/bin/python -m benchmarks.bench_bookkeeping [--games 300] [--small 50] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import redis

from superhero_dagster import games
from superhero_dagster.assets.games import GAME_SNAPSHOT, game_assets
from superhero_dagster.instance_config import (
    EVENT_STORAGE_CLASS,
    EVENT_STORAGE_MODULE,
    write_instance_yaml,
)
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.resources import RedisResource, SinkResource
from superhero_dagster.sensors.completed_games import RANGE_END_TAG, RANGE_START_TAG
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from superhero_dagster.snapshot import parse_snapshot
from superhero_dagster.stack import DAGSTER_TUNING_ENV, EVENT_BATCH_ENV
from tests.postgres_helpers import LOCAL_SERVER, throwaway_database
from tests.snapshot_factory import random_game

VARIANTS = (  # label, storage, batched
    ("before: per-game events, stock SQLite storage", "sqlite-stock", False),
    ("after: batched, project SQLite storage", "sqlite", True),
    ("before: per-game events, Postgres", "postgres", False),
    ("after: batched, Postgres", "postgres", True),
)


@contextlib.contextmanager
def environ(extra: dict[str, str], unset: tuple[str, ...]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (*extra, *unset)}
    os.environ.update(extra)
    for k in unset:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def instance_home(home: Path, storage: str, postgres_url: str | None) -> None:
    if storage == "postgres":
        write_instance_yaml(home, storage="postgres", postgres_url=postgres_url)
        return
    path = write_instance_yaml(home)
    if storage == "sqlite-stock":  # Dagster's own class in place of the project's
        text = path.read_text().replace(EVENT_STORAGE_MODULE, "dagster._core.storage.event_log")
        text = text.replace(EVENT_STORAGE_CLASS, "SqliteEventLogStorage")
        path.write_text(text)


def row_counts(docs: list[str]) -> dict[tuple[str, str], int]:
    """(asset, game) -> the rows its materialization must report, from the snapshots alone."""
    counts = {}
    for doc in docs:
        snap = parse_snapshot(doc)
        counts[(GAME_METADATA, snap.token)] = len(games.metadata_rows(snap))
        counts[(GAME_PODIUM, snap.token)] = len(games.podium_rows(snap))
    return counts


def one_run(
    home: Path,
    url: str,
    data: Path,
    tokens: list[str],
    *,
    batched: bool,
    expected: dict[tuple[str, str], int],
) -> tuple[float, int]:
    """Seconds for one batch run over ``tokens``, and its events per game; checks the result."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("games", tokens)
        started = time.perf_counter()
        result = dg.materialize(
            [game_assets],
            instance=instance,
            tags={RANGE_START_TAG: tokens[0], RANGE_END_TAG: tokens[-1]},
            run_config={"ops": {"game_assets": {"config": {"per_game_events": not batched}}}},
            resources={
                "redis": RedisResource(url=url, snapshot_retention_seconds=3600),
                "sink": SinkResource(root=str(data)),
            },
        )
        elapsed = time.perf_counter() - started
        assert result.success
        mats = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10**6
        ).records
        seen = set()
        for record in mats:
            mat = record.asset_materialization
            assert mat is not None
            seen.add((mat.asset_key.to_user_string(), mat.partition))
            asset = mat.asset_key.to_user_string()
            if asset != GAME_SNAPSHOT:  # its own metadata (a game whose log was lost has 0)
                assert mat.metadata["dagster/row_count"].value == expected[(asset, mat.partition)]
        assert len(mats) == len(seen) == 3 * len(tokens), (len(mats), len(seen))
        events = len(instance.all_logs(result.run_id))
    return elapsed, events


def work_seconds(docs: list[str], data: Path) -> float:
    """The asset's own per-game work (parse, rows, both sinks) outside Dagster, for all games."""
    root = SinkRoot(data)
    derived = SinkRoot(data, fsync=False)
    started = time.perf_counter()
    for doc in docs:
        snap = parse_snapshot(doc)
        root.write_raw_snapshot(snap.token, doc.encode())
        meta, podium = games.metadata_rows(snap), games.podium_rows(snap)
        derived.write_rows(GAME_METADATA, snap.token, meta)
        derived.write_rows(GAME_PODIUM, snap.token, podium)
        games.podium_markdown(podium, snap)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=300)
    parser.add_argument("--small", type=int, default=50, help="the short run of the slope")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--postgres-server", default=LOCAL_SERVER)
    args = parser.parse_args(argv)
    keys = ProjectKeys()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        client = redis.Redis.from_url(server.url)
        rng = random.Random(3)
        docs = [random_game(rng) for _ in range(args.games + args.small)]
        tokens = [json.loads(d)["game_token"] for d in docs]
        expected = row_counts(docs)
        for token, doc in zip(tokens, docs, strict=True):
            client.set(keys.snapshot(token), doc)

        def work_per_game(tag: str) -> float:  # the same slope, outside Dagster
            small = work_seconds(docs[-args.small :], Path(tmp) / f"w{tag}s")
            big = work_seconds(docs[: args.games], Path(tmp) / f"w{tag}b")
            return (big - small) / (args.games - args.small)

        work_before = work_per_game("0")
        for i, (label, storage, batched) in enumerate(VARIANTS):
            if storage == "postgres" and args.skip_postgres:
                continue
            batch_env = {k: v for k, v in DAGSTER_TUNING_ENV.items() if k in EVENT_BATCH_ENV}
            env = {k: v for k, v in DAGSTER_TUNING_ENV.items() if k not in EVENT_BATCH_ENV}
            with contextlib.ExitStack() as stack:
                url = None
                if storage == "postgres":
                    url = stack.enter_context(throwaway_database(args.postgres_server))
                home = Path(tmp) / f"home{i}"
                instance_home(home, storage, url)
                if batched:
                    env |= batch_env
                stack.enter_context(environ(env, () if batched else tuple(EVENT_BATCH_ENV)))
                data = Path(tmp) / f"d{i}"
                small, _ = one_run(home, server.url, data, tokens[-args.small :],
                                   batched=batched, expected=expected)  # fmt: skip
                big, events = one_run(home, server.url, data, tokens[: args.games],
                                      batched=batched, expected=expected)  # fmt: skip
            marginal = (big - small) / (args.games - args.small)
            rows.append((label, big, marginal, events))
        work = (work_before + work_per_game("1")) / 2  # machine load drifts: before and after
    print(
        f"| variant ({args.games}-game run; slope vs {args.small}) | run s | marginal ms/game "
        f"| Dagster ms/game | events/game |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, big, marginal, events in rows:
        print(
            f"| {label} | {big:.2f} | {1000 * marginal:.1f} | {1000 * (marginal - work):.1f} "
            f"| {events / args.games:.2f} |"
        )
    print(
        f"asset work outside Dagster (same slope, mean of before/after the runs): "
        f"{1000 * work:.2f} ms/game"
    )
    by = {label.split(",")[0] + label.split(",")[-1]: m for label, _, m, _ in rows}
    for store in (" stock SQLite storage", " Postgres"):
        before = by.get("before: per-game events" + store)
        after_key = "after: batched" + (" project SQLite storage" if "SQLite" in store else store)
        after = by.get(after_key)
        if before and after:
            print(f"{store.strip()}: before/after marginal time {before / after:.1f}x")


if __name__ == "__main__":
    main()
