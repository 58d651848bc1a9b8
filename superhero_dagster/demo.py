"""``superhero-dagster demo`` (what ``make demo`` runs): the whole system on one machine.

Why it is shaped like this:

* **Check, then start.** Everything a user can get wrong (port taken, no ``dagster`` executable,
  unreachable ``REDIS_URL``) is checked before the first process starts, so
  an error is one line and leaves nothing running.
* **Children in their own process groups** (:class:`~superhero_dagster.stack.Stack`): the
  terminal's Ctrl-C reaches only this process, which then stops Dagster's sensors, the producers
  (simulator), the consumers (listeners), waits for Dagster's runs to finish
  (:mod:`~superhero_dagster.demo_stop`: no run is left FAILED), then stops ``dagster dev`` with
  everything it spawned, and the embedded Redis last, so nothing is orphaned and the AOF is
  flushed. The sinks write atomically, so stopping at any moment leaves no half-written file.
* **No checkout needed**: the code location is loaded as the installed module
  ``superhero_dagster.definitions``, so ``pip install`` then ``superhero-dagster demo`` works.
* **A user-requested stop is a success.** SIGINT/SIGTERM end the demo with exit code 0: Ctrl-C is
  the normal way to end ``make demo``, and make would otherwise report "Error 130".
"""

from __future__ import annotations

import contextlib
import errno
import json
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import redis

from superhero_dagster.cli import CliError, load_settings
from superhero_dagster.demo_progress import (
    Progress,
    Session,
    missing_from_sinks,
    requested_not_trimmed,
    summarize,
)
from superhero_dagster.demo_stop import STOP_WAIT_SECONDS, restore_sensors, stop_stack
from superhero_dagster.instance_config import InstanceConfigConflict, write_instance_yaml
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_client import RedisUnavailable, connect
from superhero_dagster.redis_server import RedisServer, RedisServerError
from superhero_dagster.settings import Settings, redact_url
from superhero_dagster.sinks import SinkRoot
from superhero_dagster.stack import Stack, executable

#: Games/s of the continuous demo: lively in the UI, light on a laptop.
DEFAULT_RATE = 2.0
TICK_SECONDS = 1.0
PLAIN_PROGRESS_SECONDS = 5.0  # progress line period when stdout is not a terminal
LISTENER_START_TIMEOUT = 60.0


def check_port_free(port: int) -> None:
    """Bind the port as the webserver will (SO_REUSEADDR, 127.0.0.1); CliError if taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise CliError(
                f"port {port} on 127.0.0.1 is {why}; choose another with --port"
            ) from None


def require_executable(name: str) -> str:
    """The console script as the Stack will run it, or CliError naming where we looked."""
    found = executable(name)
    if Path(found).is_absolute() or shutil.which(found):
        return found
    raise CliError(
        f"`{name}` executable not found (looked in {Path(sys.executable).parent} and on PATH); "
        "install the project with `make install`"
    )


#: Ctrl-C, `kill`, and a closed terminal all mean "stop everything cleanly".
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals(stop: threading.Event, now: threading.Event) -> Iterator[None]:
    """The first SIGINT/SIGTERM/SIGHUP sets ``stop`` (a clean stop), a second one sets ``now``
    (skip the wait for runs); both print once instead of raising mid-cleanup."""

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            stop.set()
            text = f"\n{name}: stopping every process..."
        elif not now.is_set():
            now.set()
            text = f"\n{name} again: stopping at once."
        else:
            return
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            click.echo(text, err=True)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def redis_for_demo(settings: Settings) -> Iterator[str]:
    """The user's REDIS_URL (checked now) or an embedded server that stops after everything."""
    if settings.redis_url:
        try:
            connect(settings.redis_url).close()
        except RedisUnavailable as exc:
            raise CliError(f"{exc} (unset REDIS_URL to start the embedded server)") from None
        yield settings.redis_url
        return
    server = RedisServer(data_dir=settings.state_dir / "redis")
    try:
        server.start()
    except RedisServerError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"Embedded Redis at {server.url} (data in {server.data_dir.resolve()})")
    try:
        yield server.url
    finally:
        server.stop()


def prepare_instance(settings: Settings) -> Path:
    home = settings.resolved_dagster_home
    try:
        path = write_instance_yaml(home, max_concurrent_runs=settings.max_concurrent_runs)
        click.echo(f"Dagster instance: {path.resolve()}")
    except InstanceConfigConflict:
        click.echo(
            f"Dagster instance: keeping your {(home / 'dagster.yaml').resolve()} (edited, or "
            "written by an older version; `superhero-dagster init-instance --force` replaces it "
            "and keeps a .bak)"
        )
    return home


def say(text: str) -> None:
    """A stderr line that never raises: output may be a closed pipe or terminal by now."""
    with contextlib.suppress(OSError):
        click.echo(text, err=True)


def ui_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


class Demo:
    """One run of the demo: the stack, the Redis client, the live progress."""

    def __init__(self, settings: Settings, stack: Stack, stop: threading.Event, port: int) -> None:
        self.settings, self.stack, self.stop, self.port = settings, stack, stop, port
        self.url = f"http://127.0.0.1:{port}"
        self.project = ProjectKeys(settings.namespace)
        self.sink = SinkRoot(settings.data_dir)
        assert settings.redis_url
        self.client = connect(settings.redis_url)
        self._instance: Any = None  # the Dagster instance, opened once the UI is up

    def check_children(self, *, simulator_may_exit: bool) -> None:
        for name, proc in self.stack.processes.items():
            code = proc.poll()
            if code is None or (name == "simulator" and simulator_may_exit and code == 0):
                continue
            log = (self.stack.log_dir / f"{name}.log").resolve()
            raise CliError(f"{name} exited with code {code}; see {log}")

    def wait_listeners(self, count: int) -> None:
        pids = {self.stack.processes[f"listener-{i}"].pid for i in range(count)}
        deadline = time.monotonic() + LISTENER_START_TIMEOUT
        while not self.stop.is_set():
            self.check_children(simulator_may_exit=False)
            beats = self.client.hvals(self.project.listeners)
            if pids <= {_pid(b) for b in beats}:
                return
            if time.monotonic() > deadline:
                raise CliError(f"listeners did not start within {LISTENER_START_TIMEOUT:.0f}s")
            self.stop.wait(0.2)

    def requested(self) -> int:
        """Buffer entries the sensor already requested (0 until Dagster's storage exists)."""
        import dagster as dg

        from superhero_dagster.sensors.completed_games import SENSOR_NAME

        home = self.settings.resolved_dagster_home
        try:
            if self._instance is None:
                self._instance = dg.DagsterInstance.from_config(str(home))
            return requested_not_trimmed(self._instance, SENSOR_NAME)
        except Exception:  # storage still being created: show the raw depth
            return 0

    def run(self, games: int, rate: float | None, exit_when_done: bool, listeners: int) -> None:
        played = self.stack.log_dir / "simulated-tokens.txt"
        played.unlink(missing_ok=True)
        session = Session(self.client, self.project, played)
        for i in range(listeners):
            self.stack.start_listener(i)
        self.stack.start_dev(self.port)
        click.echo(f"Dagster UI (starting): {self.url}")
        self.wait_listeners(listeners)
        if self.stop.is_set():
            return
        args = ["--games", str(games)] + (["--rate", str(rate)] if rate else [])
        # The original clean-up worker drops finished games from games:participants: the
        # simulator names its games, live, in a file instead (the live line counts its lines).
        args += ["--tokens-out", str(played.resolve())]
        self.stack.start_simulator(args)
        started = time.monotonic()
        click.echo(
            f"Simulating {games or 'games until Ctrl-C'}"
            + (f" at {rate:g} games/s" if rate else "")
            + f"; logs in {self.stack.log_dir.resolve()}"
        )
        progress = Progress(sys.stdout.isatty(), PLAIN_PROGRESS_SECONDS)
        shown_url = False
        while not self.stop.wait(TICK_SECONDS):
            self.check_children(simulator_may_exit=bool(games))
            if not shown_url and ui_up(self.url):
                shown_url = True
                progress.message(f"Dagster UI ready: {self.url}  (Ctrl-C stops everything)")
            progress.show(session.read(self.requested() if shown_url else 0))
            if exit_when_done and not self.stack.alive("simulator"):
                mine = set(played.read_text().split()) if played.is_file() else set()
                if len(mine) >= games and not missing_from_sinks(self.sink, mine):
                    progress.done()
                    click.echo(f"All {len(mine)} games are in both sinks.")
                    click.echo(summarize(self.sink, mine, started).table())
                    return
        progress.done()

    def close(self) -> None:
        self.client.close()
        if self._instance is not None:
            self._instance.dispose()


def _pid(beat: bytes | str) -> int | None:
    try:
        value = json.loads(beat)
        return int(value["pid"])
    except (ValueError, KeyError, TypeError):
        return None


@click.command("demo")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True,
              help="Port of the Dagster UI on 127.0.0.1.")  # fmt: skip
@click.option("--games", type=click.IntRange(min=0), default=0, show_default=True,
              help="Games to simulate; 0 = continuously until Ctrl-C.")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Games/s cap [default: {DEFAULT_RATE:g} when continuous, none with --games].")  # fmt: skip
@click.option("--exit-when-done", is_flag=True,
              help="With --games N: stop once all N games are in both sinks, print a summary.")  # fmt: skip
@click.option("--listeners", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Listener processes (each game is still captured once).")  # fmt: skip
@click.option("--stop-wait", type=click.FloatRange(min=0), default=STOP_WAIT_SECONDS,
              show_default=True, help="On Ctrl-C, seconds to let Dagster's runs finish.")  # fmt: skip
def demo_command(port: int, games: int, rate: float | None, exit_when_done: bool,
                 listeners: int, stop_wait: float) -> None:  # fmt: skip
    """Run Redis, Dagster (UI + daemon), a listener and the simulator until Ctrl-C."""
    if exit_when_done and not games:
        raise click.UsageError("--exit-when-done needs --games N")
    settings = load_settings()
    check_port_free(port)
    for name in ("dagster", "superhero-dagster"):
        require_executable(name)
    if rate is None and not games:
        rate = DEFAULT_RATE
    stop, now = threading.Event(), threading.Event()
    with stop_signals(stop, now), redis_for_demo(settings) as url:
        settings = settings.with_(redis_url=url)
        home = prepare_instance(settings)
        restore_sensors(home, settings.state_dir)  # a demo killed while stopping left them off
        stack = Stack(settings, settings.state_dir / "logs" / "demo")
        demo = None
        try:
            demo = Demo(settings, stack, stop, port)
            demo.run(games, rate, exit_when_done, listeners)
        except RedisUnavailable as exc:
            raise CliError(str(exc)) from None
        except redis.RedisError as exc:
            raise CliError(
                f"Redis error at {redact_url(url)}: {str(exc).splitlines()[0]}"
            ) from None
        finally:
            # Output may be a closed pipe or terminal by now: never let echo skip the cleanup.
            say("Stopping the sensors, simulator, listeners, then Dagster...")
            stop_stack(stack, ui_url=f"http://127.0.0.1:{port}", home=home,
                       wait_seconds=stop_wait, now=now, echo=say)  # fmt: skip
            if demo is not None:
                demo.close()
    if stop.is_set():
        with contextlib.suppress(OSError):  # after SIGHUP the terminal is gone: still exit 0
            click.echo(f"Stopped cleanly. Files are in {settings.data_dir.resolve()}")
