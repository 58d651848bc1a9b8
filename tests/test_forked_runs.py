"""Run workers forked from a preloaded fork server (superhero_dagster/forked_runs.py).

Both halves patch Dagster's private names, so these tests fail loudly when an upgrade moves them:
the unit tests pin the names and the refusals, and the end-to-end test starts the real
`superhero-dagster daemon` on a real instance and reads, from inside the run, who forked it.
That games land correctly through forked workers is what test_daemon_e2e.py and the fault suite
check: they start the daemon through the same command, forking on by default.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import signal
import subprocess
from pathlib import Path

import pytest

from superhero_dagster import forked_runs
from superhero_dagster.forked_runs import ForkedRunsError
from superhero_dagster.stack import executable
from tests.listener_helpers import poll_until

TESTS = Path(__file__).resolve().parent
SERVER = importlib.import_module("dagster._grpc.server")


def test_dagsters_server_starts_runs_from_a_spawn_context_in_mp_ctx() -> None:
    source = Path(SERVER.__file__).read_text()
    assert 'self._mp_ctx = multiprocessing.get_context("spawn")' in source
    assert "execution_process = self._mp_ctx.Process(" in source
    assert SERVER.get_python_environment_entry_point("py") == ["py", "-m", "dagster"]
    # open_server_process looks the entry point up in its module at call time.
    assert "entrypoint = get_python_environment_entry_point(" in source


def test_code_servers_are_spawned_as_this_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        SERVER, "get_python_environment_entry_point", SERVER.get_python_environment_entry_point
    )
    forked_runs.spawn_forked_code_servers()
    forked_runs.spawn_forked_code_servers()  # idempotent
    assert SERVER.get_python_environment_entry_point("/venv/python") == [
        "/venv/python",
        "-m",
        "superhero_dagster.forked_runs",
    ]


def test_the_server_class_gets_a_preloaded_forkserver(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeServer:  # stands in for DagsterApiServer's constructor only
        def __init__(self) -> None:
            self._mp_ctx = multiprocessing.get_context("spawn")

    monkeypatch.setattr(SERVER, "DagsterApiServer", FakeServer)
    forked_runs.fork_run_workers(preload=("json",))
    forked_runs.fork_run_workers(preload=("json",))  # idempotent
    assert FakeServer()._mp_ctx.get_start_method() == "forkserver"


def test_a_changed_dagster_is_refused_with_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoSpawn:
        def __init__(self) -> None:
            self._mp_ctx = None

    monkeypatch.setattr(SERVER, "DagsterApiServer", NoSpawn)
    forked_runs.fork_run_workers()
    with pytest.raises(ForkedRunsError, match="SUPERHERO_FORK_RUN_WORKERS=false"):
        NoSpawn()
    monkeypatch.setattr(SERVER, "get_python_environment_entry_point", lambda exe: [exe, "-m", "x"])
    with pytest.raises(ForkedRunsError, match="SUPERHERO_FORK_RUN_WORKERS=false"):
        forked_runs.spawn_forked_code_servers()
    monkeypatch.delattr(SERVER, "DagsterApiServer")
    with pytest.raises(ForkedRunsError, match="not there in this Dagster version"):
        forked_runs.fork_run_workers()


def probe_run(tmp_path: Path, fork: bool) -> dict[str, object]:
    """Start the real daemon on a fresh instance and return what the probe run recorded."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        f"      module_name: tests.forked_probe_location\n      working_directory: {TESTS.parent}\n"
    )
    out = tmp_path / "probe.json"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FORKED_PROBE_OUT": str(out),
        "SUPERHERO_FORK_RUN_WORKERS": "true" if fork else "false",
    }
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [executable("superhero-dagster"), "daemon", "run", "-w", str(workspace)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        poll_until(lambda: out.is_file() and out.read_text(), timeout=180, interval=0.2)
        return json.loads(out.read_text())
    except AssertionError:
        log.flush()
        raise AssertionError((tmp_path / "daemon.log").read_text()[-3000:]) from None
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()


@pytest.mark.slow
def test_the_daemons_runs_are_forked_from_the_preloaded_server(tmp_path: Path) -> None:
    record = probe_run(tmp_path, fork=True)
    assert "multiprocessing.forkserver" in record["parent"]
    assert record["preloaded"] is True
    assert record["parent_threads"] == 1  # what makes forking from it safe


@pytest.mark.slow
def test_switched_off_runs_are_spawned_as_dagster_does(tmp_path: Path) -> None:
    record = probe_run(tmp_path, fork=False)
    assert "-m dagster api grpc" in record["parent"]
    assert record["preloaded"] is False
