"""Per-tick, per-run, UI and retention cost against N existing ``games`` partitions.

One partition per game means the instance holds every game not yet pruned; issue 14 asks that
what the pipeline does per tick and per run stays flat as that number grows. This seeds N
partitions straight into a real SQLite instance (the project's init-instance config, so the
project's event storage is used), then at each N measures, with a fresh batch of new games:

* **tick**: one evaluation of the real sensor over a buffer of ``--games`` new games (its
  partition requests applied, as the daemon would);
* **daemon**: what the daemon's run creation does with the partitions: the run's key range
  resolved once per asset (three) through the stock ``DynamicPartitionsDefinition`` the daemon
  rebuilds from the snapshot, on this long-lived instance (so its storage's key list cache is
  warm, as the daemon's is: the seeded keys are read once, untimed, after seeding);
* **run**: the sensor's run request(s) materialized in-process with the real resources (what a
  run worker does, and the run's creation with the code location's own definition);
* **GraphQL**: the UI's asset partitions view (the query its ``PartitionHealthQuery`` issues),
  through a real ``dagster-webserver`` on a free port: the first call after seeding (the
  webserver's cache reads the seeded keys), then a second, warm one;
* **retention**: one ``prune_games`` pass that prunes the batch of new games (their period
  compacted first, untimed; ``as_of`` a year ahead so the age rule applies to them) and checks
  the cap (set above N: the over-cap lookup is one row read). What it costs is the games it
  prunes; N must not show;
* **after pass**: the first key list read after that pass on this long-lived instance: what the
  daemon's and the webserver's caches do once per retention pass (they apply the pass's journal of
  deleted keys; they do not read the list again).

Seeding is kept out of the timings; sizes are cumulative in one instance (10k, then 90k more...).
Ratios are against the smallest size of the same run.

    .venv/bin/python -m benchmarks.bench_scale [--sizes 10000,100000,1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import redis
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRun

from superhero_dagster.assets.compaction import compact, pending_periods
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.periods import Period
from superhero_dagster.redis_server import RedisServer, free_port
from superhero_dagster.retention import prune_games
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import GAME_PODIUM, SinkRoot
from tests.pipeline_helpers import execute, poll, sensor_tick, store
from tests.snapshot_factory import random_game

SEED_CHUNK = 10_000
HOUR = Period("hour")
REPO = Path(__file__).resolve().parent.parent

#: The Default-partitions part of the UI's PartitionHealthQuery (dagster-webserver 1.13 bundle).
PARTITIONS_VIEW = """
query PartitionHealth($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses {
          materializedPartitions materializingPartitions failedPartitions
        }
      }
    }
  }
}
"""


def seed(instance: dg.DagsterInstance, count: int) -> float:
    """Add ``count`` random partitions in chunks; returns the seconds it took (not measured)."""
    started = time.perf_counter()
    for i in range(0, count, SEED_CHUNK):
        keys = [str(uuid.uuid4()) for _ in range(min(SEED_CHUNK, count - i))]
        instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, keys)
    return time.perf_counter() - started


@contextmanager
def webserver(home: Path, env: dict[str, str]):
    """A real dagster-webserver on a free port over ``home``; yields its GraphQL URL."""
    port = free_port()
    log = open(home / "webserver.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env={**os.environ, **env, "DAGSTER_HOME": str(home)},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        poll(lambda: _server_up(port, proc), timeout=180, interval=0.5, what="webserver up")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _server_up(port: int, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, "dagster-webserver exited (see webserver.log)"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
            return True
    except OSError:
        return False


def graphql_partitions(url: str) -> tuple[float, int, int]:
    """Seconds for the partitions view; (seconds, partition keys, materialized) as returned."""
    body = json.dumps(
        {"query": PARTITIONS_VIEW, "variables": {"assetKey": {"path": [GAME_PODIUM]}}}
    )
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        data = json.loads(resp.read())
    elapsed = time.perf_counter() - started
    if "errors" in data:
        raise RuntimeError(f"GraphQL errors: {data['errors']}")
    node = data["data"]["assetNodeOrError"]
    keys = node["partitionKeysByDimension"][0]["partitionKeys"]
    return elapsed, len(keys), len(node["assetPartitionStatuses"]["materializedPartitions"])


def measure_one(settings, instance, client, rng, new_games: int, cursor):
    """Tick, the daemon's range resolution and the run(s) over ``new_games`` fresh games;
    returns (tick s, daemon s, run s, cursor)."""
    tokens = store(client, [random_game(rng, players=rng.randint(2, 5)) for _ in range(new_games)])
    client.rpush(ProjectKeys().buffer, *tokens)
    started = time.perf_counter()
    result = sensor_tick(settings, instance, cursor)
    tick = time.perf_counter() - started
    assert result.run_requests, "the sensor requested no run for the new games"
    started = time.perf_counter()
    for request in result.run_requests:
        resolved = daemon_range(instance, request)
        assert set(resolved) <= set(tokens), "the daemon's range is not the batch's games"
    daemon = time.perf_counter() - started
    started = time.perf_counter()
    for request in result.run_requests:
        assert execute(settings, instance, request).success
    run = time.perf_counter() - started
    landed = set(SinkRoot(settings.data_dir).tokens(GAME_PODIUM))
    assert set(tokens) <= landed, "a game of the batch has no podium file"
    return tick, daemon, run, result.cursor


def daemon_range(instance: dg.DagsterInstance, request: dg.RunRequest) -> list[str]:
    """The run's partitions as the daemon resolves them to log its planned materializations
    (``DagsterRun.get_resolved_partitions_subset_for_events``, once per asset of the run), with
    the stock definition it rebuilds from the snapshot."""
    stock = dg.DynamicPartitionsDefinition(name=GAMES_PARTITIONS_NAME)
    run = DagsterRun(job_name="game_assets_job", run_id=str(uuid.uuid4()), tags=dict(request.tags))
    keys: list[str] = []
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        for _ in range(3):
            subset = run.get_resolved_partitions_subset_for_events(stock)
            keys = list(subset.get_partition_keys()) if subset is not None else []
    return keys


def prune_new_games(instance: dg.DagsterInstance, sink: SinkRoot, n: int) -> tuple[float, object]:
    """Compact the new games' periods (untimed), then one timed retention pass that prunes them
    by age (``as_of`` a year ahead) and checks a cap above ``n``."""
    for key in pending_periods(sink, HOUR):
        compact(sink, key)
    started = time.perf_counter()
    report = prune_games(
        instance, sink, period=HOUR, max_partitions=10 * n, retention_days=1, delete_files=False,
        as_of=datetime.now(UTC) + timedelta(days=365),
    )  # fmt: skip
    return time.perf_counter() - started, report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--games", type=int, default=100, help="new games per measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 1000,5000, 20 games")
    args = parser.parse_args(argv)
    sizes = [1000, 5000] if args.quick else [int(s) for s in args.sizes.split(",")]
    new_games = 20 if args.quick else args.games
    if sizes != sorted(sizes) or sizes[0] < 1:
        parser.error("--sizes must be increasing positive integers")
    rng = random.Random(14)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        home = Path(tmp) / "home"
        write_instance_yaml(home)
        settings = Settings(
            redis_url=server.url, data_dir=Path(tmp) / "data", state_dir=Path(tmp) / "state",
            dagster_home=home, max_games_per_run=max(new_games, 1),
            # The seeded sizes are over the default cap, which the sensor would hold games at.
            max_game_partitions=10 * sizes[-1],
        )  # fmt: skip
        client = redis.Redis.from_url(server.url)
        env = settings.to_env()
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            cursor, have = None, 0
            sink = SinkRoot(settings.data_dir)
            with webserver(home, env) as url:
                # Warm-up (imports, first connections, the webserver's first load), not timed.
                _, _, _, cursor = measure_one(settings, instance, client, rng, new_games, cursor)
                graphql_partitions(url)
                prune_new_games(instance, sink, n=new_games)
                for n in sizes:
                    took = seed(instance, n - have)
                    print(f"seeded {n - have} partitions in {took:.1f} s (total {n})", flush=True)
                    have = n
                    instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)  # the daemon read along
                    tick, daemon, run, cursor = measure_one(
                        settings, instance, client, rng, new_games, cursor
                    )
                    gql_first, keys_seen, mats = graphql_partitions(url)
                    gql, keys_again, _ = graphql_partitions(url)
                    want = have + new_games
                    assert keys_seen == keys_again == want, f"UI saw {keys_seen}, expected {want}"
                    retention, report = prune_new_games(instance, sink, n=n)
                    assert report.partitions_deleted == new_games, report
                    assert report.over_cap == 0, report
                    started = time.perf_counter()
                    left = instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)
                    after_pass = time.perf_counter() - started
                    assert len(left) == n, f"{len(left)} partitions left after the pass, not {n}"
                    rows.append(
                        (
                            n,
                            tick,
                            daemon,
                            run / new_games,
                            gql_first,
                            gql,
                            retention,
                            after_pass,
                            mats,
                        )
                    )
                    print(f"measured N={n}", flush=True)
    base = rows[0]
    print()
    print(f"{new_games} new games per measurement; ratios against N={base[0]} in this run")
    print(
        "| N partitions | tick ms | daemon ms | run ms/game | GraphQL ms first / warm |"
        " retention ms | after pass ms | tick x | daemon x | run x | GraphQL warm x | retention x |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, tick, daemon, per_game, gql_first, gql, retention, after_pass, _ in rows:
        print(
            f"| {n} | {tick * 1e3:.0f} | {daemon * 1e3:.0f} | {per_game * 1e3:.1f} | "
            f"{gql_first * 1e3:.0f} / {gql * 1e3:.0f} | {retention * 1e3:.0f} | "
            f"{after_pass * 1e3:.0f} | {tick / base[1]:.1f} | {daemon / base[2]:.1f} | "
            f"{per_game / base[3]:.1f} | {gql / base[5]:.1f} | {retention / base[6]:.1f} |"
        )


if __name__ == "__main__":
    main()
