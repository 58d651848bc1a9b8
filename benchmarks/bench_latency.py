"""One game at a time through `superhero-dagster daemon`: where the seconds between 'Cleaning' and the sinks go.

Publishes games one by one (every ``--gap`` seconds, so each is alone in its run), with the real
listener and daemon, and splits each game's latency using timestamps the system records anyway:

- capture: 'Cleaning' message time -> snapshot ``captured_at`` (listener);
- sensor wait: capture -> the run's creation (the daemon's sensor tick: its loop, ``--loops``);
- run launch: run created -> run started, split into dequeue (created -> RUN_STARTING: the queue's
  poll), worker start (RUN_STARTING -> RUN_START: process start, imports, code location load);
- run bookkeeping: RUN_START -> STEP_START (planned events, resources);
- asset work: step start -> the game's materialization event;
- run end: materialization -> both sink files on disk (mtime) is ~0; reported as total.

Baseline for the ratio: the capture step itself (what a plain subscriber pays before its work).

    .venv/bin/python -m benchmarks.bench_latency [--games 20] [--gap 8] [--loops 0,1] [--fork 0,1]

Each combination of ``--loops`` and ``--fork`` is a full run in this process, one after the other;
the first combination is the baseline of the ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import redis
from dagster._core.instance.ref import InstanceRef

from benchmarks.measure import landed
from superhero_dagster.instance_config import write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from superhero_dagster.stack import Stack, wait_until


def epoch(stamp: str) -> float:
    """Epoch seconds of an ISO time; the simulator's naive timestamps are UTC."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--gap", type=float, default=8.0, help="seconds between games")
    parser.add_argument(
        "--loops",
        default="1",
        help="comma-separated sensor loop times for `superhero-dagster daemon`, each a full run "
        "(0 = Dagster's own 5 s loop); the first is the baseline of the ratio",
    )
    parser.add_argument(
        "--fork",
        default="1",
        help="comma-separated: 1 = run workers forked from a preloaded server "
        "(SUPERHERO_FORK_RUN_WORKERS, the default), 0 = spawned as Dagster does",
    )
    args = parser.parse_args(argv)
    variants = [
        (int(loop), fork == "1") for loop in args.loops.split(",") for fork in args.fork.split(",")
    ]
    totals = []
    for loop, fork in variants:
        rows = run_once(args.games, args.gap, loop, fork)
        print(f"\n{describe(loop, fork)}")
        print_table(rows)
        totals.append(statistics.median(r["total"] for r in rows))
    for (loop, fork), total in zip(variants[1:], totals[1:], strict=True):
        print(
            f"total p50, {describe(loop, fork)} / {describe(*variants[0])} = "
            f"{total / totals[0]:.2f}x"
        )


def describe(loop: int, fork: bool) -> str:
    return f"sensor loop {loop or 'Dagster 5'} s, run workers {'forked' if fork else 'spawned'}"


def run_once(games: int, gap: float, loop: int, fork: bool = True) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with RedisServer(root / "redis") as server:
            settings = Settings(
                redis_url=server.url, data_dir=root / "data", state_dir=root / "state",
                dagster_home=root / "home", sensor_interval_seconds=1, expire_after_seconds=0,
                sensor_loop_seconds=loop, fork_run_workers=fork,
            )  # fmt: skip
            write_instance_yaml(settings.resolved_dagster_home)
            sink = SinkRoot(settings.data_dir)
            client = redis.Redis.from_url(server.url)
            with Stack(settings, root / "logs") as stack:
                stack.start_listener(0)
                stack.start_daemon()
                wait_until(lambda: client.hlen(ProjectKeys().listeners) >= 1, 60)
                wait_until(lambda: "Checking for new runs" in stack.log_tail("daemon", 200), 120)
                stack.start_simulator(
                    [
                        "--games",
                        str(games),
                        "--players",
                        "4",
                        "--seed",
                        "3",
                        "--rate",
                        str(1 / gap),
                        "--concurrency",
                        "1",
                        "--expire-after",
                        "0",
                        "--cleaning-delay",
                        "0",
                    ]
                )
                wait_until(lambda: len(landed(sink)) >= games, 60 + games * gap * 3, 0.5)
            rows = split(settings, sink)
        shutil.rmtree(root, ignore_errors=True)
    return rows


def split(settings: Settings, sink: SinkRoot) -> list[dict[str, float]]:
    rows = []
    with dg.DagsterInstance.from_ref(
        InstanceRef.from_dir(str(settings.resolved_dagster_home))
    ) as instance:
        mats = {
            rec.partition_key: rec.timestamp
            for rec in instance.fetch_materializations(dg.AssetKey(GAME_PODIUM), limit=1000).records
        }
        runs = {}
        for record in instance.get_run_records():
            run = record.dagster_run
            key = run.tags.get("dagster/partition") or run.tags.get(
                "dagster/asset_partition_range_start"
            )
            runs[key] = record
        for token in sorted(landed(sink)):
            doc = json.loads(sink.read_raw_snapshot(token))
            if not doc.get("message_timestamp") or token not in runs:
                continue
            sent = epoch(doc["message_timestamp"])
            captured = epoch(doc["captured_at"])
            record = runs[token]
            created = record.create_timestamp.timestamp()
            started = record.start_time or created
            marks = {
                r.event_log_entry.dagster_event_type: r.timestamp
                for r in instance.get_records_for_run(
                    record.dagster_run.run_id,
                    of_type={dg.DagsterEventType.RUN_STARTING, dg.DagsterEventType.STEP_START},
                ).records
            }
            starting = marks.get(dg.DagsterEventType.RUN_STARTING, created)
            step = marks.get(dg.DagsterEventType.STEP_START, started)
            materialized = mats[token]
            written = max(
                sink.parquet_path(a, token).stat().st_mtime for a in (GAME_METADATA, GAME_PODIUM)
            )
            rows.append({
                "capture": captured - sent,
                "sensor wait": created - captured,
                "run launch": started - created,
                "  dequeue": starting - created,
                "  worker start": started - starting,
                "run bookkeeping": step - started,
                "asset work": materialized - step,
                "total": written - sent,
            })  # fmt: skip
    return rows


def print_table(rows: list[dict[str, float]]) -> None:
    print(f"{len(rows)} single-game runs through superhero-dagster daemon (seconds)\n")
    print("| step | p50 s | max s | share of p50 total |")
    print("|---|---:|---:|---:|")
    total = statistics.median(r["total"] for r in rows)
    for step in rows[0]:
        values = [r[step] for r in rows]
        p50 = statistics.median(values)
        print(f"| {step} | {p50:.2f} | {max(values):.2f} | {100 * p50 / total:.0f}% |")
    capture = statistics.median(r["capture"] for r in rows)
    print(f"\ntotal / capture (the plain subscriber's floor) = {total / max(capture, 1e-6):.0f}x")


if __name__ == "__main__":
    main()
