"""The processes of a one-machine deployment, started and stopped as a unit.

Used by ``superhero-dagster demo``, the benchmarks and the fault-injection tests, so all three run
the system exactly as a user would (real ``dagster-daemon``/``dagster dev``, real listeners), and
all three clean up the same way: every child gets its own process group, so stopping it also stops
what it spawned (Dagster's code server and run workers), and nothing is left orphaned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from superhero_dagster.children import die_with_parent_hook, signal_group
from superhero_dagster.files import atomic_write
from superhero_dagster.settings import Settings

#: What the daemon needs to be fast: at run creation it writes one "planned" event per partition
#: per asset (1,500 for a 500-game batch, ~10 ms each on SQLite) unless this is set, in which case
#: it writes one per asset. Trade-off (Dagster's): a game of a failed run is then not shown as
#: "failed" in the partitions view; the run's failure message and the checks still name it.
#:
#: DAGSTER_EVENT_BATCH_SIZE: read where runs execute (run workers inherit it from the daemon or
#: `dagster dev` through the code server). With it, the materializations of one asset over a run's
#: partitions reach the event log as batches of up to this many events, which the project's SQLite
#: storage and dagster-postgres write in one go (~1.5 ms instead of ~30 ms per game); 1,000 covers
#: a whole 500-game batch run in one write per asset.
EVENT_BATCH_ENV = {"DAGSTER_EVENT_BATCH_SIZE": "1000"}
DAGSTER_TUNING_ENV = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1", **EVENT_BATCH_ENV}

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The code location as the children load it: the installed module, so a plain ``pip install``
#: works (no checkout, no repository ``workspace.yaml``); the location keeps the name the
#: repository's workspace.yaml gives it, so run history and sensor state carry over.
LOCATION_NAME = "superhero_dagster"
DEFINITIONS_MODULE = "superhero_dagster.definitions"
WORKSPACE_YAML = f"""# Written by superhero-dagster (stack.py) for the processes it starts.
load_from:
  - python_module:
      module_name: {DEFINITIONS_MODULE}
      location_name: {LOCATION_NAME}
"""
#: Processes stopped last, after ``drain``: the orchestrator and what it runs.
ORCHESTRATORS = ("dagster", "daemon")


def executable(name: str) -> str:
    """A console script installed next to this interpreter (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Stack:
    """Named child processes sharing one Settings-derived environment."""

    settings: Settings
    log_dir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The parent's environment plus the settings, so children read the same configuration."""
        return {**os.environ, **DAGSTER_TUNING_ENV, **self.settings.to_env(), **self.extra_env}

    def workspace(self) -> Path:
        """The workspace file of the children (in the state folder, rewritten on every start)."""
        path = self.settings.state_dir / "workspace.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != WORKSPACE_YAML:
            atomic_write(path, WORKSPACE_YAML.encode())
        return path.resolve()

    def start(
        self, name: str, argv: Sequence[str], *, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self._logs.get(name) or open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        self._logs[name] = log
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),
        )
        self.processes[name] = proc
        return proc

    # -- the parts --------------------------------------------------------------------------
    def start_daemon(self) -> subprocess.Popen[bytes]:
        argv = [executable("superhero-dagster"), "daemon", "run", "-w", str(self.workspace())]
        return self.start("daemon", argv)

    def start_dev(self, port: int) -> subprocess.Popen[bytes]:
        argv = [
            executable("dagster"),
            "dev",
            "-w",
            str(self.workspace()),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
        return self.start("dagster", argv)

    def start_listener(self, index: int = 0) -> subprocess.Popen[bytes]:
        name = f"listener-{index}"
        return self.start(name, [executable("superhero-dagster"), "listen", "--id", name])

    def start_simulator(
        self, args: Sequence[str], name: str = "simulator"
    ) -> subprocess.Popen[bytes]:
        return self.start(name, [executable("superhero-dagster"), "simulate", *args])

    # -- control ----------------------------------------------------------------------------
    def alive(self, name: str) -> bool:
        proc = self.processes.get(name)
        return proc is not None and proc.poll() is None

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group, as a crash would."""
        proc = self.processes.get(name)
        if proc is not None and proc.poll() is None:
            signal_group(proc, signal.SIGKILL)
            proc.wait()

    def stop(self, name: str, timeout: float = 20.0) -> int | None:
        """SIGTERM the group, then SIGKILL whatever is left after ``timeout``."""
        proc = self.processes.get(name)
        if proc is None:
            return None
        if proc.poll() is None:
            signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                signal_group(proc, signal.SIGKILL)
                proc.wait()
        # Children that outlived their parent (run workers) still belong to the group.
        signal_group(proc, signal.SIGKILL)
        return proc.returncode

    def stop_all(self, timeout: float = 20.0, *, drain: Callable[[], None] | None = None) -> None:
        """Producers first (simulators), then consumers (listeners), then ``drain()`` (e.g. wait
        for Dagster's runs), then the orchestrator (``dagster dev`` / the daemon)."""
        order = sorted(self.processes, key=lambda n: (not n.startswith("sim"), n in ORCHESTRATORS))
        for name in order:
            if drain is not None and name in ORCHESTRATORS:
                drain()
                drain = None
            self.stop(name, timeout)
        for log in self._logs.values():
            log.close()
        self._logs.clear()

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_until(condition, timeout: float, interval: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until true or ``timeout``; True if it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
