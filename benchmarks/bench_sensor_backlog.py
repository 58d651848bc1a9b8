"""Sensor ticks over a large backlog: is each tick bounded, and does memory stay flat?

Fills the buffer with N game tokens (default 100,000), then evaluates the real sensor repeatedly
against a real SQLite instance, applying its partition requests as the daemon would, until the
buffer is empty. Runs are not executed (their cost is the throughput benchmark's subject); this
measures what the daemon's sensor tick costs as the backlog drains and the partition list grows.
Baseline for the ratio: one LRANGE of the same batch size from Redis (the floor of any tick).

    .venv/bin/python -m benchmarks.bench_sensor_backlog [--games 100000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from pathlib import Path

import dagster as dg
import redis

from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.settings import Settings
from tests.pipeline_helpers import sensor_tick


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=100_000)
    parser.add_argument("--per-tick", type=int, default=2000)
    args = parser.parse_args(argv)
    keys = ProjectKeys()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        client = redis.Redis.from_url(server.url)
        tokens = [str(uuid.uuid4()) for _ in range(args.games)]
        for i in range(0, len(tokens), 10_000):
            client.rpush(keys.buffer, *tokens[i : i + 10_000])
        t0 = time.perf_counter()
        client.lrange(keys.buffer, 0, args.per_tick - 1)
        floor = time.perf_counter() - t0
        settings = Settings(redis_url=server.url, max_games_per_tick=args.per_tick)
        (Path(tmp) / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(Path(tmp) / "home")) as instance:
            cursor, ticks, rss = None, [], []
            while True:
                started = time.perf_counter()
                result = sensor_tick(settings, instance, cursor)
                ticks.append(time.perf_counter() - started)
                rss.append(rss_mb())
                cursor = result.cursor
                if not result.run_requests:
                    break
        print(
            "| backlog | ticks | tick p50 s | tick max s | max/LRANGE floor | RSS after 1st tick MB | RSS at end MB |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        ordered = sorted(ticks)
        print(
            f"| {args.games} | {len(ticks)} | {ordered[len(ordered) // 2]:.3f} | {ordered[-1]:.3f} "
            f"| {ordered[-1] / floor:.0f}x | {rss[0]:.0f} | {rss[-1]:.0f} |"
        )


if __name__ == "__main__":
    main()
