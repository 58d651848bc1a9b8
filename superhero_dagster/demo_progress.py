"""What ``superhero-dagster demo`` shows: live counters from Redis and the final summary table.

Why counters are shown as deltas: the embedded Redis keeps its AOF in the state folder and a
user's own ``REDIS_URL`` may have served earlier runs, so the stats hash is cumulative across
sessions. A baseline taken when the demo starts makes the numbers mean "this demo". The games of
this demo are the ones the simulator lists, live, in its ``--tokens-out`` file (Redis no longer
lists a game once the original clean-up worker has dropped it from ``games:participants``).

Two corrections make the line true after a restart and when idle:

* ``materialized`` counts this demo's games only: games left over from an earlier session (known
  at the start, not materialized yet) are counted apart, as "+N earlier".
* ``buffer`` is what still waits for the sensor: entries the sensor has already requested stay
  in the list until its next tick trims them, so their number (read from the sensor's committed
  cursor) is left out, and an idle demo shows 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import click
import pyarrow.dataset as pads
import redis

from superhero_dagster import keys
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.status import collect
from superhero_dagster.redis_client import reply_text
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot

SINK_ASSETS = (GAME_METADATA, GAME_PODIUM)


@dataclass(frozen=True)
class Counts:
    """One reading of the pipeline's counters (cumulative, as stored in Redis)."""

    simulated: int
    captured: int
    materialized: int
    deadlettered: int
    buffer_depth: int
    earlier: int = 0  # games of an earlier session materialized during this one

    def since(self, base: Counts) -> Counts:
        """Counters relative to ``base``; the buffer depth is a level, not a counter."""
        return Counts(
            simulated=self.simulated - base.simulated,
            captured=self.captured - base.captured,
            materialized=self.materialized - base.materialized,
            deadlettered=self.deadlettered - base.deadlettered,
            buffer_depth=self.buffer_depth,
        )

    def line(self) -> str:
        earlier = f" (+{self.earlier} earlier)" if self.earlier else ""
        return (
            f"simulated {self.simulated:>6} | captured {self.captured:>6} | "
            f"materialized {self.materialized:>6}{earlier} | buffer {self.buffer_depth:>5} | "
            f"dead letters {self.deadlettered:>3}"
        )


def read_counts(client: redis.Redis, project: ProjectKeys) -> Counts:
    info = collect(client, project, deadletters=0)
    counters = info["counters"]
    return Counts(
        simulated=int(client.zcard(keys.GAMES_PARTICIPANTS)),
        captured=int(counters.get("captured", 0)),
        materialized=int(counters.get("materialized", 0)),
        deadlettered=int(counters.get("deadlettered", 0)),
        buffer_depth=int(info["buffer_depth"]),
    )


class Session:
    """Counters of one demo session (see the module docstring for the two corrections)."""

    def __init__(
        self, client: redis.Redis, project: ProjectKeys, played: Path | None = None
    ) -> None:
        self.client, self.project, self.played = client, project, played
        self.base = read_counts(client, project)
        done = {reply_text(t) for t in client.zrange(project.materialized, 0, -1)}
        waiting = {reply_text(t) for t in client.lrange(project.buffer, 0, -1)}
        self.backlog = sorted((game_tokens(client) | waiting) - done)
        self.earlier = 0

    def read(self, requested: int = 0) -> Counts:
        """Now, relative to the start; ``requested``: buffer entries the sensor already took."""
        counts = read_counts(self.client, self.project).since(self.base)
        if self.backlog:
            stamps = self.client.zmscore(self.project.materialized, self.backlog)
            left = [t for t, stamp in zip(self.backlog, stamps, strict=True) if stamp is None]
            self.earlier += len(self.backlog) - len(left)
            self.backlog = left
        if self.played is not None:  # the simulator's live list of this session's games
            counts = replace(counts, simulated=_lines(self.played))
        return replace(
            counts,
            materialized=max(counts.materialized - self.earlier, 0),
            earlier=self.earlier,
            buffer_depth=max(counts.buffer_depth - requested, 0),
        )


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))
    except FileNotFoundError:
        return 0


def requested_not_trimmed(instance: object, sensor_name: str) -> int:
    """Entries named by the sensor's committed cursor: requested, trimmed on its next tick."""
    from dagster._core.definitions.run_request import InstigatorType

    from superhero_dagster.sensors.planning import parse_cursor

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):  # type: ignore[attr-defined]
        if state.name == sensor_name and state.instigator_data is not None:
            return sum(s.length for s in parse_cursor(state.instigator_data.cursor))
    return 0


class Progress:
    """One rewritten line on a terminal; a line every few seconds (when changed) otherwise."""

    def __init__(self, tty: bool, period: float) -> None:
        self.tty, self.period, self.last, self.last_at = tty, period, "", 0.0

    def message(self, text: str) -> None:
        """A line of its own: on a terminal the live line is erased first, then redrawn below."""
        if self.tty and self.last:
            click.echo("\r\x1b[2K", nl=False)
            click.echo(text)
            click.echo(self.last, nl=False)
        else:
            click.echo(text)

    def show(self, counts: Counts) -> None:
        line = counts.line()
        if self.tty:
            click.echo("\r\x1b[2K" + line, nl=False)
            self.last = line
        elif line != self.last and time.monotonic() - self.last_at >= self.period:
            click.echo(line)
            self.last, self.last_at = line, time.monotonic()

    def done(self) -> None:
        if self.tty and self.last:
            click.echo()
            self.last = ""


def game_tokens(client: redis.Redis) -> set[str]:
    """Every game the simulator has created in this Redis (not expired with the game's keys)."""
    return {reply_text(t) for t in client.zrange(keys.GAMES_PARTICIPANTS, 0, -1)}


def missing_from_sinks(sink: SinkRoot, tokens: set[str]) -> int:
    """How many of ``tokens`` lack a Parquet file in either sink asset."""
    missing = set()
    for asset in SINK_ASSETS:
        missing |= tokens - set(sink.tokens(asset))
    return len(missing)


@dataclass(frozen=True)
class Summary:
    games: int
    rows: dict[str, int]
    files: dict[str, int]
    elapsed: float
    data_dir: Path

    @property
    def games_per_second(self) -> float:
        return self.games / self.elapsed if self.elapsed > 0 else 0.0

    def table(self) -> str:
        """The summary printed by ``--exit-when-done`` (a fixed-width table, then the detail)."""
        header = ("games", "rows", "files", "elapsed", "games/s")
        values = (
            str(self.games),
            str(sum(self.rows.values())),
            str(sum(self.files.values())),
            f"{self.elapsed:.1f}s",
            f"{self.games_per_second:.2f}",
        )
        widths = [max(len(h), len(v)) for h, v in zip(header, values, strict=True)]
        rule = "  ".join("-" * w for w in widths)
        fmt = "  ".join(f"{{:>{w}}}" for w in widths)
        rows = ", ".join(f"{asset} {n}" for asset, n in self.rows.items())
        files = ", ".join(f"{n} {kind}" for kind, n in self.files.items())
        return "\n".join(
            [
                fmt.format(*header),
                rule,
                fmt.format(*values),
                f"rows: {rows}; files: {files}; under {self.data_dir}",
            ]
        )


def summarize(sink: SinkRoot, tokens: set[str], started: float) -> Summary:
    """Rows and files of this demo's games, counted from the sinks themselves (not from Redis)."""
    elapsed = time.monotonic() - started
    rows: dict[str, int] = {}
    files = {"JSON": 0, "Parquet": 0}
    for asset in SINK_ASSETS:
        parquet = [sink.parquet_path(asset, t) for t in sorted(tokens)]
        parquet = [p for p in parquet if p.is_file()]
        files["Parquet"] += len(parquet)
        files["JSON"] += sum(sink.json_path(asset, t).is_file() for t in tokens)
        # One dataset over the files: footers only, no row data is read.
        rows[asset] = (
            pads.dataset([str(p) for p in parquet], format="parquet").count_rows() if parquet else 0
        )
    return Summary(games=len(tokens), rows=rows, files=files, elapsed=elapsed, data_dir=sink.root)
