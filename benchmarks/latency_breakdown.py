"""Where a game's seconds go between its 'Cleaning' message and both per-game Parquet files.

``bench_steady`` and ``bench_latency`` give the end-to-end figure; issue 12 asks which stage
holds it. This reads a finished run's work directory (its instance and sinks, nothing live) and
splits each game's latency at the points the stack records anyway:

* **sent**: the message's own timestamp (the raw snapshot's ``message_timestamp``);
* **captured**: the listener's ``captured_at`` (snapshot copied, token buffered);
* **run created**: the run whose materialization event carries the game's partition (the
  sensor tick that drained the buffer created it);
* **run started**: that run's ``RUN_START`` (queue wait, process start, code load done);
* **written**: both per-game Parquet files on disk (their mtime; the end point of
  ``bench_steady``'s latency): the game's place in the batch, since the step reads, extracts and
  writes the games before it;
* **recorded**: the game's materialization events (the later of the two per-game sinks). The
  step reports a batch's games together at its end, so this is the batch's tail.

The materializations are read through ``fetch_materializations`` pages and the runs through
``get_run_records``, so the cost is the history read once, offline.

    .venv/bin/python -m benchmarks.latency_breakdown /work/bench/s50/steady
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg

from benchmarks.measure import message_sent, percentiles, written_at
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot

STAGES = (
    ("listener: sent -> captured", "sent", "captured"),
    ("sensor: captured -> run created", "captured", "created"),
    ("queue + run start: created -> RUN_START", "created", "started"),
    ("in the run: RUN_START -> written", "started", "written"),
    ("batch tail: written -> recorded", "written", "recorded"),
    ("total: sent -> written", "sent", "written"),
    ("total: sent -> recorded", "sent", "recorded"),
)
PAGE = 10_000


def materializations(instance: dg.DagsterInstance, asset: str) -> Iterator[dg.EventLogRecord]:
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetKey(asset), limit=PAGE, cursor=cursor, ascending=True
        )
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def breakdown(instance: dg.DagsterInstance, sink: SinkRoot) -> tuple[int, dict[str, dict]]:
    """Games timed and, per stage, the percentiles of its seconds."""
    last: dict[str, tuple[float, str]] = {}  # token -> (latest event time, its run)
    for asset in (GAME_METADATA, GAME_PODIUM):
        for record in materializations(instance, asset):
            token = record.partition_key
            if token and record.timestamp >= last.get(token, (0.0, ""))[0]:
                last[token] = (record.timestamp, record.run_id)
    runs = {
        r.dagster_run.run_id: r
        for r in instance.get_run_records(
            dg.RunsFilter(run_ids=list({v[1] for v in last.values()}))
        )
    }
    spans: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    timed = 0
    for token, (recorded, run_id) in last.items():
        run = runs.get(run_id)
        try:
            doc = json.loads(sink.read_raw_snapshot(token))
            written = written_at(sink, token)
        except (OSError, ValueError):
            continue  # pruned with its files, or not a game of this run
        sent = message_sent(doc)
        if run is None or run.start_time is None or sent is None:
            continue  # reconcile captures carry no message time
        points = {
            "sent": sent,
            "captured": datetime.fromisoformat(doc["captured_at"]).timestamp(),
            "created": run.create_timestamp.timestamp(),
            "started": run.start_time,
            "written": written,
            "recorded": recorded,
        }
        timed += 1
        for name, start, end in STAGES:
            spans[name].append(points[end] - points[start])
    return timed, {name: percentiles(values) for name, values in spans.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path, help="holds dagster_home/ and data/")
    args = parser.parse_args(argv)
    os.environ["DAGSTER_HOME"] = str(args.work_dir / "dagster_home")
    with dg.DagsterInstance.get() as instance:
        timed, stages = breakdown(instance, SinkRoot(args.work_dir / "data"))
    print(f"{timed} games timed")
    print(f"{'stage, seconds':42} {'p50':>7} {'p95':>7} {'max':>7}")
    for name, p in stages.items():
        print(f"{name:42} {p['p50']:7.2f} {p['p95']:7.2f} {p['max']:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
