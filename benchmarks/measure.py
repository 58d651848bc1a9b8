"""Sampling CPU and memory of a group of processes, and reading latencies off the sinks.

CPU is sampled (psutil) every ``interval`` seconds per process and the last reading kept per pid,
so a run worker's CPU is counted up to its last sample before it exits: the figure is a slight
under-estimate for short-lived processes, the same way for every variant.
"""

from __future__ import annotations

import json
import statistics
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot


def role(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if "multiprocessing.forkserver" in cmd:  # the fork server and the run workers it forks
        try:
            up = proc.parent()
            parent = " ".join(up.cmdline()) if up else ""
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            parent = ""
        return "run worker" if "multiprocessing.forkserver" in parent else "fork server"
    for needle, name in (
        ("execute_run", "run worker"),
        ("multiprocessing.spawn", "run worker"),  # spawned by the code server (Dagster's default)
        ("api grpc", "code server"),
        ("code-server", "code server"),
        ("dagster-daemon", "daemon"),
        ("daemon run", "daemon"),  # superhero-dagster daemon run
        ("dagster-webserver", "webserver"),
        ("dagster dev", "dagster dev"),
        (" listen", "listener"),
        ("redis-server", "redis"),
        ("simulate", "simulator"),
    ):
        if needle in cmd:
            return name
    return "other"


@dataclass
class Sampler:
    """Samples the process trees rooted at ``roots`` (pids) plus ``include_self``."""

    roots: list[int]
    include_self: bool = False
    interval: float = 0.2
    cpu: dict[int, float] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _procs(self) -> list[psutil.Process]:
        out: list[psutil.Process] = []
        pids = list(self.roots) + ([psutil.Process().pid] if self.include_self else [])
        for pid in pids:
            try:
                root = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
            out.append(root)
            if pid != psutil.Process().pid:
                out.extend(root.children(recursive=True))
        return out

    def sample(self) -> None:
        for proc in self._procs():
            try:
                times = proc.cpu_times()
                rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if proc.pid not in self.roles:
                self.roles[proc.pid] = role(proc)
            r = self.roles[proc.pid]
            if r in ("redis", "simulator"):
                continue  # load generator and broker: not the pipeline's cost
            self.cpu[proc.pid] = times.user + times.system
            self.peak_rss[r] = max(self.peak_rss.get(r, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


def landed(sink: SinkRoot) -> set[str]:
    return set(sink.tokens(GAME_METADATA)) & set(sink.tokens(GAME_PODIUM))


def timings(sink: SinkRoot, tokens: list[str]) -> list[tuple[float, float]]:
    """(message sent, both sink files written) epoch seconds per game.

    Games captured by a reconcile pass before their message arrived carry no message time and
    are left out (they are counted as landed, not timed).
    """
    out = []
    for token in tokens:
        sent = message_sent(json.loads(sink.read_raw_snapshot(token)))
        if sent is not None:
            out.append((sent, written_at(sink, token)))
    return out


def message_sent(doc: dict) -> float | None:
    """Epoch seconds of the game's 'Cleaning' message (naive UTC in the raw snapshot)."""
    stamp = doc.get("message_timestamp")
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp() if stamp else None


def written_at(sink: SinkRoot, token: str) -> float:
    """When both per-game Parquet files were on disk (the later mtime)."""
    return max(
        Path(sink.parquet_path(asset, token)).stat().st_mtime
        for asset in (GAME_METADATA, GAME_PODIUM)
    )


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    q = (
        statistics.quantiles(ordered, n=100, method="inclusive")
        if len(ordered) > 1
        else ordered * 99
    )
    return {"p50": q[49], "p95": q[94], "max": ordered[-1]}
