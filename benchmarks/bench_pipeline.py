"""End-to-end throughput: (a) plain subscriber, (b) one Dagster run per game, (c) this pipeline.

Each variant gets the same seeded simulator load (4-player games) published into a fresh
throwaway Redis, fresh sinks and, for (b)/(c), a fresh DAGSTER_HOME written by init-instance's
code; (b) and (c) run the real `superhero-dagster listen` and `dagster-daemon run` processes with
the default run launcher. Figures: games/s from the first 'Cleaning' message to the last game in
both sinks and recorded by Dagster (no run left in flight), latency per game (message -> both
sinks), CPU-seconds per game of the pipeline's
processes (simulator and Redis excluded), peak RSS per process role, lost and duplicated games.

    .venv/bin/python -m benchmarks.bench_pipeline [--games 5000] [--per-run-games 20]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import redis
from dagster._core.instance.ref import InstanceRef

from benchmarks.measure import Sampler, landed, percentiles, timings
from superhero_dagster.instance_config import GAMES_BATCH, RUN_KIND_TAG, write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.sensors.instance_view import IN_FLIGHT
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import SinkRoot
from superhero_dagster.stack import Stack, wait_until
from tests.pipeline_helpers import materialization_counts
from tests.postgres_helpers import throwaway_database


@dataclass
class Result:
    label: str
    games: int
    landed: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latency: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    duplicated: int = 0
    note: str = ""

    @property
    def games_per_second(self) -> float:
        return self.landed / self.seconds if self.seconds else 0.0

    @property
    def lost(self) -> int:
        return self.games - self.landed


def sim_args(games: int, rate: float | None) -> list[str]:
    # Every game says 'Cleaning' (--no-cleaning-rate 0): the plain subscriber has no reconcile,
    # so a game without one would never land there and the run would never end.
    args = ["--games", str(games), "--players", "4", "--concurrency", "64", "--seed", "7",
            "--expire-after", "0", "--cleaning-delay", "0", "--no-cleaning-rate", "0"]  # fmt: skip
    return args + (["--rate", str(rate)] if rate else [])


def fresh(server: RedisServer, root: Path, label: str, **kw: object) -> Settings:
    redis.Redis.from_url(server.url).flushall()
    base = root / label
    shutil.rmtree(base, ignore_errors=True)
    return Settings(
        redis_url=server.url,
        data_dir=base / "data",
        state_dir=base / "state",
        dagster_home=base / "dagster_home",
        **{"sensor_interval_seconds": 1, "expire_after_seconds": 0, **kw},  # type: ignore[arg-type]
    )


def drive(
    stack: Stack,
    settings: Settings,
    result: Result,
    rate: float | None,
    timeout: float,
    settle: Callable[[], float] | None = None,
) -> None:
    """Publish the load, wait for every game in both sinks, fill in the figures.

    ``settle`` (Dagster variants) then waits until Dagster has recorded the games too and returns
    when that happened: the figures end at the later of the last sink write and that moment.
    """
    sink = SinkRoot(settings.data_dir)
    roots = [p.pid for p in stack.processes.values()]
    sampler = Sampler(roots).start()
    stack.start_simulator(sim_args(result.games, rate))
    wait_until(lambda: len(landed(sink)) >= result.games, timeout, interval=0.5)
    recorded = settle() if settle else 0.0
    sampler.stop()
    done = sorted(landed(sink))
    result.landed = len(done)
    times = timings(sink, done)
    result.latency = percentiles([written - sent for sent, written in times])
    if times:  # first message -> last write (or Dagster's record of it), read off the games
        result.seconds = max(recorded, *(w for _, w in times)) - min(s for s, _ in times)
    result.cpu_seconds = sampler.cpu_seconds
    result.peak_rss = sampler.peak_rss


def recorded_when_idle(home: Path, settings: Settings, timeout: float) -> Callable[[], float]:
    """Waits until the buffer is empty and no game-batch run is queued or running; returns the
    end time of the last run (its materializations are recorded by then)."""
    client = redis.Redis.from_url(settings.redis_url)
    keys = ProjectKeys(settings.namespace)

    def settle() -> float:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            flight = dg.RunsFilter(statuses=IN_FLIGHT, tags={RUN_KIND_TAG: GAMES_BATCH})
            wait_until(
                lambda: client.llen(keys.buffer) == 0 and instance.get_runs_count(flight) == 0,
                timeout,
                interval=1.0,
            )
            ends = [r.end_time or 0.0 for r in instance.get_run_records()]
        return max(ends, default=0.0)

    return settle


def count_recorded(home: Path, result: Result) -> None:
    """Duplicated: a game with more than one materialization; lost also counts games that reached
    the sinks but not Dagster's record."""
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assets = ("game_snapshot", "game_metadata", "game_podium")
        counts = materialization_counts(instance, assets)
    result.duplicated = sum(n - 1 for n in counts.values() if n > 1)
    games = {game for _, game in counts}
    recorded = sum(1 for g in games if all((a, g) in counts for a in assets))
    result.landed = min(result.landed, recorded)


def run_plain(server: RedisServer, root: Path, games: int, rate: float | None) -> Result:
    settings = fresh(server, root, "a")
    result = Result("(a) plain subscriber", games)
    with Stack(settings, root / "a" / "logs") as stack:
        stack.start("subscriber", [sys.executable, "-m", "benchmarks.plain_subscriber"])
        wait_until(lambda: "subscribed" in stack.log_tail("subscriber"), 60)
        drive(stack, settings, result, rate, timeout=600)
    return result


def run_dagster(
    server: RedisServer,
    root: Path,
    label: str,
    games: int,
    per_run: int,
    rate: float | None,
    timeout: float,
    postgres_url: str | None = None,
) -> Result:
    settings = fresh(server, root, label[1], max_games_per_run=per_run, max_games_per_tick=2000)
    storage = {"storage": "postgres", "postgres_url": postgres_url} if postgres_url else {}
    write_instance_yaml(settings.resolved_dagster_home, max_concurrent_runs=2, **storage)
    result = Result(label, games)
    with Stack(settings, root / label[1] / "logs") as stack:
        stack.start_listener(0)
        stack.start_daemon()
        keys = ProjectKeys(settings.namespace)
        client = redis.Redis.from_url(settings.redis_url)
        wait_until(lambda: client.hlen(keys.listeners) >= 1, 60)
        wait_until(lambda: "Checking for new runs for sensor" in stack.log_tail("daemon", 200), 120)
        home = settings.resolved_dagster_home
        drive(stack, settings, result, rate, timeout, recorded_when_idle(home, settings, timeout))
    count_recorded(settings.resolved_dagster_home, result)
    return result


def table(results: list[Result]) -> str:
    head = ("| variant | games | games/s | p50 s | p95 s | max s | CPU-s/game | peak RSS MB "
            "(largest process) | lost | duplicated |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")  # fmt: skip
    rows = [head]
    for r in results:
        role, rss = max(r.peak_rss.items(), key=lambda kv: kv[1], default=("-", 0))
        rows.append(
            f"| {r.label}{r.note} | {r.landed} | {r.games_per_second:.1f} | {r.latency['p50']:.2f} "
            f"| {r.latency['p95']:.2f} | {r.latency['max']:.2f} "
            f"| {r.cpu_seconds / max(r.landed, 1):.4f} | {rss / 2**20:.0f} ({role}) | {r.lost} "
            f"| {r.duplicated} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=5000)
    parser.add_argument("--per-run-games", type=int, default=20, help="games for variant (b)")
    parser.add_argument("--max-games-per-run", type=int, default=500)
    parser.add_argument("--rate", type=float, default=None, help="publisher cap, games/s")
    parser.add_argument("--skip", default="", help="variants to skip, e.g. 'abd'")
    parser.add_argument(
        "--postgres-server",
        default="postgresql://postgres@127.0.0.1:5432",
        help="server for variant (d): a throwaway database is created and dropped",
    )
    args = parser.parse_args(argv)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        root = Path(tmp)
        with RedisServer(data_dir=root / "redis") as server:
            if "a" not in args.skip:
                results.append(run_plain(server, root, args.games, args.rate))
            if "b" not in args.skip:
                b = run_dagster(server, root, "(b) one run per game", args.per_run_games, 1,
                                None, timeout=900)  # fmt: skip
                b.note = f" ({args.per_run_games} games, extrapolated rate)"
                results.append(b)
            if "c" not in args.skip:
                c = run_dagster(
                    server, root, "(c) this pipeline", args.games, args.max_games_per_run,
                    args.rate, timeout=900,
                )  # fmt: skip
                results.append(c)
            if "d" not in args.skip:
                with throwaway_database(args.postgres_server) as url:
                    d = run_dagster(
                        server, root, "(d) this pipeline, Postgres storage", args.games,
                        args.max_games_per_run, args.rate, timeout=900, postgres_url=url,
                    )  # fmt: skip
                results.append(d)
    print(table(results))
    by = {r.label[:3]: r for r in results}
    for top, base in (("(c)", "(a)"), ("(c)", "(b)"), ("(d)", "(c)")):
        if top in by and base in by and by[base].games_per_second:
            ratio = by[top].games_per_second / by[base].games_per_second
            print(f"{top}/{base} games/s ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
