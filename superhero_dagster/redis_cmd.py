"""``superhero-dagster redis``: run the embedded server in the foreground."""

from __future__ import annotations

import signal
import threading

import click

from superhero_dagster.cli import CliError, load_settings
from superhero_dagster.redis_server import RedisServer, RedisServerError


@click.command("redis")
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 (default: a free one).")
def redis_command(port: int) -> None:
    """Run the project's own Redis server (AOF under the state folder) until Ctrl-C."""
    settings = load_settings()
    server = RedisServer(data_dir=settings.state_dir / "redis", port=port)
    try:
        server.start()
    except RedisServerError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"Redis is running. Use: export REDIS_URL={server.url}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if server.process is None or server.process.poll() is not None:
                raise CliError(
                    "redis-server exited unexpectedly; see its log under the state folder"
                )
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        click.echo("Redis stopped.")
