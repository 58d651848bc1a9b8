"""`make bench`: every benchmark, one after the other, each printing its own table."""

from __future__ import annotations

import importlib

BENCHMARKS = (
    "benchmarks.bench_simulator",
    "benchmarks.bench_listener",
    "benchmarks.bench_extract",
    "benchmarks.bench_sensor_backlog",
    "benchmarks.bench_bookkeeping",
    "benchmarks.bench_executor",
    "benchmarks.bench_latency",
    "benchmarks.bench_pipeline",
    "benchmarks.bench_scale",
    "benchmarks.bench_leaderboard",
)


def main() -> None:
    for name in BENCHMARKS:
        print(f"\n## {name}\n", flush=True)
        importlib.import_module(name).main([])


if __name__ == "__main__":
    main()
