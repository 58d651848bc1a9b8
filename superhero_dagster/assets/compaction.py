"""Compaction: the per-game Parquet files of one UTC period (an hour by default) merged into one
file per asset, so the per-game ``games`` partitions of compacted games can be pruned.

Layout (a hive-style dataset, readable as a whole by pyarrow, DuckDB or pandas)::

    compacted/podium_compacted/period=<key>/part-0.parquet     game_podium rows of the period
    compacted/metadata_compacted/period=<key>/part-0.parquet   game_metadata rows of the period
    compacted/_pending/<key>/<token>                           games written, not compacted yet

``<key>`` is the Dagster partition key of the period: ``2026-12-02-07:00`` (hour) or
``2026-12-02`` (day), ``SUPERHERO_COMPACTION_PERIOD``.

Why it is built this way:

* **Which period a game belongs to**: the UTC time of its ``ended_at`` (game_metadata: the last
  attack, or the 'Cleaning Game Records' time for a game without attacks); without one (a
  reconcile capture of a lobby without a message), the listener's ``captured_at``. It never changes.
* **Hourly by default** so the per-game window stays bounded: at the pipeline's maximum rate an
  hour is ~200k games, and re-compacting the current hour reads that hour only, never a day of
  millions. A day is the better period for light traffic (fewer, larger files).
* **An index of pending games** (``_pending/<key>/<token>``, an empty file written by the game
  asset next to the game's files): a compaction reads only the period's pending games and the
  period's own file, never the list of every per-game file or every compacted token, so its cost
  does not grow with history. A marker is cleared only after both files are written, and only if
  it was not rewritten meanwhile (a re-materialized game is compacted again).
* **Compaction merges, it never just overwrites.** Rows of the period already in its file are kept
  for games not pending (retention may have deleted their per-game files), and replaced for the
  pending ones. So re-compacting (a late game, a backfill) is lossless and idempotent.
* **One compaction of a period at a time** (a lock file per period): the automation of the latest
  period, the late-period sensor and a manual backfill may ask for the same period at once; two
  writers would each keep only the rows they read.
* **Atomic**: each file is written to a hidden temp file and renamed over the old one (readers
  skip names starting with ``.`` or ``_``). The podium file is written before the metadata file:
  retention trusts a period only when both exist and hold exactly the per-game rows.
* **Partitions start near the first game and include the current period** (:func:`analytics_start`,
  :func:`compaction_partitions`), so the group is filled minutes after the first games.
* **Reads use pyarrow datasets**, never one pandas read per file.
"""

import contextlib
import fcntl
import importlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pyarrow.dataset as ds

from superhero_dagster.keys import TOKEN_PATTERN
from superhero_dagster.periods import Period
from superhero_dagster.resources import SinkResource
from superhero_dagster.sinks import (
    COLUMN_DOCS,
    GAME_METADATA,
    GAME_PODIUM,
    SCHEMAS,
    SinkRoot,
    encode_parquet,
    validate_token,
)

PODIUM_COMPACTED, METADATA_COMPACTED = "podium_compacted", "metadata_compacted"
#: Which per-game asset each compacted asset holds.
SOURCE = {PODIUM_COMPACTED: GAME_PODIUM, METADATA_COMPACTED: GAME_METADATA}
#: Sort keys, so the same rows always give the same bytes.
SORT_KEYS = {
    PODIUM_COMPACTED: [("game_token", "ascending"), ("rank", "ascending")],
    METADATA_COMPACTED: [("game_token", "ascending"), ("user_token", "ascending")],
}
GROUP = "compacted"
#: Where the first day of the compaction partitions is kept (see :func:`analytics_start`).
START_FILE = "START"
PENDING_DIR, LOCK_DIR = "_pending", "_locks"
#: Written into a period's folder once retention has pruned every game of it (cleared by a
#: compaction that adds games), so the age pass does not re-verify old periods on every run.
PRUNED_MARK = "_PRUNED"


def analytics_start(root: SinkRoot, today: date | None = None) -> date:
    """The first day of the compaction partitions: the day this sink first loaded the definitions.

    Why not a fixed date: partitions years before the first game are never filled, so the UI
    shows the group as missing forever. Why not "today": a partitions definition that moves
    confuses the UI's history. So the first load writes today's date (UTC) once, atomically and
    only if absent (every process that loads the code location agrees on it), and the date never
    changes afterwards. Games that ended earlier are never compacted (the leaderboard still
    counts them from their per-game files); ``SUPERHERO_ANALYTICS_START`` sets an older start.
    """
    path = root.root / "compacted" / START_FILE
    with contextlib.suppress(FileNotFoundError, ValueError):
        return date.fromisoformat(path.read_text().strip())
    day = today or datetime.now(UTC).date()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = root.temp_path()
    temp.write_text(day.isoformat() + "\n")
    try:
        os.link(temp, path)  # fails if another process wrote it first: theirs wins
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)
    return date.fromisoformat(path.read_text().strip())


T = TypeVar("T")


def pyarrow_dataset():  # type: ignore[no-untyped-def]  # the pyarrow.dataset module
    """pyarrow.dataset, imported on first use: it pulls in pandas (~0.6 s), and every run worker
    imports this module while loading the code location, also for runs that never read a dataset
    (the game batches)."""
    return importlib.import_module("pyarrow.dataset")


_READ_ATTEMPTS = 3
_KEY = re.compile(r"\d{4}-\d{2}-\d{2}(-\d{2}:00)?")


def compacted_dir(root: SinkRoot, asset: str) -> Path:
    if asset not in SOURCE:
        raise ValueError(f"unknown compacted asset {asset!r}")
    return root.root / "compacted" / asset


def _safe_key(key: str) -> str:
    """A period key is a date or a date and hour; anything that could leave its folder is refused
    (keys come from Dagster's time partitions or from folder names checked by ``Period.parse``)."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"not a period key: {key!r}")
    return key


def period_dir(root: SinkRoot, asset: str, key: str) -> Path:
    return compacted_dir(root, asset) / f"period={_safe_key(key)}"


def period_path(root: SinkRoot, asset: str, key: str) -> Path:
    return period_dir(root, asset, key) / "part-0.parquet"


def is_compacted(root: SinkRoot, key: str) -> bool:
    """Both files of the period exist (the only periods retention may act on)."""
    return all(period_path(root, a, key).is_file() for a in SOURCE)


def compacted_periods(root: SinkRoot, period: Period) -> list[str]:
    """Keys of the compacted periods, oldest first (folder names; no file is opened)."""
    folder = compacted_dir(root, METADATA_COMPACTED)
    keys = []
    for sub in sorted(folder.glob("period=*")) if folder.is_dir() else []:
        key = sub.name.removeprefix("period=")
        if period.parse(key) is not None and is_compacted(root, key):
            keys.append(key)
    return keys


def pruned_level(root: SinkRoot, key: str) -> str:
    """What retention already removed for every game of the period: "" (not done),
    "partitions", or "files" (partitions and per-game files)."""
    with contextlib.suppress(FileNotFoundError):
        return (period_dir(root, METADATA_COMPACTED, key) / PRUNED_MARK).read_text().strip()
    return ""


def mark_pruned(root: SinkRoot, key: str, level: str) -> None:
    """Record ``level`` (see :func:`pruned_level`); "" clears the mark."""
    path = period_dir(root, METADATA_COMPACTED, key) / PRUNED_MARK
    if level:
        path.write_text(level + "\n")
    else:
        path.unlink(missing_ok=True)


# --- the index of pending games ---------------------------------------------------------------
def pending_dir(root: SinkRoot, key: str) -> Path:
    return root.root / "compacted" / PENDING_DIR / _safe_key(key)


def mark_pending(root: SinkRoot, key: str, token: str) -> None:
    """Record that ``token``'s per-game files (re)written belong to period ``key``.

    Rewritten on every materialization (a new mtime), so a compaction running meanwhile does not
    clear the marker of a game it read before the game changed."""
    folder = pending_dir(root, key)
    marker = folder / validate_token(token)
    for attempt in range(_READ_ATTEMPTS):
        try:
            marker.touch()  # sets the mtime of an existing marker too
            return
        except FileNotFoundError:  # first game of the period, or a compaction removed the
            if attempt == _READ_ATTEMPTS - 1:  # emptied folder in between
                raise
            folder.mkdir(parents=True, exist_ok=True)


def pending_markers(root: SinkRoot, key: str) -> dict[str, int]:
    """Pending games of the period: token -> the marker's mtime (ns)."""
    folder = pending_dir(root, key)
    out: dict[str, int] = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if TOKEN_PATTERN.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    out[entry.name] = entry.stat().st_mtime_ns
    return out


def pending_periods(root: SinkRoot, period: Period) -> list[str]:
    """Periods with at least one pending game, oldest first (anything not a key is skipped)."""
    folder = root.root / "compacted" / PENDING_DIR
    if not folder.is_dir():
        return []
    keys = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir() and period.parse(entry.name) is not None:
            with os.scandir(entry.path) as inside:
                if any(TOKEN_PATTERN.fullmatch(e.name) for e in inside):
                    keys.append(entry.name)
    return keys


def clear_pending(root: SinkRoot, key: str, markers: dict[str, int]) -> int:
    """Remove the markers that are unchanged since they were read; returns how many."""
    cleared = 0
    folder = pending_dir(root, key)
    for token, mtime in markers.items():
        path = folder / token
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime_ns == mtime:
                path.unlink()
                cleared += 1
    with contextlib.suppress(OSError):
        folder.rmdir()  # only if empty
    return cleared


@contextlib.contextmanager
def period_lock(root: SinkRoot, key: str) -> Iterator[None]:
    """One writer of a period's files at a time (an advisory lock on a file in the sink)."""
    folder = root.root / "compacted" / LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{_safe_key(key)}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def game_period(period: Period, ended_at: datetime | None, captured_at: str | None) -> str:
    """The period key of a game: its ``ended_at``, else when the listener captured it."""
    if ended_at is not None:
        return period.key(ended_at)
    if captured_at:
        with contextlib.suppress(ValueError):
            return period.key(datetime.fromisoformat(captured_at))
    return period.key(datetime.now(UTC))  # a snapshot always has captured_at; never in practice


def periods_of_games(root: SinkRoot, period: Period, tokens: Iterable[str]) -> dict[str, str]:
    """The period of each given game, read off its per-game metadata file (one column), else its
    raw snapshot; games with neither are left out. Cost: the games asked about, nothing else."""
    wanted = list(tokens)
    table = retry_vanished(
        lambda: pergame_dataset(root, GAME_METADATA, wanted).to_table(
            columns=["game_token", "ended_at"]
        )
    )
    out: dict[str, str] = {}
    for token, ended in zip(
        table["game_token"].to_pylist(), table["ended_at"].to_pylist(), strict=True
    ):
        if ended is not None:
            out[token] = period.key(ended)
    for token in wanted:
        if token not in out:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                captured = json.loads(root.read_raw_snapshot(token))["captured_at"]
                out[token] = game_period(period, None, captured)
    return out


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


def read_period(
    root: SinkRoot, asset: str, key: str, tokens: Iterable[str] | None = None
) -> pa.Table:
    """The compacted rows of one period (only those of ``tokens``, if given)."""
    schema = SCHEMAS[SOURCE[asset]]
    path = period_path(root, asset, key)
    if not path.is_file():
        return schema.empty_table()
    dataset = pyarrow_dataset().dataset(str(path), schema=schema, format="parquet")
    if tokens is None:
        return dataset.to_table()
    wanted = pa.array(sorted(set(tokens)), pa.string())
    return dataset.to_table(filter=pc.field("game_token").isin(wanted))


def compacted_dataset(root: SinkRoot, asset: str) -> "ds.Dataset":
    """Every compacted period of ``asset`` as one dataset with a ``period`` (string) column."""
    schema = SCHEMAS[SOURCE[asset]].append(pa.field("period", pa.string()))
    folder = compacted_dir(root, asset)
    if not folder.is_dir():
        return pyarrow_dataset().dataset([], schema=schema, format="parquet")
    hive = pyarrow_dataset().partitioning(pa.schema([("period", pa.string())]), flavor="hive")
    return pyarrow_dataset().dataset(
        str(folder), schema=schema, format="parquet", partitioning=hive
    )


def games_of_period(root: SinkRoot, key: str) -> list[str]:
    """The pending games of the period that have both per-game Parquet files."""
    return ready(root, pending_markers(root, key))


def ready(root: SinkRoot, markers: Iterable[str]) -> list[str]:
    """Those of ``markers`` whose game has both per-game Parquet files.

    Taken from one listing of the markers (not a second one): a game indexed between two
    listings would be compacted without the marker time its clearing is checked against."""
    return sorted(
        t for t in markers if all(root.parquet_path(SOURCE[a], t).is_file() for a in SOURCE)
    )


def compact_period(root: SinkRoot, asset: str, key: str, tokens: list[str]) -> pa.Table:
    """The period's rows: per-game files of ``tokens``, plus earlier rows of other games."""
    schema = SCHEMAS[SOURCE[asset]]
    fresh = retry_vanished(lambda: pergame_dataset(root, SOURCE[asset], tokens).to_table())
    parts = [fresh]
    old = read_period(root, asset, key)
    if old.num_rows:
        keep = pc.invert(pc.is_in(old["game_token"], value_set=pa.array(tokens, pa.string())))
        parts.append(old.filter(keep))
    table = pa.concat_tables(parts).cast(schema)
    return table.sort_by(SORT_KEYS[asset]).combine_chunks()


def _spec(name: str, period: Period, automation: dg.AutomationCondition | None) -> dg.AssetSpec:
    source = SOURCE[name]
    return dg.AssetSpec(
        name,
        group_name=GROUP,
        deps=[dg.AssetDep(source, partition_mapping=dg.AllPartitionMapping())],
        kinds={"parquet"},
        description=f"{source} rows of every game that ended in the {period.unit} (UTC), one "
        f"file per {period.unit}: compacted/{name}/period=<key>/part-0.parquet.",
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


def compact(root: SinkRoot, key: str, log: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Compact the pending games of period ``key``; returns each asset's metadata."""
    out: dict[str, dict] = {}
    with period_lock(root, key):
        markers = pending_markers(root, key)
        tokens = ready(root, markers)
        if log is not None and len(tokens) < len(markers):
            missing = sorted(set(markers) - set(tokens))
            log(f"{len(missing)} pending games of {key} lack a per-game file, kept pending: "
                + ", ".join(missing[:20]))  # fmt: skip
        for asset in (PODIUM_COMPACTED, METADATA_COMPACTED):  # podium first: see module docstring
            table = compact_period(root, asset, key, tokens)
            path = period_path(root, asset, key)
            root.write_file(path, encode_parquet(table))
            games = len(pc.unique(table["game_token"])) if table.num_rows else 0
            if log is not None:
                log(f"{asset} {key}: {table.num_rows} rows of {games} games -> {path}")
            out[asset] = {
                "dagster/row_count": table.num_rows,
                "games": games,
                "games_from_pergame_files": len(tokens),
                "path": dg.MetadataValue.path(str(path)),
            }
        if tokens:
            mark_pruned(root, key, "")
        clear_pending(root, key, {t: markers[t] for t in tokens})
    return out


def build_compaction(
    partitions_def: dg.TimeWindowPartitionsDefinition,
    period: Period,
    automation: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    """The compaction multi-asset over ``partitions_def`` (built from settings at load time)."""

    @dg.multi_asset(
        specs=[
            _spec(PODIUM_COMPACTED, period, automation),
            _spec(METADATA_COMPACTED, period, automation),
        ],
        partitions_def=partitions_def,
        can_subset=False,
        name="compaction",
        # Idempotent, so a step that failed on a transient race (a file replaced while read)
        # is simply run again, whichever sensor or backfill launched it.
        retry_policy=dg.RetryPolicy(max_retries=2, delay=1),
    )
    def compaction(
        context: dg.AssetExecutionContext, sink: SinkResource
    ) -> Iterator[dg.MaterializeResult]:
        key = context.partition_key  # one period per run (no single-run backfill policy)
        for asset, metadata in compact(sink.sink(), key, context.log.info).items():
            yield dg.MaterializeResult(asset_key=asset, metadata=metadata)

    return compaction
