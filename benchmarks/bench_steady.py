"""Steady load for a long time: is the live set bounded, and is every game kept exactly once?

Issue 14 asks two things no short benchmark answers: that hours of steady traffic leave the
process memory, Redis memory and the number of live ``games`` dynamic partitions bounded (the
hourly compaction plus the retention schedule keep the partitions below
``SUPERHERO_MAX_GAME_PARTITIONS``), and that pruning loses or duplicates no game. So this runs the
real stack (throwaway Redis, ``superhero-dagster listen``, ``dagster-daemon run``; started with
``bench_pipeline``'s helpers) under a fixed publish rate for many minutes, and:

* **samples** every ``--sample-seconds`` the live ``games`` partitions (a SQL ``count(*)`` on the
  event-log index storage's ``dynamic_partitions`` table: one row read, so sampling costs the same
  at 1k and 1M partitions, unlike ``get_dynamic_partitions``, which loads them all), Redis
  ``used_memory``, RSS of the daemon alone, of the daemon's whole tree (code server, run workers),
  of the listener, and the games landed in both per-game sinks;
* times each game from its 'Cleaning' message to both per-game Parquet files (``measure.timings``),
  overall and per 10-minute window of the message time (a pipeline that slows down as history
  grows shows up as a later window's p95);
* at the end waits until the game batches are done, then until compaction has caught up and no
  compaction or retention run is in flight, and **verifies the data without the project's
  compaction code**: pyarrow reads ``compacted/*/period=*/*.parquet`` and the per-game files, and
  every token the simulator played (``--tokens-out``) must have its rows exactly once: in a
  per-game file, in the compacted files, or both with equal rows (as multisets), and in at most
  one period per compacted asset. A missing, duplicated or differing game exits non-zero.

Settings of the run: sensor every 1 s, ``max_game_partitions=--cap``, ``compaction_period=hour``,
``retention_cron='*/2 * * * *'``, ``analytics_cron='*/1 * * * *'``; per-game files are kept
(``delete_game_files`` off), so latencies can be read off them and verification can compare
both copies. Not part of ``make bench``: the default run takes more than 30 minutes.

    .venv/bin/python -m benchmarks.bench_steady [--rate 50] [--minutes 30] [--cap 50000]
        [--sample-seconds 15] [--snapshot-retention 3600] [--materialized-keep 100000]
        [--postgres [SERVER_URL]]
    .venv/bin/python -m benchmarks.bench_steady --rate 20 --minutes 2 --cap 2000   # a short check
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import redis
import sqlalchemy as db
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.schema import DynamicPartitionsTable
from dagster._core.storage.sqlalchemy_compat import db_select

from benchmarks.bench_pipeline import fresh, recorded_when_idle, sim_args
from benchmarks.measure import landed, percentiles, timings
from superhero_dagster.instance_config import GAMES_BATCH, RUN_KIND_TAG, write_instance_yaml
from superhero_dagster.keys import TOKEN_PATTERN, ProjectKeys
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.sensors.instance_view import IN_FLIGHT
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SCHEMAS, SinkRoot
from superhero_dagster.stack import Stack, wait_until
from tests.postgres_helpers import LOCAL_SERVER, throwaway_database

#: The compacted assets and the per-game asset each holds (named here, not imported from the
#: project's compaction module: the verification must not share its code).
COMPACTED = {"podium_compacted": GAME_PODIUM, "metadata_compacted": GAME_METADATA}
#: Jobs of the runs the end of the run waits for (besides automation runs of COMPACTED assets).
COMPACTION_JOB, RETENTION_JOB = "compaction_job", "prune_game_partitions"
WINDOW_SECONDS = 600
MB = 2**20


# --- sampling ----------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float  # seconds since the simulator started
    partitions: int
    redis_used: int
    daemon_rss: int
    daemon_tree_rss: int
    listener_rss: int
    landed: int
    runs_in_flight: int


def live_partitions(instance: dg.DagsterInstance) -> int:
    """``count(*)`` of the ``games`` rows in the index storage's dynamic_partitions table."""
    storage: Any = instance.event_log_storage
    query = (
        db_select([db.func.count()])
        .select_from(DynamicPartitionsTable)
        .where(DynamicPartitionsTable.c.partitions_def_name == GAMES_PARTITIONS_NAME)
    )
    with storage.index_connection() as conn:
        return int(conn.execute(query).scalar())


def rss(pid: int, tree: bool = False) -> int:
    """RSS of one process, or of it and all its descendants (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if tree else [])]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


@dataclass
class Sampler:
    """A thread taking a :class:`Sample` every ``every`` seconds until stopped."""

    home: Path
    client: redis.Redis
    sink: SinkRoot
    daemon: int
    listener: int
    every: float
    t0: float = field(default_factory=time.time)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def take(self, instance: dg.DagsterInstance) -> None:
        self.samples.append(
            Sample(
                t=time.time() - self.t0,
                partitions=live_partitions(instance),
                redis_used=int(self.client.info("memory")["used_memory"]),
                daemon_rss=rss(self.daemon),
                daemon_tree_rss=rss(self.daemon, tree=True),
                listener_rss=rss(self.listener),
                landed=len(landed(self.sink)),
                runs_in_flight=instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT)),
            )
        )

    def _run(self) -> None:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home))) as instance:
            self.take(instance)
            while not self._stop.wait(self.every):
                self.take(instance)
            self.take(instance)

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


# --- waiting for the analytics side --------------------------------------------------------------
def kind(record: dg.RunRecord) -> str:
    run = record.dagster_run
    if run.tags.get(RUN_KIND_TAG) == GAMES_BATCH:
        return "games"
    if run.job_name == RETENTION_JOB:
        return "retention"
    selected = {key.to_user_string() for key in run.asset_selection or ()}
    if run.job_name == COMPACTION_JOB or selected & set(COMPACTED):
        return "compaction"
    return "other"


def settle_analytics(home: Path, data_dir: Path, since: float, timeout: float) -> dict[str, Any]:
    """Wait until no compaction or retention run is in flight and, if compaction is at work (a
    compacted period file exists, or a compaction run was created after ``since``, the last game
    batch's end), until one created after ``since`` has succeeded: the last games compacted.

    Returns the runs seen (by kind and status) and whether it settled within ``timeout``.
    """
    after = dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC))
    flight = dg.RunsFilter(statuses=IN_FLIGHT)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:

        def state() -> tuple[bool, bool, bool]:
            busy = any(
                kind(r) in ("compaction", "retention") for r in instance.get_run_records(flight)
            )
            later = [r for r in instance.get_run_records(after) if kind(r) == "compaction"]
            active = bool(later) or any((data_dir / "compacted").glob("*/period=*/*.parquet"))
            caught_up = any(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in later)
            return busy, active, caught_up

        def done() -> bool:
            busy, active, caught_up = state()
            return not busy and (caught_up or not active)

        settled = wait_until(done, timeout, interval=2.0)
        _, active, caught_up = state()
        # Every run of the session, read once at the end (a few thousand records at most).
        records = instance.get_run_records()
        runs = Counter((kind(r), r.dagster_run.status.value) for r in records)
        failed = [
            f"{kind(r)} {r.dagster_run.run_id[:8]}: {failure(instance, r.dagster_run.run_id)}"
            for r in records
            if r.dagster_run.status == dg.DagsterRunStatus.FAILURE
        ][:10]
    return {
        "settled": settled,
        "compaction_active": active,
        "compacted_after_last_batch": caught_up,
        "runs": {f"{k} {s}": n for (k, s), n in sorted(runs.items())},
        "failed": failed,
    }


def failure(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first line of a failed run's first step (else run) failure error."""
    wanted = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    for entry in instance.all_logs(run_id, of_type=wanted):
        error = getattr(entry.dagster_event.event_specific_data if entry.dagster_event else None,
                        "error", None)  # fmt: skip
        if error is not None:
            first = (error.message or "").strip().splitlines()
            return f"{error.cls_name}: {first[0] if first else ''}"
        return entry.message or "failed"
    return "failed (no failure event)"


# --- verification ---------------------------------------------------------------------------------
def rows_by_token(table: pa.Table) -> dict[str, Counter[tuple[Any, ...]]]:
    out: dict[str, Counter[tuple[Any, ...]]] = {}
    columns = [column.to_pylist() for column in table.columns]
    token_index = table.schema.get_field_index("game_token")
    for row in zip(*columns, strict=True):
        out.setdefault(row[token_index], Counter())[row] += 1
    return out


def pergame(data_dir: Path, asset: str) -> tuple[set[str], dict[str, Counter[tuple[Any, ...]]]]:
    """Tokens with a per-game Parquet file of ``asset`` and their rows (one dataset read)."""
    folder = data_dir / "parquet" / asset
    files: list[str] = []
    tokens: set[str] = set()
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name.removesuffix(".parquet")
            if entry.name.endswith(".parquet") and TOKEN_PATTERN.fullmatch(name):
                files.append(entry.path)
                tokens.add(name)
    table = pads.dataset(files, schema=SCHEMAS[asset], format="parquet").to_table()
    return tokens, rows_by_token(table)


def compacted(data_dir: Path) -> dict[str, dict[str, dict[str, Counter[tuple[Any, ...]]]]]:
    """compacted asset -> period -> token -> rows, from every ``period=*`` file (hidden temp
    files and anything that is not a known asset left out)."""
    out: dict[str, dict[str, dict[str, Counter[tuple[Any, ...]]]]] = {a: {} for a in COMPACTED}
    for path in sorted((data_dir / "compacted").glob("*/period=*/*.parquet")):
        asset, period = path.parent.parent.name, path.parent.name.removeprefix("period=")
        if asset not in COMPACTED or path.name.startswith((".", "_")):
            continue
        schema = SCHEMAS[COMPACTED[asset]]
        table = pq.read_table(path).select(schema.names).cast(schema)
        for token, rows in rows_by_token(table).items():
            out[asset].setdefault(period, {})[token] = (
                out[asset].get(period, {}).get(token, Counter()) + rows
            )
    return out


@dataclass
class Verification:
    simulated: int = 0
    with_rows: int = 0
    compacted: int = 0
    only_pergame: int = 0
    half_compacted: int = 0  # in one compacted asset only, though it has rows of the other
    empty: int = 0  # games with a per-game file of no rows (e.g. no podium): nothing to compact
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    differing_games: list[str] = field(default_factory=list)
    differing_rows: int = 0
    unknown_compacted: int = 0  # compacted tokens the simulator never played
    periods: dict[str, int] = field(default_factory=dict)  # compacted asset -> period files

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.differing_games)


def verify(data_dir: Path, simulated: list[str]) -> Verification:
    result = Verification(simulated=len(set(simulated)))
    files = {a: pergame(data_dir, a) for a in (GAME_METADATA, GAME_PODIUM)}
    parts = compacted(data_dir)
    result.periods = {a: len(p) for a, p in parts.items()}
    where: dict[str, dict[str, list[str]]] = {a: {} for a in COMPACTED}  # token -> periods
    for asset, periods in parts.items():
        for period, tokens in periods.items():
            for token in tokens:
                where[asset].setdefault(token, []).append(period)
    known = set(simulated)
    result.unknown_compacted = len({t for a in where.values() for t in a} - known)
    for token in sorted(known):
        present = True
        states = set()  # per asset: compacted, per-game, or empty (a per-game file of no rows)
        for asset, source in COMPACTED.items():
            names, rows = files[source]
            periods = where[asset].get(token, [])
            if periods:
                states.add("compacted")
            elif token in names:
                states.add("per-game" if rows.get(token) else "empty")
            if len(periods) > 1 and token not in result.duplicated:
                result.duplicated.append(token)
            if token not in names and not periods:
                present = False
            if token in names and len(periods) == 1:
                mine = rows.get(token, Counter())
                theirs = parts[asset][periods[0]][token]
                if mine != theirs:
                    if token not in result.differing_games:
                        result.differing_games.append(token)
                    result.differing_rows += sum(((mine - theirs) + (theirs - mine)).values())
        if not present:
            result.missing.append(token)
            continue
        result.with_rows += 1
        result.empty += "empty" in states
        if "compacted" not in states:
            result.only_pergame += 1
        elif "per-game" in states:
            result.half_compacted += 1
        else:
            result.compacted += 1
    return result


# --- the run ------------------------------------------------------------------------------------------
@dataclass
class Run:
    args: argparse.Namespace
    games: int
    samples: list[Sample] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    windows: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    landed: int = 0
    seconds: float = 0.0
    publish_seconds: float = 0.0
    analytics: dict[str, Any] = field(default_factory=dict)
    final_partitions: int = 0
    check: Verification = field(default_factory=Verification)

    @property
    def games_per_second(self) -> float:
        return self.landed / self.seconds if self.seconds else 0.0

    def failed(self, kind: str) -> int:
        return int(self.analytics.get("runs", {}).get(f"{kind} FAILURE", 0))


def run(args: argparse.Namespace, postgres_url: str | None, root: Path) -> Run:
    games = round(args.rate * 60 * args.minutes)
    result = Run(args, games)
    with RedisServer(data_dir=root / "redis") as server:
        settings: Settings = fresh(
            server,
            root,
            "steady",
            max_games_per_run=500,
            max_games_per_tick=2000,
            max_game_partitions=args.cap,
            compaction_period="hour",
            retention_cron="*/2 * * * *",
            analytics_cron="*/1 * * * *",
            # What bounds Redis (bench_pipeline's short runs turn the first off): the simulator's
            # keys expire after the game, snapshot copies after --snapshot-retention, the
            # materialization record keeps the newest --materialized-keep games.
            expire_after_seconds=Settings.expire_after_seconds,
            snapshot_retention_seconds=args.snapshot_retention,
            materialized_keep=args.materialized_keep,
        )
        home = settings.resolved_dagster_home
        storage = {"storage": "postgres", "postgres_url": postgres_url} if postgres_url else {}
        write_instance_yaml(home, max_concurrent_runs=args.max_concurrent_runs, **storage)
        tokens_file = root / "tokens.txt"
        client = redis.Redis.from_url(settings.redis_url or "")
        sink = SinkRoot(settings.data_dir)
        with Stack(settings, root / "steady" / "logs") as stack:
            listener = stack.start_listener(0)
            daemon = stack.start_daemon()
            keys = ProjectKeys(settings.namespace)
            wait_until(lambda: client.hlen(keys.listeners) >= 1, 60)
            wait_until(
                lambda: "Checking for new runs for sensor" in stack.log_tail("daemon", 200), 180
            )
            sampler = Sampler(home, client, sink, daemon.pid, listener.pid, args.sample_seconds)
            sampler.start()
            started = time.time()
            sim = stack.start_simulator(
                [*sim_args(games, args.rate), "--tokens-out", str(tokens_file)]
            )
            sim.wait()
            result.publish_seconds = time.time() - started
            if sim.returncode:
                sys.exit(f"simulator failed ({sim.returncode}):\n{stack.log_tail('simulator')}")
            print(f"published {games} games in {result.publish_seconds:.0f} s", flush=True)
            wait_until(lambda: len(landed(sink)) >= games, args.drain_timeout, interval=2.0)
            last_batch = recorded_when_idle(home, settings, args.drain_timeout)()
            print("game batches done; waiting for compaction and retention", flush=True)
            result.analytics = settle_analytics(
                home, settings.data_dir, last_batch, args.settle_timeout
            )
            sampler.stop()
            result.samples = sampler.samples
            with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
                result.final_partitions = live_partitions(instance)
        done = sorted(landed(sink))
        result.landed = len(done)
        times = timings(sink, done)
        result.latency = percentiles([w - s for s, w in times])
        if times:
            first = min(s for s, _ in times)
            result.seconds = max(w for _, w in times) - first
            buckets: dict[int, list[float]] = {}
            for s, w in times:
                buckets.setdefault(int((s - first) // WINDOW_SECONDS), []).append(w - s)
            result.windows = [(k, len(v), percentiles(v)) for k, v in sorted(buckets.items())]
        simulated = tokens_file.read_text().split() if tokens_file.exists() else []
        result.check = verify(settings.data_dir, simulated)
    return result


# --- output -------------------------------------------------------------------------------------------
COLUMNS = (
    ("partitions", "live partitions", 1),
    ("redis_used", "Redis MB", MB),
    ("daemon_rss", "daemon MB", MB),
    ("daemon_tree_rss", "daemon tree MB", MB),
    ("listener_rss", "listener MB", MB),
    ("landed", "landed", 1),
)


def fmt(value: float, scale: int) -> str:
    return f"{value / scale:.1f}" if scale != 1 else f"{int(value)}"


def samples_table(samples: list[Sample]) -> str:
    head = "    t s | " + " | ".join(f"{label:>15}" for _, label, _ in COLUMNS) + " | runs"
    lines = [head]
    for s in samples:
        cells = " | ".join(f"{fmt(getattr(s, name), scale):>15}" for name, _, scale in COLUMNS)
        lines.append(f"{s.t:7.0f} | {cells} | {s.runs_in_flight:4d}")
    lines.append("")
    lines.append("| sampled | min | max | first | last |\n|---|---:|---:|---:|---:|")
    for name, label, scale in COLUMNS:
        values = [getattr(s, name) for s in samples]
        if values:
            cells = [min(values), max(values), values[0], values[-1]]
            lines.append(f"| {label} | " + " | ".join(fmt(v, scale) for v in cells) + " |")
    return "\n".join(lines)


def figures_table(r: Run) -> str:
    a, c = r.args, r.check
    peak = max((s.partitions for s in r.samples), default=0)

    def p(d: dict[str, float]) -> str:
        return " / ".join("-" if math.isnan(d[k]) else f"{d[k]:.2f}" for k in ("p50", "p95", "max"))

    rows = [
        ("storage", "Postgres" if a.postgres else "SQLite (embedded)"),
        ("load", f"{a.rate:g} games/s for {a.minutes:g} min, 4 players, seed 7"),
        ("run slots (max_concurrent_runs)", a.max_concurrent_runs),
        (
            "Redis bounds",
            f"simulator keys expire {Settings.expire_after_seconds} s after the game, "
            f"snapshot copies after {a.snapshot_retention} s, record keeps {a.materialized_keep}",
        ),
        ("games simulated / landed", f"{c.simulated} / {r.landed}"),
        ("publish time", f"{r.publish_seconds:.0f} s"),
        ("games/s achieved (first message -> last sink write)", f"{r.games_per_second:.1f}"),
        ("latency p50 / p95 / max, s", p(r.latency)),
    ]
    rows += [
        (
            f"latency p50 / p95 / max, s, minutes {k * 10}-{k * 10 + 10} ({n} games)",
            p(d),
        )
        for k, n, d in r.windows
    ]
    for name, label, scale in COLUMNS[1:5]:
        values = [getattr(s, name) for s in r.samples]
        if values:
            rows.append(
                (f"{label}: first / max / last", " / ".join(
                    fmt(v, scale) for v in (values[0], max(values), values[-1])))
            )  # fmt: skip
    rows += [
        ("live games partitions: max sampled / cap / at the end", f"{peak} / {a.cap} / "
         f"{r.final_partitions}"),
        ("compacted period files (podium, metadata)",
         f"{c.periods.get('podium_compacted', 0)}, {c.periods.get('metadata_compacted', 0)}"),
        ("games with rows", str(c.with_rows)),
        ("games compacted", str(c.compacted)),
        ("games only per-game", str(c.only_pergame)),
        ("games compacted in one asset only (rows of the other not compacted)",
         str(c.half_compacted)),
        ("games with an empty per-game file (nothing to compact there)", str(c.empty)),
        ("games missing", str(len(c.missing))),
        ("games duplicated (in more than one period)", str(len(c.duplicated))),
        ("games / rows differing (per-game vs compacted)",
         f"{len(c.differing_games)} / {c.differing_rows}"),
        ("compacted games never simulated", str(c.unknown_compacted)),
        ("compaction / retention runs failed", f"{r.failed('compaction')} / "
         f"{r.failed('retention')}"),
        ("analytics settled (compaction after the last batch)",
         f"{r.analytics.get('settled')} ({r.analytics.get('compacted_after_last_batch')})"),
    ]  # fmt: skip
    body = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return "| figure | value |\n|---|---|\n" + body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="games/s published")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--cap", type=int, default=50_000, help="max_game_partitions")
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    parser.add_argument("--snapshot-retention", type=int, default=Settings.snapshot_retention_seconds,
                        help="seconds a Redis snapshot copy lives (Redis plateaus after that)")  # fmt: skip
    parser.add_argument("--materialized-keep", type=int, default=Settings.materialized_keep,
                        help="games the Redis materialization record keeps")  # fmt: skip
    parser.add_argument("--drain-timeout", type=float, default=900.0,
                        help="after publishing: seconds for every game to land")  # fmt: skip
    parser.add_argument("--settle-timeout", type=float, default=300.0,
                        help="then: seconds for compaction/retention to finish")  # fmt: skip
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep Redis, sinks, instance and logs here (default: a temp dir)")  # fmt: skip
    parser.add_argument("--postgres", nargs="?", const=LOCAL_SERVER, default=None,
                        metavar="SERVER_URL",
                        help="Postgres storage in a throwaway database on this server")  # fmt: skip
    parser.add_argument("--max-concurrent-runs", type=int, default=2,
                        help="the run queue's limit (init-instance's default: 2)")  # fmt: skip
    args = parser.parse_args(argv)
    with _work_dir(args.work_dir) as root, _database(args.postgres) as url:
        result = run(args, url, root)
    print()
    print(samples_table(result.samples))
    print()
    print("runs by kind and status:", result.analytics.get("runs"))
    for line in result.analytics.get("failed", []):
        print("failed run:", line)
    print()
    print(figures_table(result))
    c = result.check
    for label, tokens in (("missing", c.missing), ("duplicated", c.duplicated),
                          ("differing", c.differing_games)):  # fmt: skip
        if tokens:
            print(f"{label}: {len(tokens)}, e.g. {', '.join(tokens[:5])}")
    if not c.ok:
        sys.exit(1)


@contextlib.contextmanager
def _work_dir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=False)  # a fresh folder: old tokens would be counted
        yield path.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-steady-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def _database(server: str | None) -> Iterator[str | None]:
    if server is None:
        yield None
        return
    with throwaway_database(server) as url:
        yield url


if __name__ == "__main__":
    main()
