"""Fault-injection harness: the real system (Redis with AOF, listeners, simulator, dagster-daemon),
broken on purpose at seeded moments, then compared file by file with an undisturbed run.

Why it is built this way:

* **Real processes only.** Redis is a ``RedisServer`` this harness starts (AOF on, loopback); the
  listeners, the simulator and ``dagster-daemon`` are children of a :class:`Stack`, each in its own
  process group, so ``kill -9`` hits a process the way a crash would. Run workers are found through
  Dagster's own "Started process for run (pid: N)" event and killed only if they descend from our
  daemon.
* **Seeded.** One ``random.Random(seed)`` decides every injection (which process, when, how long it
  stays down); the simulator plays waves whose seeds derive from the same seed with
  ``fixed_time``, so the games (tokens included) and every derived file are byte-for-byte those of
  the reference run (:func:`reference_files`, the same simulator and asset code with nothing broken).
* **Waves.** The simulator is a client of Redis like any other: a Redis restart while it is writing
  would kill *it* and leave a half-written game, which says nothing about the pipeline. Redis
  restarts therefore happen between simulator waves, while listeners capture and runs execute.
* **Sleeps only space out injections.** Every wait for an outcome polls a condition with a timeout.

Run ``python -m tests.fault_harness simulate ...`` is the simulator process the harness starts
(the CLI has no ``--fixed-time``; this entry point adds it without touching the package).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from dagster._core.instance.ref import InstanceRef

from superhero_dagster.instance_config import render_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_client import connect
from superhero_dagster.redis_server import RedisServer
from superhero_dagster.retention import RETENTION_JOB
from superhero_dagster.settings import Settings
from superhero_dagster.simulator.run import SimConfig, run_simulation
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM
from superhero_dagster.stack import Stack
from tests.pipeline_helpers import listeners, poll

FIXED_TIME = datetime(2024, 5, 4, 12, 0, tzinfo=UTC)
KEYS = ProjectKeys()
DERIVED = (GAME_METADATA, GAME_PODIUM)
#: Jobs that are not about games (their runs are left out of the verdict).
ANALYTICS_JOBS = {RETENTION_JOB, "compaction_job", "hero_leaderboard_job", "restore_pruned_games"}
#: Fields of a raw snapshot that legitimately differ between runs (who/when/how it was captured;
#: the attack stream is what the capturing listener had seen, partial after a kill: the rows,
#: compared byte for byte, are what must not differ).
CAPTURE_FIELDS = (
    "captured_at",
    "captured_by",
    "trigger",
    "message_timestamp",
    "stream",
    "stream_same_as_logs",
)
SET_FIELDS = ("players", "superheros")
IN_PROGRESS = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}
_PID = re.compile(r"Started process for run \(pid: (\d+)\)")


@dataclass(frozen=True)
class Workload:
    """What the simulator plays: ``waves`` runs of ``games`` games, seeds derived from ``seed``."""

    seed: int
    waves: int
    games: int
    rate: float = 6.0  # games/s, so injections land while games are being published
    players: tuple[int, int] = (2, 4)
    odd_rate: float = 0.2

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        data = json.loads(text)
        return cls(**(data | {"players": tuple(data["players"])}))

    def config(self, wave: int) -> SimConfig:
        return SimConfig(
            games=self.games,
            players=self.players,
            concurrency=4,
            rate=self.rate,
            seed=self.seed * 1000 + wave,
            odd_rate=self.odd_rate,
            expire_after=0,  # keys stay until materialized: a game is never lost to expiry here
            cleaning_delay=0.2,
            fixed_time=FIXED_TIME,
            # Pinned to the simulator's pre-issue-11 model (its default is now the original worker,
            # whose race makes a game's captured log depend on timing): these scenarios compare
            # every sink file with an undisturbed run. To revisit with issue 11's listener.
            cleanup="expire",
            dead_turn_rate=0.0,
            no_cleaning_rate=0.0,
        )


def is_game_run(r: dg.DagsterRun) -> bool:
    """A run that materializes games (the sensor's batches, their retries, backfills)."""
    if r.job_name in ANALYTICS_JOBS:
        return False
    selected = {key.to_user_string() for key in r.asset_selection or ()}
    return not selected or bool(selected & {GAME_METADATA, GAME_PODIUM, "game_snapshot"})


def instance_yaml(max_runtime_seconds: int, home: Path) -> str:
    """The shipped dagster.yaml with run monitoring tightened for a test that cannot wait minutes.

    ``max_runtime_seconds`` is shortened: with the DefaultRunLauncher, run monitoring cannot see a
    dead run worker, so a run orphaned in STARTED by a crash of the whole daemon process group is
    only ever failed (and then retried) by the runtime limit.
    """
    text = render_instance_yaml(max_concurrent_runs=2, dagster_home=home)
    for old, new in (
        ("start_timeout_seconds: 180", "start_timeout_seconds: 30"),
        ("cancel_timeout_seconds: 180", "cancel_timeout_seconds: 20"),
        ("poll_interval_seconds: 30", "poll_interval_seconds: 2"),
        ("max_runtime_seconds: 600", f"max_runtime_seconds: {max_runtime_seconds}"),
    ):
        assert old in text, f"instance config changed: {old!r} not found"
        text = text.replace(old, new)
    return text


@dataclass
class FaultRun:
    """One scenario: a fresh Redis, DAGSTER_HOME, sink folder and stack of processes."""

    root: Path
    workload: Workload
    listeners: int = 2
    max_games_per_run: int = 4
    max_runtime_seconds: int = 30
    data_dir: Path | None = None  # e.g. a tmpfs mount for the full-sink scenario
    rng: random.Random = field(init=False)
    redis: RedisServer = field(init=False)
    stack: Stack = field(init=False)
    tokens: list[str] = field(default_factory=list)
    injections: Counter[str] = field(default_factory=Counter)
    hostile_expected: dict[str, int] = field(default_factory=dict)  # marker -> receivers

    def __post_init__(self) -> None:
        self.rng = random.Random(self.workload.seed)
        self.home = self.root / "dagster_home"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FaultRun:
        self.redis = RedisServer(self.root / "redis").start()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(instance_yaml(self.max_runtime_seconds, self.home))
        self.settings = Settings(
            redis_url=self.redis.url,
            data_dir=self.data_dir or self.root / "data",
            state_dir=self.root / "state",
            dagster_home=self.home,
            sensor_interval_seconds=1,
            max_games_per_run=self.max_games_per_run,
            reconcile_seconds=3,
        )
        self.stack = Stack(self.settings, self.root / "logs")
        # Create the SQLite storages before the daemon does: two processes creating them at once
        # can stamp the schema twice ("more than one head"), a start-up race, not a fault under test.
        with self.instance():
            pass
        for i in range(self.listeners):
            self.stack.start_listener(i)
        self.stack.start_daemon()
        self.client = connect(self.redis.url, decode_responses=True)
        poll(lambda: self.heartbeats() >= self.listeners, timeout=60, what="listener heartbeats")
        return self

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self.stack.stop_all()
        self.redis.stop()

    def __enter__(self) -> FaultRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def heartbeats(self) -> int:
        return int(self.client.hlen(KEYS.listeners))

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))

    # -- traffic --------------------------------------------------------------------------
    def start_wave(self, wave: int) -> None:
        out = self.root / f"wave-{wave}.json"
        argv = [sys.executable, "-m", "tests.fault_harness", "simulate", "--wave", str(wave)]
        argv += ["--workload", self.workload.to_json(), "--out", str(out)]
        self.stack.start(f"simulator-{wave}", argv)

    def finish_wave(self, wave: int, timeout: float = 120) -> list[str]:
        name = f"simulator-{wave}"
        poll(lambda: not self.stack.alive(name), timeout=timeout, interval=0.1, what=name)
        assert self.stack.processes[name].returncode == 0, self.stack.log_tail(name)
        tokens = json.loads((self.root / f"wave-{wave}.json").read_text())
        self.tokens += tokens
        return tokens

    def publish_hostile(self, count: int = 4) -> None:
        """Messages that must be dead-lettered (one per listener that received each)."""
        channel = self.settings.channels[0]
        for i in range(count):
            marker = f"fault-hostile-{i}"
            forged = {"log_message": "Cleaning Game Records", "marker": marker}
            payloads = [
                f"not json {{ {marker}".encode(),
                json.dumps(json.dumps(forged | {"task": {"game_token": "../../etc/" + marker}})),
                json.dumps(forged | {"task": {"game_token": _uuid(self.rng), "user_token": "x"}}),
                b"\xff\xfe " + marker.encode(),
            ]
            self.hostile_expected[marker] = int(self.client.publish(channel, payloads[i % 4]))
        total = sum(self.hostile_expected.values())
        poll(lambda: self.client.llen(KEYS.deadletter) >= total, timeout=30, what="dead letters")

    # -- injections -----------------------------------------------------------------------
    def kill_listeners(self, down_for: float) -> int:
        """kill -9 one listener, or (seeded, 1 in 3) all of them, so only reconcile can help."""
        names = [f"listener-{i}" for i in range(self.listeners)]
        victims = names if self.rng.random() < 1 / 3 else [self.rng.choice(names)]
        for name in victims:
            self.stack.kill(name)
        time.sleep(down_for)  # spacing: how long the capture side stays down
        for name in victims:
            self.stack.start_listener(int(name.rsplit("-", 1)[1]))
        self.injections["listener kill -9"] += len(victims)
        return len(victims)

    def started_run_pid(self, timeout: float = 90) -> tuple[str, int]:
        """A run that is executing right now, and the pid of its worker."""

        def find() -> tuple[str, int] | None:
            with self.instance() as instance:
                for record in instance.get_run_records(
                    dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
                ):
                    run_id = record.dagster_run.run_id
                    for entry in instance.all_logs(
                        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT
                    ):
                        found = _PID.search(entry.message or "")
                        if found and psutil.pid_exists(int(found.group(1))):
                            return run_id, int(found.group(1))
            return None

        return poll(find, timeout=timeout, interval=0.1, what="a run in progress")

    def kill_run_worker(self) -> bool:
        """kill -9 the worker of a run in progress (daemon and code server stay up); the code
        server must then fail the run (and the retry daemon re-run it)."""
        run_id, pid = self.started_run_pid()
        daemon = self.stack.processes["daemon"].pid
        try:
            proc = psutil.Process(pid)
            if daemon not in {p.pid for p in proc.parents()}:
                return False  # not ours (pid reused): never kill what we did not start
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            return False  # the run finished first
        self.injections["run worker kill -9"] += 1

        def failed() -> bool:
            with self.instance() as instance:
                run = instance.get_run_by_id(run_id)
            return run is not None and run.status != dg.DagsterRunStatus.STARTED

        poll(failed, timeout=60, interval=0.2, what=f"run {run_id} marked failed after its kill")
        return True

    def kill_daemon(self, down_for: float) -> None:
        """kill -9 the daemon's whole process group (code server and run workers with it), while a
        run is in progress, then start a new daemon."""
        self.started_run_pid()
        self.stack.kill("daemon")
        time.sleep(down_for)
        self.stack.start_daemon()
        self.injections["daemon kill -9 (group)"] += 1

    def restart_redis(self, down_for: float) -> None:
        """Seeded: SIGKILL (acknowledged writes are in the AOF file already) or SIGTERM, then start
        on the same port and folder: the AOF is replayed."""
        self.started_run_pid()  # a run in progress: it must ride out the outage
        if self.rng.random() < 0.5:
            self.redis.kill()
            kind = "redis kill -9 + restart"
        else:
            self.redis.stop()
            kind = "redis stop + restart"
        time.sleep(down_for)
        self.redis.start()
        self.injections[kind] += 1

    # -- convergence ----------------------------------------------------------------------
    def landed(self) -> set[str]:
        return {t for t in self.tokens if all(p.is_file() for p in sink_paths(self.sink, t))}

    @property
    def sink(self) -> Path:
        return self.settings.data_dir

    def settled(self) -> bool:
        """Every game in both sinks, no run pending or due for a retry, the buffer drained."""
        if not self.stack.alive("daemon"):
            raise AssertionError("daemon died:\n" + self.stack.log_tail("daemon", 40))
        if len(self.landed()) < len(self.tokens):
            return False
        with self.instance() as instance:
            runs = instance.get_runs()
            if any(run.status in IN_PROGRESS for run in runs):
                return False
            parents = {run.parent_run_id for run in runs}
            for run in runs:
                if (
                    run.status == dg.DagsterRunStatus.FAILURE
                    and run.run_id not in parents
                    and run.tags.get("dagster/will_retry") != "false"
                ):
                    return False  # the retry daemon has not decided or launched yet
        return self.client.llen(KEYS.buffer) == 0

    def converge(self, timeout: float = 240) -> float:
        started = time.monotonic()
        poll(self.settled, timeout=timeout, interval=0.5, what="every game landed, runs settled")
        return time.monotonic() - started


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def sink_paths(root: Path, token: str) -> list[Path]:
    """The five files of one game."""
    paths = [root / "raw" / "game_snapshot" / f"{token}.json"]
    for asset in DERIVED:
        paths += [
            root / "json" / asset / f"{token}.json",
            root / "parquet" / asset / f"{token}.parquet",
        ]
    return paths


def temp_files(root: Path) -> list[Path]:
    """Temp files anywhere: a hidden `.<name>.<hex>.tmp` or one in the write area."""
    return sorted(p for p in root.rglob("*.tmp") if p.is_file())


def normalized_snapshot(data: bytes) -> dict[str, object]:
    """The snapshot minus capture facts; Redis sets (SMEMBERS) come in no defined order."""
    snap = json.loads(data)
    out = {k: v for k, v in snap.items() if k not in CAPTURE_FIELDS}
    for name in SET_FIELDS:
        out[name] = sorted(out.get(name) or [])
    return out


@dataclass
class Reference:
    """The undisturbed run: tokens in play order, derived files' bytes, normalized raw snapshots."""

    tokens: list[str]
    files: dict[str, bytes]  # path relative to the sink root -> bytes
    snapshots: dict[str, dict[str, object]]


def reference_run(workdir: Path, workload: Workload) -> Reference:
    """Same simulator waves, captured by a listener from their messages, materialized in one
    in-process run of the same multi-asset (Redis and Dagster real, nothing broken)."""
    from superhero_dagster.assets.games import game_assets
    from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
    from superhero_dagster.resources import RedisResource, SinkResource
    from superhero_dagster.sensors.completed_games import RANGE_END_TAG, RANGE_START_TAG

    data = workdir / "data"
    with RedisServer(workdir / "redis") as server:
        settings = Settings(redis_url=server.url, data_dir=data, state_dir=workdir / "state")
        tokens: list[str] = []
        client = connect(server.url, decode_responses=True)
        try:
            with listeners(settings, 1):
                poll(lambda: client.hlen(KEYS.listeners) >= 1, timeout=30, what="listener")
                for wave in range(workload.waves):
                    tokens += run_simulation(server.url, workload.config(wave)).tokens
                poll(
                    lambda: int(client.hget(KEYS.stats, "captured") or 0) >= len(tokens),
                    timeout=60,
                    what="reference captures",
                )
        finally:
            client.close()
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, tokens)
            result = dg.materialize(
                [game_assets],
                instance=instance,
                tags={RANGE_START_TAG: tokens[0], RANGE_END_TAG: tokens[-1]},
                resources={
                    "redis": RedisResource(url=server.url, expire_after_seconds=0),
                    "sink": SinkResource(root=str(data)),
                },
            )
            assert result.success
    files = {
        str(path.relative_to(data)): path.read_bytes()
        for token in tokens
        for path in sink_paths(data, token)[1:]
    }
    snapshots = {t: normalized_snapshot(sink_paths(data, t)[0].read_bytes()) for t in tokens}
    return Reference(tokens, files, snapshots)


@dataclass
class Verdict:
    """What the checks found after a scenario settled (every list empty = pass)."""

    scenario: str
    injections: Counter[str]
    games: int
    seconds: float
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)  # temp files, files of unknown games
    problems: list[str] = field(default_factory=list)
    no_message_time: set[str] = field(default_factory=set)  # see _only_ended_at_of_reconciled
    rewrites: int = 0  # materializations redone by a retry (same bytes; not a duplicate)
    reconciled: int = 0

    def row(self) -> list[str]:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.injections.items()))
        return [
            self.scenario,
            f"{sum(self.injections.values())} ({kinds})",
            str(self.games),
            str(len(self.lost)),
            str(len(self.duplicated)),
            str(self.rewrites),
            str(self.reconciled),
            str(len(self.no_message_time)),
            f"{self.seconds:.0f} s",
        ]

    def assert_clean(self) -> None:
        found = {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "differs from the undisturbed run": self.mismatched,
            "stray files": self.stray,
            "problems": self.problems,
        }
        report = {k: v[:10] for k, v in found.items() if v}
        assert not report, f"{self.scenario}: {json.dumps(report, indent=1)}"


def _rows(path: Path | bytes, suffix: str) -> list[dict[str, object]]:
    if suffix == ".parquet":
        source = pa.BufferReader(path) if isinstance(path, bytes) else path
        return pq.read_table(source).to_pylist()
    return json.loads(path if isinstance(path, bytes) else path.read_bytes())


def _only_ended_at_of_reconciled(sink: Path, path: Path, expected: bytes) -> bool:
    """A game with no attacks takes ``ended_at`` from its 'Cleaning' message. When every listener
    was down and reconcile captured it there is no message, so ``ended_at`` is null: the one
    documented way a disturbed run's file may differ (counted in the table, not hidden)."""
    snap = json.loads(sink_paths(sink, path.stem)[0].read_bytes())
    if snap.get("trigger") != "reconcile" or snap.get("logs"):
        return False
    got, want = _rows(path, path.suffix), _rows(expected, path.suffix)
    return [r | {"ended_at": None} for r in got] == [r | {"ended_at": None} for r in want]


def verify(
    run: FaultRun, ref: Reference, scenario: str, seconds: float, superseded_ok: bool = False
) -> Verdict:
    """Every check of the issue, against the reference run with the same seed.

    Duplicate means: a game captured (buffered) more than once, a second ``games`` partition for it,
    or more than one *successful run group* (a run plus its automatic retries) materializing it. A
    retry that rewrites a game its killed parent had already written is the same unit of work
    finishing, not a duplicate: its identical files replace the old ones atomically; those extra
    materialization events are counted as ``rewrites``. ``superseded_ok``: a run group that failed
    for good (full sink) is allowed when an operator's backfill re-did its games.
    """
    v = Verdict(scenario, run.injections, len(run.tokens), seconds)
    if run.tokens != ref.tokens:
        v.problems.append(f"simulator played other games than the reference ({len(run.tokens)})")
    sink = run.sink
    landed = run.landed()
    v.lost = [t for t in ref.tokens if t not in landed]
    for rel, expected in ref.files.items():
        path = sink / rel
        if path.is_file() and path.read_bytes() != expected:
            if _only_ended_at_of_reconciled(sink, path, expected):
                v.no_message_time.add(path.stem)
            else:
                v.mismatched.append(rel)
    for token in landed:
        if normalized_snapshot(sink_paths(sink, token)[0].read_bytes()) != ref.snapshots[token]:
            v.mismatched.append(f"raw snapshot {token}")
    known = {p for t in ref.tokens for p in sink_paths(sink, t)}
    for path in sink.rglob("*"):
        if path.is_file() and path.parent.name in (*DERIVED, "game_snapshot") and path not in known:
            v.stray.append(str(path.relative_to(sink)))
    v.stray += [str(p.relative_to(sink)) for p in temp_files(sink)]

    stats = run.client.hgetall(KEYS.stats)
    v.reconciled = int(stats.get("reconciled", 0))
    captured = int(stats.get("captured", 0))
    if captured != len(ref.tokens):
        v.problems.append(f"{captured} captures (buffer pushes) for {len(ref.tokens)} games")
    with run.instance() as instance:
        partitions = instance.get_dynamic_partitions("games")
        if sorted(partitions) != sorted(ref.tokens):
            v.problems.append(f"{len(partitions)} partitions for {len(ref.tokens)} games")
        runs = {r.run_id: r for r in instance.get_runs()}
        group_ok: dict[str, bool] = {}
        for r in runs.values():
            # The verdict is about games: compaction, leaderboard and retention runs (idempotent,
            # launched again by their sensor or schedule) are not part of it.
            if not is_game_run(r):
                continue
            root = r.root_run_id or r.run_id
            group_ok[root] = group_ok.get(root, False) or r.status == dg.DagsterRunStatus.SUCCESS
        groups: dict[str, set[str]] = {}
        events = 0
        for asset in DERIVED:
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
            for rec in records:
                events += 1
                r = runs[rec.run_id]
                groups.setdefault(rec.partition_key or "", set()).add(r.root_run_id or r.run_id)
        v.rewrites = events - len(DERIVED) * len(landed)
        v.duplicated = [t for t in ref.tokens if sum(group_ok[g] for g in groups.get(t, ())) > 1]
        failed = [g for g, ok in group_ok.items() if not ok]
        if failed and not superseded_ok:
            v.problems.append(f"run groups that never succeeded: {failed}")
    letters = [json.loads(e) for e in run.client.lrange(KEYS.deadletter, 0, -1)]
    markers = Counter(
        m.group(0) for e in letters if (m := re.search(r"fault-hostile-\d+", e["raw"]))
    )
    if len(letters) != sum(markers.values()):
        v.problems.append(
            f"dead letters for real games: {[e for e in letters if 'fault-hostile-' not in e['raw']][:3]}"
        )
    if dict(markers) != {k: n for k, n in run.hostile_expected.items() if n}:
        v.problems.append(f"dead letters {dict(markers)} != expected {run.hostile_expected}")
    return v


def main(argv: list[str] | None = None) -> int:
    """``simulate``: one wave of a workload; the tokens it played are written to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m tests.fault_harness")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate")
    sim.add_argument("--workload", required=True, help="Workload as JSON")
    sim.add_argument("--wave", type=int, required=True)
    sim.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    config = Workload.from_json(args.workload).config(args.wave)
    summary = run_simulation(Settings.from_env().redis_url or "", config)
    args.out.write_text(json.dumps(summary.tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
