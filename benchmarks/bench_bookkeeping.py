"""Dagster's per-game bookkeeping on SQLite: where it goes and what the instance settings save.

One batch run of N games (in-process, the real multi-asset) against a fresh SQLite instance per
variant; the asset's own work (parse, rows, files) is the same in each, so the differences are
Dagster's. Reports ms per game, events stored per game, and the ratio to the default instance.

- default: a stock instance (`dagster.yaml` absent);
- tuned instance: `init-instance`'s dagster.yaml (NoOp compute logs, queued runs, ...);
- + planned-event subset: also DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 (one planned
  event per asset instead of one per partition; read by the process that creates the run).

    .venv/bin/python -m benchmarks.bench_bookkeeping [--games 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import dagster as dg
import redis

from superhero_dagster.assets.games import game_assets
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.resources import RedisResource, SinkResource
from superhero_dagster.sensors.completed_games import RANGE_END_TAG, RANGE_START_TAG
from superhero_dagster.stack import DAGSTER_TUNING_ENV
from tests.snapshot_factory import random_game


def one_batch(home: Path, url: str, data: Path, tokens: list[str]) -> tuple[float, int]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("games", tokens)
        started = time.perf_counter()
        result = dg.materialize(
            [game_assets],
            instance=instance,
            tags={RANGE_START_TAG: tokens[0], RANGE_END_TAG: tokens[-1]},
            resources={
                "redis": RedisResource(url=url, snapshot_retention_seconds=3600),
                "sink": SinkResource(root=str(data)),
            },
        )
        elapsed = time.perf_counter() - started
        assert result.success
        events = len(instance.all_logs(result.run_id))
    return elapsed, events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=300)
    args = parser.parse_args(argv)
    keys = ProjectKeys()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        client = redis.Redis.from_url(server.url)
        rng = random.Random(3)
        docs = [random_game(rng) for _ in range(args.games)]
        tokens = [json.loads(d)["game_token"] for d in docs]
        for token, doc in zip(tokens, docs, strict=True):
            client.set(keys.snapshot(token), doc)
        for label, tuned, subset in (
            ("default instance", False, False),
            ("tuned instance (init-instance)", True, False),
            ("tuned + planned-event subset", True, True),
        ):
            home = Path(tmp) / label.replace(" ", "_")
            home.mkdir()
            if tuned:
                write_instance_yaml(home)
            saved = {k: os.environ.get(k) for k in DAGSTER_TUNING_ENV}
            if subset:
                os.environ.update(DAGSTER_TUNING_ENV)
            try:
                elapsed, events = one_batch(home, server.url, Path(tmp) / "data", tokens)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            rows.append((label, elapsed, events))
    base = rows[0][1]
    print(f"| variant ({args.games}-game batch) | ms/game | events/game | speed-up vs default |")
    print("|---|---:|---:|---:|")
    for label, elapsed, events in rows:
        print(
            f"| {label} | {1000 * elapsed / args.games:.1f} | {events / args.games:.2f} "
            f"| {base / elapsed:.2f}x |"
        )


if __name__ == "__main__":
    main()
