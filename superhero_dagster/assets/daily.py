"""Daily compaction: the per-game Parquet files of one UTC day merged into one file per asset.

Layout (a hive-style dataset, readable as a whole by pyarrow, DuckDB or pandas)::

    daily/podium_daily/date=YYYY-MM-DD/part-0.parquet     game_podium rows of the day's games
    daily/metadata_daily/date=YYYY-MM-DD/part-0.parquet   game_metadata rows of the day's games

Why it is built this way:

* **Which day a game belongs to**: the UTC date of its ``ended_at`` (game_metadata: the last attack,
  or the 'Cleaning Game Records' time for a game without attacks). A game whose ``ended_at`` is
  unknown (a reconcile capture of a lobby without a message) falls back to the listener's
  ``captured_at`` in its persisted snapshot. The day never changes once a game is materialized.
* **Compaction merges, it never just overwrites.** Rows of the day already in the daily file are
  kept for games whose per-game files are gone (retention may have deleted them), and replaced by
  the per-game files where those exist. So re-compacting a day (a late game, a backfill) is
  lossless and idempotent, and the files of a day can be dropped once compacted.
* **Atomic**: each daily file is written to a hidden temp file in its folder and renamed over the
  old one (readers skip names starting with ``.``). podium_daily is written before metadata_daily:
  retention trusts a day only when both exist and hold exactly the per-game rows.
* **Partitions start near the first game and include today** (:func:`analytics_start`,
  :func:`compaction_partitions`), so the group is filled minutes after the first games, not never.
* **Reads use pyarrow datasets** (predicate filters on ``ended_at`` / ``game_token``), never one
  pandas read per file.
"""

import contextlib
import importlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pyarrow.dataset as ds

from superhero_dagster.files import atomic_write
from superhero_dagster.resources import SinkResource
from superhero_dagster.sinks import (
    COLUMN_DOCS,
    GAME_METADATA,
    GAME_PODIUM,
    SCHEMAS,
    SinkRoot,
    encode_parquet,
)

PODIUM_DAILY, METADATA_DAILY = "podium_daily", "metadata_daily"
#: Which per-game asset each daily asset compacts.
SOURCE = {PODIUM_DAILY: GAME_PODIUM, METADATA_DAILY: GAME_METADATA}
#: Sort keys, so the same rows always give the same bytes.
SORT_KEYS = {
    PODIUM_DAILY: [("game_token", "ascending"), ("rank", "ascending")],
    METADATA_DAILY: [("game_token", "ascending"), ("user_token", "ascending")],
}
GROUP = "daily"
#: Where the first day of the daily partitions is kept (see :func:`analytics_start`).
START_FILE = "START"


def analytics_start(root: SinkRoot, today: date | None = None) -> date:
    """The first day of the daily partitions: the day this sink first loaded the definitions.

    Why not a fixed date: partitions years before the first game are never filled, so the UI
    shows the group as missing forever. Why not "today": a partitions definition that moves
    confuses the UI's history. So the first load writes today's date (UTC) once, atomically and
    only if absent (every process that loads the code location agrees on it), and the date never
    changes afterwards. Games that ended earlier are never compacted (the leaderboard still
    counts them from their per-game files); ``SUPERHERO_ANALYTICS_START`` sets an older start.
    """
    path = root.root / "daily" / START_FILE
    with contextlib.suppress(FileNotFoundError, ValueError):
        return date.fromisoformat(path.read_text().strip())
    day = today or datetime.now(UTC).date()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{START_FILE}.{os.getpid()}.tmp")
    temp.write_text(day.isoformat() + "\n")
    try:
        os.link(temp, path)  # fails if another process wrote it first: theirs wins
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)
    return date.fromisoformat(path.read_text().strip())


def compaction_partitions(start: date) -> dg.DailyPartitionsDefinition:
    """Days from ``start`` through **today** (``end_offset=1``): today's games are compacted
    while the day runs (re-compacting merges, so each run only adds), not only after midnight."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=1)


T = TypeVar("T")


def pyarrow_dataset():  # type: ignore[no-untyped-def]  # the pyarrow.dataset module
    """pyarrow.dataset, imported on first use: it pulls in pandas (~0.6 s), and every run worker
    imports this module while loading the code location, also for runs that never read a dataset
    (the game batches)."""
    return importlib.import_module("pyarrow.dataset")


_READ_ATTEMPTS = 3


def daily_dir(root: SinkRoot, asset: str) -> Path:
    if asset not in SOURCE:
        raise ValueError(f"unknown daily asset {asset!r}")
    return root.root / "daily" / asset


def daily_path(root: SinkRoot, asset: str, day: date) -> Path:
    return daily_dir(root, asset) / f"date={day.isoformat()}" / "part-0.parquet"


def compacted_days(root: SinkRoot) -> list[date]:
    """Days with both daily files present (the only days retention may act on)."""
    days = []
    folder = daily_dir(root, METADATA_DAILY)
    for sub in sorted(folder.glob("date=*")) if folder.is_dir() else []:
        with contextlib.suppress(ValueError):
            day = date.fromisoformat(sub.name.removeprefix("date="))
            if all(daily_path(root, a, day).is_file() for a in SOURCE):
                days.append(day)
    return days


def write_atomic(path: Path, data: bytes) -> None:
    """The sinks' atomic write, creating the (date=...) folder first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


def retry_vanished(read: Callable[[], T]) -> T:
    """Run ``read()`` again if a file listed by a dataset was deleted before it was read
    (retention may prune per-game files while a reader runs)."""
    for attempt in range(_READ_ATTEMPTS):
        try:
            return read()
        except FileNotFoundError:
            if attempt == _READ_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def pergame_dataset(
    root: SinkRoot, asset: str, tokens: Iterable[str] | None = None
) -> "ds.Dataset":
    """The per-game Parquet files of ``asset`` (all, or only those of ``tokens`` that exist)."""
    schema = SCHEMAS[asset]
    if tokens is not None:
        files = [str(p) for t in tokens if (p := root.parquet_path(asset, t)).is_file()]
        return pyarrow_dataset().dataset(files, schema=schema, format="parquet")
    folder = root.root / "parquet" / asset
    if not folder.is_dir():
        return pyarrow_dataset().dataset([], schema=schema, format="parquet")
    return pyarrow_dataset().dataset(str(folder), schema=schema, format="parquet")


def daily_dataset(root: SinkRoot, asset: str) -> "ds.Dataset":
    """Every compacted day of ``asset`` as one dataset with a ``date`` (string) column."""
    schema = SCHEMAS[SOURCE[asset]].append(pa.field("date", pa.string()))
    folder = daily_dir(root, asset)
    if not folder.is_dir():
        return pyarrow_dataset().dataset([], schema=schema, format="parquet")
    hive = pyarrow_dataset().partitioning(pa.schema([("date", pa.string())]), flavor="hive")
    return pyarrow_dataset().dataset(
        str(folder), schema=schema, format="parquet", partitioning=hive
    )


def compacted_tokens(root: SinkRoot, asset: str, *, except_day: date | None = None) -> set[str]:
    """Games present in the daily dataset of ``asset`` (optionally ignoring one day)."""
    where = None if except_day is None else pc.field("date") != except_day.isoformat()
    table = daily_dataset(root, asset).to_table(columns=["game_token"], filter=where)
    return set(pc.unique(table["game_token"]).to_pylist())


def uncompacted(root: SinkRoot, asset: str, done: set[str]) -> list[str]:
    """Per-game files not in ``done``, chosen by file name (the token), so files of compacted
    games are never opened: reads cost what the not-yet-compacted games cost."""
    return [t for t in root.tokens(asset) if t not in done]


def _day_bounds(day: date) -> tuple[pa.Scalar, pa.Scalar]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    ts = SCHEMAS[GAME_METADATA].field("ended_at").type
    return pa.scalar(start, ts), pa.scalar(start + timedelta(days=1), ts)


def _captured_day(root: SinkRoot, token: str) -> date | None:
    """Fallback day of a game without ``ended_at``: when the listener captured it."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        stamp = datetime.fromisoformat(json.loads(root.read_raw_snapshot(token))["captured_at"])
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC).date()
    return None


def games_of_day(root: SinkRoot, day: date) -> list[str]:
    """Tokens of the games (with per-game metadata files) that belong to ``day``.

    Games already in another day's daily file are skipped without opening their files (a
    game's day never changes), so a day's compaction reads only the uncompacted games and the
    day's own."""
    start, end = _day_bounds(day)
    ended = pc.field("ended_at")
    wanted = ((ended >= start) & (ended < end)) | ended.is_null()

    def read() -> pa.Table:
        elsewhere = compacted_tokens(root, METADATA_DAILY, except_day=day)
        candidates = uncompacted(root, GAME_METADATA, elsewhere)
        return pergame_dataset(root, GAME_METADATA, candidates).to_table(
            columns=["game_token", "ended_at"], filter=wanted
        )

    table = retry_vanished(read)
    dated = pc.unique(table.filter(pc.is_valid(table["ended_at"]))["game_token"]).to_pylist()
    undated = set(pc.unique(table.filter(pc.is_null(table["ended_at"]))["game_token"]).to_pylist())
    undated -= set(dated)
    return sorted(set(dated) | {t for t in undated if _captured_day(root, t) == day})


def compact_day(root: SinkRoot, asset: str, day: date, tokens: list[str]) -> pa.Table:
    """The day's rows: per-game files of ``tokens``, plus earlier daily rows of other games."""
    schema = SCHEMAS[SOURCE[asset]]
    fresh = retry_vanished(lambda: pergame_dataset(root, SOURCE[asset], tokens).to_table())
    parts = [fresh]
    path = daily_path(root, asset, day)
    if path.is_file():
        old = pyarrow_dataset().dataset(str(path), schema=schema, format="parquet").to_table()
        keep = pc.invert(pc.is_in(old["game_token"], value_set=pa.array(tokens, pa.string())))
        parts.append(old.filter(keep))
    table = pa.concat_tables(parts).cast(schema)
    return table.sort_by(SORT_KEYS[asset]).combine_chunks()


def _spec(name: str, automation: dg.AutomationCondition | None) -> dg.AssetSpec:
    source = SOURCE[name]
    return dg.AssetSpec(
        name,
        group_name=GROUP,
        deps=[dg.AssetDep(source, partition_mapping=dg.AllPartitionMapping())],
        kinds={"parquet"},
        description=f"{source} rows of every game that ended on the day (UTC), one file per day: "
        f"daily/{name}/date=YYYY-MM-DD/part-0.parquet.",
        automation_condition=automation,
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(f.name, str(f.type), description=COLUMN_DOCS.get(f.name))
                    for f in SCHEMAS[source]
                ]
            )
        },
    )


def build_daily_compaction(
    partitions_def: dg.DailyPartitionsDefinition,
    automation: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    """The compaction multi-asset over ``partitions_def`` (built from settings at load time)."""

    @dg.multi_asset(
        specs=[_spec(PODIUM_DAILY, automation), _spec(METADATA_DAILY, automation)],
        partitions_def=partitions_def,
        can_subset=False,
        name="daily_compaction",
    )
    def daily_compaction(
        context: dg.AssetExecutionContext, sink: SinkResource
    ) -> Iterator[dg.MaterializeResult]:
        root = sink.sink()
        key = context.partition_key  # one day per run (no single-run backfill policy)
        day = date.fromisoformat(key)
        tokens = games_of_day(root, day)
        for asset in (PODIUM_DAILY, METADATA_DAILY):  # podium first: see module docstring
            table = compact_day(root, asset, day, tokens)
            path = daily_path(root, asset, day)
            write_atomic(path, encode_parquet(table))
            games = len(pc.unique(table["game_token"])) if table.num_rows else 0
            context.log.info(f"{asset} {key}: {table.num_rows} rows of {games} games -> {path}")
            yield dg.MaterializeResult(
                asset_key=asset,
                metadata={
                    "dagster/row_count": table.num_rows,
                    "games": games,
                    "games_from_pergame_files": len(tokens),
                    "path": dg.MetadataValue.path(str(path)),
                },
            )

    return daily_compaction
