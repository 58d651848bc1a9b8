"""Per-period hero totals, so a leaderboard refresh reads what changed, not the whole history.

Why: the leaderboard sums over every game kept. Read whole, a refresh would cost the history (at
100 games/s a month of compacted podium rows is hundreds of millions) and list every per-game
file. Its figures are sums, so:

* each compacted period's totals are computed once and cached under
  ``analytics/_totals/<key>.parquet``, stamped with the size and mtime of the period's two files,
  and the sum of all "cold" periods (no pending game) in ``_all.parquet``, stamped with their keys
  and stamps. A refresh stats the period files, reads that one sum while no cold period changed,
  and otherwise re-adds the periods' cached totals, recomputing only the periods whose files
  changed (a late game re-compacted). "Hot" periods (with pending games: the current hour under
  traffic) are read from their files each time;
* games not compacted yet are the compaction's pending index (``compacted/_pending/<key>/``), so
  their per-game files are found without listing the per-game folders; a pending game already in
  its period's compacted file (re-materialized after a compaction) is counted from that file only,
  so no game counts twice. Per-game files without a marker (written by hand, or before the index
  existed) are not counted, as they are not compacted either.
* totals are integers per hero and lobby size (games, wins, rank sum, rounds, damage), and the
  expected wins (sum of 1/P) are computed from them at the end in a fixed order, so the
  leaderboard is the same bytes however its games are split between periods and per-game files.

Order of reads: the pending markers first, then the compacted files. A compaction finishing in
between moves a game from "pending" to "in the file"; the file then wins. A file that vanishes
while read (a compaction renaming over it, retention deleting a per-game file) restarts the read
(:func:`retry_vanished`).
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from superhero_dagster.assets.compaction import (
    METADATA_COMPACTED,
    PODIUM_COMPACTED,
    compacted_periods,
    pending_markers,
    pending_periods,
    pergame_dataset,
    period_path,
    retry_vanished,
)
from superhero_dagster.periods import Period
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot, encode_parquet

PODIUM_COLUMNS = ["game_token", "user_token", "superhero_id", "rank", "rounds"]
PODIUM_COLUMNS += ["damage_delivered", "damage_received"]
METADATA_COLUMNS = ["game_token", "user_token", "name"]

#: Sums per (hero, lobby size); ``players`` is the number of podium rows of the game.
TOTALS_SCHEMA = pa.schema(
    [
        pa.field("superhero_id", pa.int32(), nullable=False),
        pa.field("players", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("games", pa.int64(), nullable=False),
        pa.field("wins", pa.int64(), nullable=False),
        pa.field("rank_sum", pa.int64(), nullable=False),
        pa.field("rounds", pa.int64(), nullable=False),
        pa.field("damage_delivered", pa.int64(), nullable=False),
        pa.field("damage_received", pa.int64(), nullable=False),
    ]
)
_STAMP, _GAMES = b"superhero/source", b"superhero/games"
#: The sum of every cold period's totals, stamped with their keys and stamps.
ROLLUP = "_all.parquet"


@dataclass
class Totals:
    table: pa.Table  # TOTALS_SCHEMA
    games: int  # distinct games (podium), timed-out lobbies have none


def totals_dir(root: SinkRoot) -> Path:
    return root.root / "analytics" / "_totals"


def totals_of(podium: pa.Table, metadata: pa.Table) -> Totals:
    """Totals of whole games: every podium row of a game must be in ``podium``."""
    sizes = podium.group_by("game_token").aggregate([("user_token", "count")])
    sizes = sizes.rename_columns(["game_token", "players"])
    joined = podium.join(sizes, "game_token").join(
        metadata, keys=["game_token", "user_token"], join_type="left outer"
    )
    joined = joined.filter(pc.is_valid(joined["superhero_id"]))
    joined = joined.append_column("win", pc.cast(pc.equal(joined["rank"], 1), pa.int64()))
    agg = joined.group_by(["superhero_id", "players"], use_threads=False).aggregate(
        [
            ("name", "max"),
            ("game_token", "count"),
            ("win", "sum"),
            ("rank", "sum"),
            ("rounds", "sum"),
            ("damage_delivered", "sum"),
            ("damage_received", "sum"),
        ]
    )
    names = ["name_max", "game_token_count", "win_sum", "rank_sum", "rounds_sum"]
    names += ["damage_delivered_sum", "damage_received_sum"]
    table = pa.table(
        [agg["superhero_id"], agg["players"], *(agg[n] for n in names)],
        names=TOTALS_SCHEMA.names,
    )
    return Totals(table.cast(TOTALS_SCHEMA), sizes.num_rows)


def _stamp(root: SinkRoot, key: str) -> str:
    """Size and mtime of the period's two files: a re-compaction changes it."""
    parts = []
    for asset in (PODIUM_COMPACTED, METADATA_COMPACTED):
        st = os.stat(period_path(root, asset, key))
        parts.append([st.st_size, st.st_mtime_ns])
    return json.dumps(parts)


def _read_period(root: SinkRoot, key: str) -> tuple[pa.Table, pa.Table]:
    return (
        pq.read_table(period_path(root, PODIUM_COMPACTED, key), columns=PODIUM_COLUMNS),
        pq.read_table(period_path(root, METADATA_COMPACTED, key), columns=METADATA_COLUMNS),
    )


def _cached(path: Path, stamp: str) -> Totals | None:
    try:
        table = pq.read_table(path)
    except (FileNotFoundError, pa.ArrowInvalid):
        return None
    meta = table.schema.metadata or {}
    if meta.get(_STAMP, b"").decode() != stamp or table.schema.remove_metadata() != TOTALS_SCHEMA:
        return None
    return Totals(table.replace_schema_metadata(None), int(meta.get(_GAMES, b"0")))


def _store(root: SinkRoot, path: Path, stamp: str, totals: Totals) -> None:
    meta = {_STAMP: stamp.encode(), _GAMES: str(totals.games).encode()}
    root.write_file(path, encode_parquet(totals.table.replace_schema_metadata(meta)))


@dataclass
class Collected:
    parts: list[Totals]
    periods_read: int  # compacted periods whose totals were (re)computed from their files
    periods_cached: int
    pending_games: int  # games counted from their per-game files


#: Both key forms are read, whatever ``SUPERHERO_COMPACTION_PERIOD`` is now: periods compacted
#: before a change of the setting still count.
PERIODS = (Period("day"), Period("hour"))


def collect(root: SinkRoot) -> Collected:
    """The totals of every compacted period and of the pending games."""
    return retry_vanished(lambda: _collect(root))


def _collect(root: SinkRoot) -> Collected:
    pending = {k: set(pending_markers(root, k)) for p in PERIODS for k in pending_periods(root, p)}
    stamps = {k: _stamp(root, k) for p in PERIODS for k in compacted_periods(root, p)}
    cold = {k: stamp for k, stamp in stamps.items() if not pending.get(k)}
    folder = totals_dir(root)
    rollup_stamp = json.dumps(sorted(cold.items()))
    rollup = _cached(folder / ROLLUP, rollup_stamp)
    read = 0
    if rollup is None:  # a period turned cold or changed since: sum the periods' own totals
        parts = []
        for key, stamp in cold.items():
            totals = _cached(folder / f"{key}.parquet", stamp)
            if totals is None:
                totals, read = _period_totals(root, key, stamp), read + 1
            parts.append(totals)
        rollup = summed(parts)
        _store(root, folder / ROLLUP, rollup_stamp, rollup)
    parts = [rollup]
    for key in stamps.keys() - cold.keys():  # hot: pending games in the file count from it
        podium, metadata = _read_period(root, key)
        pending[key] -= set(pc.unique(podium["game_token"]).to_pylist())
        parts.append(totals_of(podium, metadata))
        read += 1
    keep = {folder / ROLLUP, *(folder / f"{k}.parquet" for k in cold)}
    for stale in set(folder.glob("*.parquet")) - keep:
        stale.unlink(missing_ok=True)  # a period hot again, or removed by hand
    tokens = sorted(t for games in pending.values() for t in games)
    podium = pergame_dataset(root, GAME_PODIUM, tokens).to_table(columns=PODIUM_COLUMNS)
    metadata = pergame_dataset(root, GAME_METADATA, tokens).to_table(columns=METADATA_COLUMNS)
    fresh = totals_of(podium, metadata)
    parts.append(fresh)
    return Collected(parts, read, len(stamps) - read, fresh.games)


def _period_totals(root: SinkRoot, key: str, stamp: str) -> Totals:
    totals = totals_of(*_read_period(root, key))
    _store(root, totals_dir(root) / f"{key}.parquet", stamp, totals)
    return totals


def summed(parts: list[Totals]) -> Totals:
    """The parts added up per (hero, lobby size), in a fixed order."""
    table = pa.concat_tables([TOTALS_SCHEMA.empty_table(), *(p.table for p in parts)])
    by_size = table.group_by(["superhero_id", "players"], use_threads=False).aggregate(
        [("name", "max"), *((c, "sum") for c in TOTALS_SCHEMA.names[3:])]
    )
    by_size = by_size.sort_by([("superhero_id", "ascending"), ("players", "ascending")])
    names = ["superhero_id", "players", "name_max", *(f"{c}_sum" for c in TOTALS_SCHEMA.names[3:])]
    table = pa.table([by_size[n] for n in names], names=TOTALS_SCHEMA.names)
    return Totals(table.cast(TOTALS_SCHEMA), sum(p.games for p in parts))


def combined(parts: list[Totals]) -> pa.Table:
    """Per hero: the summed totals, plus ``expected_wins`` (sum of games / lobby size) added in a
    fixed order (hero, then lobby size), so equal games give equal bytes."""
    by_size = summed(parts).table
    chance = pc.divide(
        pc.cast(by_size["games"], pa.float64()), pc.cast(by_size["players"], pa.float64())
    )
    by_size = by_size.append_column("chance", chance)
    hero = by_size.group_by("superhero_id", use_threads=False).aggregate(
        [("name", "max"), ("chance", "sum"), *((c, "sum") for c in TOTALS_SCHEMA.names[3:])]
    )
    out = {"superhero_id": hero["superhero_id"], "name": hero["name_max"]}
    out |= {c: hero[f"{c}_sum"] for c in TOTALS_SCHEMA.names[3:]}
    out["expected_wins"] = hero["chance_sum"]
    return pa.table(out)
