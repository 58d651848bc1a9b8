"""``superhero-dagster listen`` and ``superhero-dagster status``."""

from __future__ import annotations

import json
import logging
import signal
import threading

import click

from superhero_dagster.cli import CliError, load_settings
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.redis_client import RedisUnavailable, connect
from superhero_dagster.redis_server import RedisServerError, redis_url_or_embedded
from superhero_dagster.settings import redact_url


@click.command("listen")
@click.option("--id", "listener_id", default=None, help="Listener id (default: host:pid:random).")
def listen_command(listener_id: str | None) -> None:
    """Capture every finished game exactly once into the buffer, until SIGTERM/Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    from superhero_dagster.listener.service import run_listener

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with redis_url_or_embedded(settings.redis_url, settings.state_dir) as url:
            if not settings.redis_url:
                click.echo(
                    f"REDIS_URL is not set: using an embedded Redis at {redact_url(url)} "
                    f"(AOF under {settings.state_dir / 'redis'})"
                )
            games = settings.game_channels if settings.attack_stream else ()
            stream = f" (attack stream on {', '.join(games)})" if games else " (attack stream off)"
            click.echo(f"listening on {', '.join(settings.channels)}{stream} at {redact_url(url)}")
            lid = run_listener(settings.with_(redis_url=url), stop, listener_id)
            click.echo(f"listener {lid} stopped")
    except RedisServerError as exc:
        raise CliError(str(exc)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--deadletters", default=5, show_default=True, help="How many recent dead letters.")
def status_command(as_json: bool, deadletters: int) -> None:
    """Buffer depth and age, counters, recent dead letters, live listeners."""
    from superhero_dagster.listener.status import collect, render

    settings = load_settings()
    if not settings.redis_url:
        # Starting a second embedded server on the same AOF folder as a running `listen` would
        # corrupt it, so status only reads a server it is told about.
        raise CliError(
            "REDIS_URL is not set: status reads a running server "
            "(start one with `superhero-dagster redis` and export the URL it prints)"
        )
    try:
        client = connect(settings.redis_url)
    except RedisUnavailable as exc:
        raise CliError(str(exc)) from None
    try:
        info = collect(client, ProjectKeys(settings.namespace), deadletters)
    finally:
        client.close()
    click.echo(json.dumps(info, indent=2) if as_json else render(info))
