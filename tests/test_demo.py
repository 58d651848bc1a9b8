"""`superhero-dagster demo` as a user runs it: a subprocess in an empty folder, no Redis, no config.

Orphans are found with psutil by what every process the demo starts inherits: its environment
(SUPERHERO_STATE_DIR points into this test's temp folder) or a command line naming the folder.
Each test first proves the probe sees the demo's processes while it runs, so "nothing left" after
it is a real check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from superhero_dagster.instance_config import render_instance_yaml
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
    rows = sum(len(sink.read_rows(GAME_METADATA, t)) for t in tokens)
    assert int(values[1]) == 2 * rows  # podium and metadata: one row per participant each
    assert (tmp_path / "state" / "dagster_home" / "dagster.yaml").is_file()
    assert_nothing_left(tmp_path)


def test_sigint_mid_run_stops_every_child_and_exits_zero(tmp_path):
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
    code, output = demo.wait(timeout=120)
    assert code == 0, output
    assert "SIGINT: stopping every process" in output
    assert "Stopped cleanly." in output
    assert f"Dagster instance: keeping your {home / 'dagster.yaml'} (edited)" in output
    assert (home / "dagster.yaml").read_text() == edited
    assert_nothing_left(tmp_path)
    data = tmp_path / "data"
    assert not [p for p in data.rglob("*") if p.name.endswith(".tmp")], "half-written file"
    for path in (data / "parquet").rglob("*.parquet"):
        pq.read_table(path)  # every file that exists is whole


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
