"""Simulator throughput: 4-player games/s, concurrency 64, no rate cap, no expiry, no delay.

The games are the simulator's defaults, i.e. the original's: its clean-up worker (the log deleted
on the host's Cleaning, index entries removed), dead heroes attacking, late entries after the
Cleaning, 1 % of games without Cleaning.

Every variant writes the *same* commands (the simulator's own plans and batches, seed fixed) to a
throwaway redis-server this script starts on a free port (never 6379), so the ratios compare only
how the commands travel:

- ``naive``: one round trip per command (what a straightforward port of the original would do);
- ``pipeline (raw)``: redis-py pipelines, one per game, no planning cost (the baseline);
- ``simulator (pipeline)`` / ``simulator (script)``: ``run_simulation`` end to end, planning and
  publishing included, with the redis-py pipeline executor and with the default one-EVALSHA-per-
  batch executor;
- ``simulator (script, earlier model)``: the same seed with expiry only and no dead heroes nor
  missing Cleaning (fewer commands per game), for what the original's quirks cost.

    .venv/bin/python -m benchmarks.bench_simulator [--games 5000] [--naive-games 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import redis

from superhero_dagster.redis_server import RedisServer
from superhero_dagster.simulator.run import SimConfig, Simulation, run_simulation
from superhero_dagster.simulator.writes import Command

BASE = {
    "players": (4, 4),
    "concurrency": 64,
    "expire_after": 0.0,
    "cleaning_delay": 0.0,
    "seed": 1,
    "cleanup": "original",
}
#: The simulator before it modelled the original's quirks (expiry only, clean games), for the cost
#: of the original mode; its commands differ, so its ratio compares games/s only.
OLD_MODEL = {"cleanup": "expire", "dead_turn_rate": 0.0, "no_cleaning_rate": 0.0}


def planned(games: int) -> tuple[list[list[Command]], float]:
    """The commands of ``games`` games, and the seconds it took to plan them (pure Python)."""
    sim = Simulation(SimConfig(games=games, **BASE))  # type: ignore[arg-type]
    started = time.perf_counter()
    out = [[c for b in sim.next_game(i)[1] for c in b.commands] for i in range(games)]
    return out, time.perf_counter() - started


def write_naive(client: redis.Redis, games: list[list[Command]]) -> None:
    for commands in games:
        for cmd in commands:
            client.execute_command(*cmd)


def write_pipelined(client: redis.Redis, games: list[list[Command]]) -> None:
    for commands in games:
        pipe = client.pipeline(transaction=False)
        for cmd in commands:
            pipe.execute_command(*cmd)
        pipe.execute()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=5000)
    parser.add_argument("--naive-games", type=int, default=300)
    args = parser.parse_args(argv)

    rows: list[tuple[str, int, int, float]] = []  # name, games, commands, seconds
    games, plan_seconds = planned(args.games)
    n_commands = sum(len(g) for g in games)
    rows.append(("planning only (pure Python)", args.games, n_commands, plan_seconds))
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        assert server.port != 6379
        client = redis.Redis.from_url(server.url)
        subset = games[: args.naive_games]
        for name, writer, batch in (
            ("naive (1 round trip/command)", write_naive, subset),
            ("pipeline (raw redis-py, baseline)", write_pipelined, games),
        ):
            client.flushall()
            started = time.perf_counter()
            writer(client, batch)
            rows.append(
                (name, len(batch), sum(len(g) for g in batch), time.perf_counter() - started)
            )
        for name, extra in (
            ("simulator (pipeline)", {"executor": "pipeline"}),
            ("simulator (script, earlier model)", OLD_MODEL),
            ("simulator (script)", {}),
        ):
            client.flushall()
            config = SimConfig(games=args.games, **{**BASE, **extra})  # type: ignore[arg-type]
            summary = run_simulation(server.url, config)
            rows.append((name, summary.games, summary.commands, summary.elapsed))
        client.close()

    baseline = next(r for r in rows if "baseline" in r[0])
    base_rate = baseline[1] / baseline[3]
    print(f"{'variant':<36} {'games':>6} {'commands':>9} {'s':>7} {'games/s':>9} "
          f"{'cmd/s':>9} {'x baseline':>10}")  # fmt: skip
    for name, n, cmds, seconds in rows:
        rate = n / seconds
        print(f"{name:<36} {n:>6} {cmds:>9} {seconds:>7.2f} {rate:>9.0f} {cmds / seconds:>9.0f} "
              f"{rate / base_rate:>10.2f}")  # fmt: skip
    sim_rate = rows[-1][1] / rows[-1][3]
    print(f"\nsimulator: {sim_rate:.0f} games/s (4 players, concurrency 64) = "
          f"{sim_rate / base_rate:.2f}x the raw pipelined write of the same commands; "
          f"target >= 1000 games/s: {'met' if sim_rate >= 1000 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
