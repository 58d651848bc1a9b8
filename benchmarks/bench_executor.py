"""Executor choice for the batch runs: in-process vs Dagster's default multiprocess executor.

The same batch job (``game_assets`` over a range of game partitions) is executed with
``dg.execute_job`` (a reconstructable job, as the run worker does) under each executor, on the same
instance and Redis. The multiprocess executor starts a fresh Python process per step (and imports
Dagster and the code location again); the batch job has one step, so that is pure overhead.

    .venv/bin/python -m benchmarks.bench_executor [--runs 4] [--games 50]
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
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.resources import RedisResource, SinkResource
from superhero_dagster.sensors.completed_games import RANGE_END_TAG, RANGE_START_TAG
from tests.snapshot_factory import random_game


def _job(executor: dg.ExecutorDefinition) -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[game_assets],
        jobs=[dg.define_asset_job("ingest", selection=[game_assets], executor_def=executor)],
        resources={"redis": RedisResource(), "sink": SinkResource()},
    )
    return defs.resolve_job_def("ingest")


def in_process_job() -> dg.JobDefinition:
    return _job(dg.in_process_executor)


def multiprocess_job() -> dg.JobDefinition:
    return _job(dg.multiprocess_executor)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--games", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        os.environ["REDIS_URL"] = server.url  # read by the resources in the step process
        os.environ["SUPERHERO_DATA_DIR"] = str(Path(tmp) / "data")
        client = redis.Redis.from_url(server.url)
        rng = random.Random(5)
        (Path(tmp) / "home").mkdir()
        results = {}
        with dg.instance_for_test(temp_dir=str(Path(tmp) / "home")) as instance:
            for label, fn in (("in-process", in_process_job), ("multiprocess", multiprocess_job)):
                times = []
                for _ in range(args.runs):
                    docs = [random_game(rng) for _ in range(args.games)]
                    tokens = [json.loads(d)["game_token"] for d in docs]
                    for token, doc in zip(tokens, docs, strict=True):
                        client.set(ProjectKeys().snapshot(token), doc)
                    instance.add_dynamic_partitions("games", tokens)
                    started = time.perf_counter()
                    with dg.execute_job(
                        dg.reconstructable(fn),
                        instance,
                        tags={RANGE_START_TAG: tokens[0], RANGE_END_TAG: tokens[-1]},
                    ) as result:
                        assert result.success
                    times.append(time.perf_counter() - started)
                results[label] = sorted(times)[len(times) // 2]
    base = results["in-process"]
    print(f"| executor ({args.games}-game batch run) | median s per run | ratio to in-process |")
    print("|---|---:|---:|")
    for label, seconds in results.items():
        print(f"| {label} | {seconds:.2f} | {seconds / base:.2f}x |")


if __name__ == "__main__":
    main()
