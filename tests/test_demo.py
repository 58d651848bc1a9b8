"""`superhero-dagster demo` as a user runs it: a subprocess in an empty folder, no Redis, no config.

Orphans are found with psutil by what every process the demo starts inherits: its environment
(SUPERHERO_STATE_DIR points into this test's temp folder) or a command line naming the folder.
Each test first proves the probe sees the demo's processes while it runs, so "nothing left" after
it is a real check.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import psutil
import pyarrow.parquet as pq
import pytest
import redis

from superhero_dagster.assets.schedules import AUTOMATION_SENSOR
from superhero_dagster.instance_config import render_instance_yaml
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.redis_server import free_port
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from superhero_dagster.stack import REPO_ROOT, executable
from tests.pipeline_helpers import poll


def demo_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DAGSTER_HOME")}
    env.update(
        SUPERHERO_STATE_DIR=str(tmp / "state"),
        SUPERHERO_DATA_DIR=str(tmp / "data"),
        SUPERHERO_SENSOR_INTERVAL_SECONDS="1",
        **extra,
    )
    return env


class Demo:
    """The demo in a subprocess, its merged output collected line by line by a thread."""

    started: list[Demo] = []  # per-test registry, emptied by the autouse fixture

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        Demo.started.append(self)
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [executable("superhero-dagster"), "demo", *args],
            cwd=tmp,
            env=env or demo_env(tmp),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait(self, timeout: float) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(10)
        return code, "\n".join(self.lines)


@pytest.fixture(autouse=True)
def _stop_demos_of_failed_tests():
    """A failed assertion must not leave a demo (or its children) running for the next tests."""
    yield
    while Demo.started:
        demo = Demo.started.pop()
        if demo.proc.poll() is None:
            demo.proc.send_signal(signal.SIGTERM)
            try:
                demo.proc.wait(60)
            except subprocess.TimeoutExpired:
                demo.proc.kill()
        for leftover in processes_of(demo.tmp):
            with contextlib.suppress(psutil.Error):
                leftover.kill()


def processes_of(tmp: Path) -> list[psutil.Process]:
    """Live processes started for this test's folder (by environment or command line)."""
    marker = str(tmp)
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            # redis-server rewrites its title over argv and environ; it runs in its --dir.
            mine = (
                proc.environ().get("SUPERHERO_STATE_DIR", "").startswith(marker)
                or any(marker in part for part in proc.cmdline())
                or proc.cwd().startswith(marker)
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if mine:
            found.append(proc)
    return found


def assert_nothing_left(tmp: Path) -> None:
    """Processes may take a moment to be reaped by init after the demo exits: poll, then name."""
    try:
        poll(lambda: not processes_of(tmp), timeout=10, interval=0.2, what="no leftovers")
    except AssertionError:
        names = [(p.pid, " ".join(p.cmdline())[:120]) for p in processes_of(tmp)]
        raise AssertionError(f"processes left running: {names}") from None


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), output
    return lines[0]


def test_games_exit_when_done_fills_both_sinks_and_leaves_nothing(tmp_path):
    demo = Demo(tmp_path, "--games", "10", "--exit-when-done", "--port", str(free_port()))
    poll(lambda: demo.saw("Simulating") or demo.proc.poll() is not None, timeout=120, what="start")
    running = processes_of(tmp_path)
    assert len(running) >= 3, running  # redis-server, listener, dagster dev (+ its children)
    code, output = demo.wait(timeout=300)
    assert code == 0, output
    assert "Embedded Redis at redis://127.0.0.1:" in output
    assert "All 10 games are in both sinks." in output
    header = next(line for line in output.splitlines() if line.split()[:1] == ["games"])
    assert header.split() == ["games", "rows", "files", "elapsed", "games/s"]
    values = output.splitlines()[output.splitlines().index(header) + 2].split()
    assert values[0] == "10" and values[2] == "40", output  # 2 assets x (JSON + Parquet) x 10
    sink = SinkRoot(tmp_path / "data")
    tokens = set(sink.tokens(GAME_PODIUM))
    assert len(tokens) == 10 and set(sink.tokens(GAME_METADATA)) == tokens
    assert all(sink.json_path(a, t).is_file() for a in (GAME_PODIUM, GAME_METADATA) for t in tokens)
    # Both assets' rows, read back from the sinks (the podium of a game whose attack log the
    # original clean-up worker deleted first is empty, so the two counts may differ).
    rows = sum(len(sink.read_rows(a, t)) for a in (GAME_METADATA, GAME_PODIUM) for t in tokens)
    assert int(values[1]) == rows
    assert (tmp_path / "state" / "dagster_home" / "dagster.yaml").is_file()
    assert_nothing_left(tmp_path)


def test_two_sigints_stop_every_child_at_once_and_exit_zero(tmp_path):
    # A user's edited instance config is kept (and used), never overwritten.
    home = tmp_path / "state" / "dagster_home"
    home.mkdir(parents=True)
    edited = "# my edit\n" + render_instance_yaml(max_concurrent_runs=1, dagster_home=home)
    (home / "dagster.yaml").write_text(edited)
    demo = Demo(tmp_path, "--port", str(free_port()))  # continuous, like `make demo`
    sink = SinkRoot(tmp_path / "data")
    poll(
        lambda: list(sink.tokens(GAME_PODIUM)) or demo.proc.poll() is not None,
        timeout=180,
        interval=0.2,
        what="a first game in the sinks",
    )
    assert demo.proc.poll() is None, "\n".join(demo.lines)
    running = {" ".join(p.cmdline()) for p in processes_of(tmp_path)}
    assert any("redis-server" in c for c in running), running
    assert any("dagster" in c and " dev " in c for c in running), running
    assert any(" listen " in c for c in running) and any(" simulate " in c for c in running)
    demo.proc.send_signal(signal.SIGINT)
    poll(lambda: demo.saw("SIGINT: stopping"), timeout=30, what="the first SIGINT seen")
    demo.proc.send_signal(signal.SIGINT)  # a second Ctrl-C: no wait for runs
    code, output = demo.wait(timeout=120)
    assert code == 0, output
    assert "SIGINT: stopping every process" in output
    assert "SIGINT again: stopping at once." in output
    assert "Stopped cleanly." in output
    assert f"Dagster instance: keeping your {home / 'dagster.yaml'} (edited, or" in output
    assert "init-instance --force` replaces it" in output
    assert (home / "dagster.yaml").read_text() == edited
    assert_nothing_left(tmp_path)
    data = tmp_path / "data"
    assert not [p for p in data.rglob("*") if p.name.endswith(".tmp")], "half-written file"
    for path in (data / "parquet").rglob("*.parquet"):
        pq.read_table(path)  # every file that exists is whole


def runs_by_status(home: Path) -> dict[str, int]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return dict(Counter(run.status.value for run in instance.get_runs()))


def test_stop_during_a_run_leaves_no_failed_run_and_no_game_behind(tmp_path):
    home = tmp_path / "state" / "dagster_home"
    # A generous --stop-wait: on a shared 2-core machine a batch can take minutes.
    demo = Demo(tmp_path, "--port", str(free_port()), "--rate", "5", "--stop-wait", "300")

    def run_in_progress() -> bool:
        assert demo.proc.poll() is None, "\n".join(demo.lines)
        return runs_by_status(home).get("STARTED", 0) > 0

    # The instance's storage is created by Dagster: read it only once the UI is up.
    poll(lambda: demo.saw("Dagster UI ready") or demo.proc.poll() is not None, timeout=180,
         what="the UI")  # fmt: skip
    poll(run_in_progress, timeout=240, interval=0.2, what="a run in progress")
    demo.proc.send_signal(signal.SIGINT)
    code, output = demo.wait(timeout=240)
    assert code == 0, output
    assert "Sensors stopped: " in output and "completed_games_sensor" in output, output
    # No "Waiting up to 300 s" assertion: a one-game run may end while the sensors are being
    # stopped; the wait itself is pinned by test_the_stop_waits_for_a_run_until_it_ends.
    assert "Stopped cleanly." in output
    statuses = runs_by_status(home)
    assert statuses.get("SUCCESS", 0) >= 1, statuses
    assert set(statuses) == {"SUCCESS"}, statuses  # no FAILURE, nothing queued or cut short
    # Every game the sensor took from the buffer became a partition and was materialized.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        requested = set(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME))
        sensors = {
            state.name: state.status.value
            for state in instance.all_instigator_state()
            if state.name in ("completed_games_sensor", AUTOMATION_SENSOR)
        }
    sink = SinkRoot(tmp_path / "data")
    assert requested
    for asset in (GAME_PODIUM, GAME_METADATA):
        assert requested <= set(sink.tokens(asset)), asset
    # The sensors the stop paused are back to their status in code (running by default).
    assert sensors and "STOPPED" not in sensors.values(), sensors
    assert "Sensors reset to their default status" in output
    assert_nothing_left(tmp_path)


def test_the_stop_waits_for_a_run_until_it_ends():
    """The stop's drain against a real instance: it reports the unfinished run, keeps polling
    while it is in progress, and returns once the run has ended."""
    from dagster._core.storage.dagster_run import DagsterRunStatus

    from superhero_dagster.demo_stop import wait_for_runs

    reported: list[int] = []
    with dg.DagsterInstance.ephemeral() as instance:
        run = instance.add_run(dg.DagsterRun(job_name="batch", status=DagsterRunStatus.STARTED))

        def report(n: int) -> None:
            reported.append(n)
            # Ends the run only after the drain has seen it (a thread: the drain polls meanwhile).
            threading.Thread(target=instance.report_run_canceled, args=(run,)).start()

        left = wait_for_runs(instance, timeout=60, now=threading.Event(), report=report)
        assert (reported, left) == ([1], 0)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED
        # Nothing in flight: returns at once, without a report.
        assert wait_for_runs(instance, timeout=60, now=threading.Event(), report=report) == 0
        assert reported == [1]


def test_port_in_use_is_one_line_and_starts_nothing(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output = Demo(tmp_path, "--port", str(port)).wait(timeout=60)
    assert code == 1
    line = one_error_line(output)
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line
    assert not (tmp_path / "state").exists(), "something was started or written"
    assert_nothing_left(tmp_path)


def test_unreachable_redis_url_is_one_line_without_password(tmp_path):
    port = free_port()
    url = f"redis://demo:s3cret-pw@127.0.0.1:{port}/0"
    env = demo_env(tmp_path, REDIS_URL=url)
    code, output = Demo(tmp_path, "--port", str(free_port()), env=env).wait(timeout=60)
    assert code == 1
    line = one_error_line(output)
    assert f"redis://demo:***@127.0.0.1:{port}/0" in line, line
    assert "unset REDIS_URL to start the embedded server" in line, line
    assert "s3cret-pw" not in output
    assert not (tmp_path / "state" / "dagster_home").exists()
    assert_nothing_left(tmp_path)


def test_missing_dagster_executable_is_one_line(tmp_path):
    """An interpreter with the project importable but no console scripts next to it or on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.symlink_to(Path(sys.executable).resolve())
    site = next(p for p in sys.path if p.endswith("site-packages") and ".venv" in p)
    env = demo_env(tmp_path, PATH=f"{bin_dir}:/usr/bin:/bin", PYTHONPATH=f"{REPO_ROOT}:{site}")
    if any(Path(d, "dagster").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("a system-wide dagster is on PATH")
    proc = subprocess.run(
        [str(python), "-c", "from superhero_dagster.cli import main; main()", "demo",
         "--port", str(free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = one_error_line(proc.stdout + proc.stderr)
    assert "`dagster` executable not found" in line and str(bin_dir) in line
    assert not (tmp_path / "state").exists()
    assert_nothing_left(tmp_path)


def test_live_line_counts_this_session_and_leaves_requested_entries_out(r, redis_url, tmp_path):
    """After a restart: games of an earlier session materialized now are shown apart, the games
    simulated are this session's (the simulator's live token file, since the original worker
    empties games:participants), and the buffer leaves out the entries the sensor has requested
    but not trimmed yet."""
    from superhero_dagster import keys
    from superhero_dagster.demo_progress import Session
    from superhero_dagster.keys import ProjectKeys

    project = ProjectKeys()
    client = redis.Redis.from_url(redis_url)  # bytes replies, as the demo's client
    old = [str(uuid.UUID(int=i)) for i in range(1, 4)]  # an earlier session's games
    for t in old:
        r.zadd(keys.GAMES_PARTICIPANTS, {t: 2})
    r.zadd(project.materialized, {old[0]: 1.0})  # one of them was materialized back then
    r.hincrby(project.stats, "materialized", 1)
    played = tmp_path / "simulated-tokens.txt"
    session = Session(client, project, played)
    first = session.read()
    assert first.line().split("|")[2].split() == ["materialized", "0"]
    assert first.simulated == 0
    new = [str(uuid.UUID(int=i)) for i in range(10, 12)]
    played.write_text("".join(f"{t}\n" for t in new))  # the simulator appends as it plays
    r.zadd(project.materialized, dict.fromkeys([old[1], *new], 2.0))  # leftover + both new land
    r.hincrby(project.stats, "materialized", 3)
    r.rpush(project.buffer, *[str(uuid.UUID(int=i)) for i in range(20, 25)])
    counts = session.read(requested=3)
    assert (counts.simulated, counts.materialized, counts.earlier) == (2, 2, 1)
    assert counts.buffer_depth == 2
    assert "materialized      2 (+1 earlier)" in counts.line()
    assert session.read(requested=5).buffer_depth == 0  # idle: everything requested
    client.close()


@pytest.mark.slow
def test_demo_from_a_pip_installed_wheel_outside_the_checkout(tmp_path):
    """A wheel of the project in a fresh venv, run from an empty folder: no checkout, no
    workspace.yaml. Dependencies come from this venv's site-packages (a .pth file) to keep the
    test fast; dagster's own console scripts are installed into the fresh venv (no deps)."""
    import importlib.metadata as md

    dist, venv, run = tmp_path / "dist", tmp_path / "venv", tmp_path / "run"
    run.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # From a copy of the sources: setuptools' build/ folder stays out of the checkout.
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(".*", "build", "data", "tests", "benchmarks", "*.egg-info",
                                  "__pycache__", "compose")  # fmt: skip
    shutil.copytree(REPO_ROOT, src, ignore=skip)
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(src)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = dist.glob("superhero_dagster-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    scripts = [
        f"dagster=={md.version('dagster')}",
        f"dagster-webserver=={md.version('dagster-webserver')}",
    ]
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "-q", "install", "--no-deps",
                    str(wheel), *scripts], check=True, capture_output=True, timeout=300)  # fmt: skip
    # Only now (pip would otherwise see dagster as installed and skip its scripts).
    site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (next((venv / "lib").glob("python3*/site-packages")) / "deps.pth").write_text(site + "\n")
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import superhero_dagster; print(superhero_dagster.__file__)",
        ],
        cwd=run,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(venv)), where  # the wheel's copy, not the checkout

    env = demo_env(run)
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    proc = subprocess.Popen(
        [str(venv / "bin" / "superhero-dagster"), "demo", "--port", str(free_port())],
        cwd=run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    demo = Demo.__new__(Demo)  # the same reader, around this process
    demo.tmp, demo.lines, demo.proc = run, [], proc
    Demo.started.append(demo)
    demo._reader = threading.Thread(target=demo._read, daemon=True)
    demo._reader.start()
    poll(lambda: demo.saw("Dagster UI ready") or proc.poll() is not None, timeout=240,
         what="the UI of the pip-installed demo")  # fmt: skip
    assert proc.poll() is None, "\n".join(demo.lines)
    sink = SinkRoot(run / "data")
    poll(lambda: list(sink.tokens(GAME_PODIUM)) or proc.poll() is not None, timeout=180,
         what="a first game in the sinks")  # fmt: skip
    proc.send_signal(signal.SIGINT)
    code, output = demo.wait(timeout=180)
    assert code == 0, output
    assert "Stopped cleanly." in output
    assert (run / "state" / "workspace.yaml").is_file()
    assert_nothing_left(run)
