"""Run workers forked from a process that has Dagster and the project already imported.

Why: Dagster's code server starts every run in a new interpreter
(``multiprocessing.get_context("spawn")`` in ``dagster._grpc.server.DagsterApiServer``, not
configurable). That child imports Dagster, its CLI and the code location again before the run's
first event, paid once per run however few games it holds: forking instead took a lone game's
'Cleaning' → sinks from p50 3.05 to 2.51 s (README, "Throughput", "Forked run workers"). Python's ``forkserver`` start method
keeps one clean, single-threaded process with those modules imported and forks each run from
it, so a run starts with everything loaded. It is still a fresh process per run (no state shared
between runs, a crash kills only its run, run termination and the event queue unchanged); the
fork server is a child of the code server and goes with it, so a code reload (a new server) also
forks from newly imported code.

Two halves, both on Dagster's private names, both checked at start (a clear error, never a
silent fallback) and pinned by ``tests/test_forked_runs.py``:

- :func:`fork_run_workers`, in the gRPC code server: after ``DagsterApiServer`` is built, its
  spawn context is replaced by a fork-server one with :data:`PRELOAD` imported.
  ``python -m superhero_dagster.forked_runs`` is ``python -m dagster`` with that applied.
- :func:`spawn_forked_code_servers`, in a process that starts code servers (the daemon for a
  ``python_module`` workspace, ``superhero-dagster code-server start`` in compose): the servers
  it spawns run that module instead of ``-m dagster``; same arguments.

``SUPERHERO_FORK_RUN_WORKERS=false`` makes ``superhero-dagster daemon`` and ``code-server``
leave Dagster as it is (they apply nothing), so every server they start spawns its runs.

Importing the preloaded modules has no side effects (no connections, no env reads, no threads),
which is what makes importing them once for every run safe.
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
from collections.abc import Sequence
from typing import Any

from superhero_dagster.cli import CliError

#: Imported once in the fork server: Dagster, its CLI (a spawned worker re-imports it as its
#: ``__main__``), its run path and storages (found by py-spy in the workers' imports), redis-py. Not the code location: its sinks import pyarrow,
#: whose import starts threads (jemalloc's, numpy's BLAS), and a process that forks must have
#: one thread or a child can inherit a lock held by a thread it does not have.
#: ``tests/test_forked_runs.py`` checks the fork server is single-threaded.
PRELOAD: tuple[str, ...] = (
    "dagster",
    "dagster._cli",
    "dagster._grpc.impl",
    "dagster._core.execution.api",
    "dagster._core.storage.event_log.sql_event_log",
    "dagster._core.storage.runs",
    "dagster._core.storage.schedules",
    "dagster_postgres",
    "upath",
    "redis",
)

_SERVER_MODULE = "dagster._grpc.server"
_SERVER_CLASS = "DagsterApiServer"
_ENTRY_POINT = "get_python_environment_entry_point"
_MARK = "_superhero_forked_runs"
MODULE = "superhero_dagster.forked_runs"


class ForkedRunsError(CliError):
    """Dagster's internals no longer look as this module expects (one line from the CLI)."""


def _refuse(problem: str) -> ForkedRunsError:
    return ForkedRunsError(
        f"{problem}; set SUPERHERO_FORK_RUN_WORKERS=false to start runs as Dagster does"
    )


def _server_name(name: str) -> tuple[Any, Any]:
    """Dagster's server module and its attribute ``name``, or a refusal naming the way out."""
    server = importlib.import_module(_SERVER_MODULE)
    value = getattr(server, name, None)
    if value is None:
        raise _refuse(f"{_SERVER_MODULE}.{name} is not there in this Dagster version")
    return server, value


def fork_run_workers(preload: Sequence[str] = PRELOAD) -> None:
    """Make every ``DagsterApiServer`` of this process fork its runs from a preloaded server."""
    _, cls = _server_name(_SERVER_CLASS)
    original = cls.__init__
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        context = getattr(self, "_mp_ctx", None)
        if context is None or context.get_start_method() != "spawn":
            raise _refuse(f"{_SERVER_CLASS} no longer starts runs from a spawn context in _mp_ctx")
        forkserver = multiprocessing.get_context("forkserver")
        forkserver.set_forkserver_preload(list(preload))
        self._mp_ctx = forkserver

    setattr(__init__, _MARK, True)
    cls.__init__ = __init__


def spawn_forked_code_servers() -> None:
    """Make the code servers this process starts run :data:`MODULE` instead of ``-m dagster``."""
    server, original = _server_name(_ENTRY_POINT)
    if getattr(original, _MARK, False):
        return
    probe = list(original("python"))
    if probe != ["python", "-m", "dagster"]:
        raise _refuse(
            f"{_SERVER_MODULE}.{_ENTRY_POINT} returns {probe!r}, not [python, -m, dagster]"
        )

    def entry_point(executable_path: str) -> list[str]:
        return [executable_path, "-m", MODULE]

    setattr(entry_point, _MARK, True)
    setattr(server, _ENTRY_POINT, entry_point)


def enable() -> None:
    """Both halves: servers of this process fork their runs, servers it starts run this module."""
    fork_run_workers()
    spawn_forked_code_servers()


def main() -> None:
    """``python -m dagster``, with run workers forked (the code servers' command)."""
    enable()
    from dagster._cli import main as dagster_main

    dagster_main()


if __name__ == "__main__":
    main()
