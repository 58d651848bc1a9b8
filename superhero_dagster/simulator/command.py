"""``superhero-dagster simulate``: the original's traffic against REDIS_URL (or an embedded Redis)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
import redis

from superhero_dagster.cli import CliError, load_settings
from superhero_dagster.redis_client import RedisUnavailable, connect
from superhero_dagster.redis_server import RedisServerError, redis_url_or_embedded
from superhero_dagster.settings import redact_url
from superhero_dagster.simulator.cleanup import CLEANUP_MODES, ORIGINAL
from superhero_dagster.simulator.combat import ODD_KINDS
from superhero_dagster.simulator.publish import WIRE_FORMATS
from superhero_dagster.simulator.roster import RosterError, load_roster
from superhero_dagster.simulator.run import (
    DEAD_TURN_RATE,
    NO_CLEANING_RATE,
    SimConfig,
    SimSummary,
    run_simulation,
)


def parse_players(text: str) -> tuple[int, int]:
    """``"4"`` or ``"2-3"`` -> inclusive range within 2..10."""
    lo, sep, hi = text.partition("-")
    try:
        bounds = (int(lo), int(hi) if sep else int(lo))
    except ValueError:
        raise click.BadParameter(f"expected N or N-M, got {text!r}") from None
    if not 2 <= bounds[0] <= bounds[1] <= 10:
        raise click.BadParameter(f"players must be within 2..10 (low <= high), got {text!r}")
    return bounds


@click.command("simulate")
@click.option(
    "--games",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Games to play; 0 = until Ctrl-C.",
)
@click.option(
    "--players",
    default="2-3",
    show_default=True,
    help="Players per game: N or a range N-M within 2..10 (the original: 2-3).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Games in flight.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Cap in games/s (default: as fast as possible).",
)
@click.option("--seed", type=int, default=None, help="Same seed -> same games, tokens included.")
@click.option(
    "--timeout-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of lobbies that never fill and time out.",
)
@click.option(
    "--odd-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help=f"Share of odd-but-real games ({', '.join(ODD_KINDS)}).",
)
@click.option(
    "--wire-format",
    type=click.Choice(WIRE_FORMATS),
    default="original",
    show_default=True,
    help="original = payload JSON-encoded twice, like the original.",
)
@click.option(
    "--expire-after",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds after 'Cleaning Game Records' before a game's keys expire; 0 = never "
    "[default: SUPERHERO_EXPIRE_AFTER_SECONDS, 30].",
)
@click.option(
    "--cleanup",
    type=click.Choice(CLEANUP_MODES),
    default=ORIGINAL,
    show_default=True,
    help="original = the original's worker: on the host's 'Cleaning Game Records' delete the "
    "game's log at once, drop its index entries, expire the rest; expire = only expire every key.",
)
@click.option(
    "--dead-turn-rate",
    type=click.FloatRange(0, 1),
    default=DEAD_TURN_RATE,
    show_default=True,
    help="Share of eliminated heroes whose queued turn still fires (attacks by dead heroes, "
    "entries after the end, some after the Cleaning); 0 = clean games.",
)
@click.option(
    "--no-cleaning-rate",
    type=click.FloatRange(0, 1),
    default=NO_CLEANING_RATE,
    show_default=True,
    help="Share of completed games that never get a 'Cleaning Game Records' (server crash).",
)
@click.option(
    "--cleaning-delay",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Seconds between a game's end and its cleaning messages.",
)
@click.option(
    "--turn-delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds between turns (0 = a game is written at once).",
)
@click.option(
    "--channel-prefix",
    default="lib.server",
    show_default=True,
    help="Channels <prefix>.lobby and <prefix>.game.",
)
@click.option(
    "--roster",
    "roster_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A Superhero-API JSON dump (default: the built-in roster).",
)
@click.option(
    "--tokens-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append the played game tokens here, one per line, as the games are played (the "
    "original worker drops games from games:participants, so Redis no longer lists them).",
)
def simulate_command(
    games: int, players: str, concurrency: int, rate: float | None, seed: int | None,
    timeout_rate: float, odd_rate: float, wire_format: str, expire_after: float | None,
    cleanup: str, dead_turn_rate: float, no_cleaning_rate: float, cleaning_delay: float,
    turn_delay: float, channel_prefix: str, roster_path: Path | None, tokens_out: Path | None,
) -> None:  # fmt: skip
    """Play superhero games into Redis and publish their log records, like the original."""
    settings = load_settings()
    try:
        roster = load_roster(roster_path) if roster_path else None
    except RosterError as exc:
        raise CliError(str(exc)) from None
    config = SimConfig(
        games=games or None, players=parse_players(players), concurrency=concurrency, rate=rate,
        seed=seed, timeout_rate=timeout_rate, odd_rate=odd_rate, wire_format=wire_format,
        expire_after=settings.expire_after_seconds if expire_after is None else expire_after,
        cleaning_delay=cleaning_delay, turn_delay=turn_delay, channel_prefix=channel_prefix,
        roster=roster, cleanup=cleanup, dead_turn_rate=dead_turn_rate,
        no_cleaning_rate=no_cleaning_rate,
    )  # fmt: skip
    if not settings.redis_url:
        click.echo("REDIS_URL is unset: starting an embedded Redis for this run...", err=True)
    try:
        with redis_url_or_embedded(settings.redis_url, settings.state_dir) as url:
            if not settings.redis_url:
                click.echo(f"Embedded Redis at {url} (stops with this command).", err=True)
            connect(url).close()  # fail fast, one line, before any work
            summary = _run(url, config, tokens_out)
    except (RedisUnavailable, RedisServerError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except redis.RedisError as exc:
        url_text = redact_url(settings.redis_url or "the embedded Redis")
        raise CliError(f"Redis error at {url_text}: {str(exc).splitlines()[0]}") from None
    click.echo(("interrupted: " if summary.interrupted else "") + summary.line())


def _run(url: str, config: SimConfig, tokens_out: Path | None) -> SimSummary:
    """The run, with its progress bar on a terminal and its tokens appended live to a file.

    Why live: the demo counts the games played so far from that file (Redis no longer lists
    finished games once the original worker has cleaned them up)."""
    summary = SimSummary()
    try:
        out = tokens_out.open("a", encoding="ascii") if tokens_out is not None else None
    except OSError as exc:
        raise CliError(f"cannot write {tokens_out}: {exc.strerror or exc}") from None
    written = 0

    def on_game(bar_update: Callable[[int], None] | None, n: int) -> None:
        nonlocal written
        if out is not None:
            out.write("".join(f"{t}\n" for t in summary.tokens[written:]))
            out.flush()
            written = len(summary.tokens)
        if bar_update is not None:
            bar_update(n)

    try:
        if config.games and sys.stdout.isatty():
            with click.progressbar(length=config.games, label="games") as bar:
                result = run_simulation(
                    url, config, progress=lambda n: on_game(bar.update, n), summary=summary
                )
        else:
            result = run_simulation(
                url, config, progress=lambda n: on_game(None, n), summary=summary
            )
        on_game(None, 0)  # the tokens of a run cut short by Ctrl-C
        return result
    finally:
        if out is not None:
            out.close()
