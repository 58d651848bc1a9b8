"""What ``superhero-dagster demo`` shows: live counters from Redis and the final summary table.

Why counters are shown as deltas: the embedded Redis keeps its AOF in the state folder and a
user's own ``REDIS_URL`` may have served earlier runs, so the stats hash is cumulative across
sessions. A baseline taken when the demo starts makes the numbers mean "this demo". The games of
this demo are found the same way: tokens in ``games:participants`` (written by the simulator when
a game is created) that were not there at the start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

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
        return (
            f"simulated {self.simulated:>6} | captured {self.captured:>6} | "
            f"materialized {self.materialized:>6} | buffer {self.buffer_depth:>5} | "
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
