"""The JSON and Parquet sinks: Arrow schemas, path rules and atomic writers.

Layout under the root (``$SUPERHERO_DATA_DIR``)::

    raw/game_snapshot/<t>.json         the listener's snapshot, verbatim
    json/<asset>/<t>.json              a JSON array of row objects
    parquet/<asset>/<t>.parquet        the same rows, typed by SCHEMAS

Why it is built this way:

* **Names are UUIDs only.** :func:`validate_token` runs before any path is built, so a partition key
  such as ``../../etc`` can never name a file; the asset part comes from a fixed set. Each folder is
  also resolved once and must lie inside the resolved root (a symlink out of the root is refused).
* **Atomic replace.** Both payloads are encoded in memory first (an encoding error touches no
  file), then each is written to a hidden temp file in the destination folder, fsynced, and
  ``os.replace``-d over the old file. A reader sees the old file or the new one, never half of one.
  The two files of one game are replaced one after the other, not together: a crash between them
  leaves one old and one new file, which re-materializing the game repairs.
* **Byte-stable.** Rows come sorted from :mod:`superhero_dagster.games`; JSON keys are written in
  schema order, one row per line; Parquet uses fixed writer options and carries no timestamp, so
  the same rows give the same bytes (with the same pyarrow version: its version string is in the
  file footer).
* **pyarrow, not pandas**: building a table from row dicts with a prebuilt schema is ~10x cheaper
  than a DataFrame round trip for these tiny tables (``benchmarks/bench_extract.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from superhero_dagster.files import WRITE_AREA, atomic_write, write_area
from superhero_dagster.keys import TOKEN_PATTERN

GAME_METADATA, GAME_PODIUM = "game_metadata", "game_podium"
RAW_SNAPSHOT = "game_snapshot"

_TS = pa.timestamp("us", tz="UTC")

#: Widths: hero ids are 1..N of a roster (732 in the real API): int32. P is 2..10 in the
#: simulator: int16 leaves room for any lobby. One hit is at most attack = speed*power*combat
#: <= 100**3 = 10**6 and a hero has at most health = 10**7, but a hero with attack 1 needs up to
#: 10**7 hits per opponent, so rounds fit int32 (< 2**31) while damage sums can pass 2**31 and
#: are int64. Times are real timestamps (microseconds, UTC), so DuckDB/pandas compare them natively.
SCHEMAS: dict[str, pa.Schema] = {
    GAME_PODIUM: pa.schema(
        [
            pa.field("game_token", pa.string(), nullable=False),
            pa.field("user_token", pa.string(), nullable=False),
            pa.field("superhero_id", pa.int32()),
            pa.field("rank", pa.int16(), nullable=False),
            pa.field("rounds", pa.int32(), nullable=False),
            pa.field("damage_delivered", pa.int64(), nullable=False),
            pa.field("damage_received", pa.int64(), nullable=False),
        ]
    ),
    GAME_METADATA: pa.schema(
        [
            pa.field("game_token", pa.string(), nullable=False),
            pa.field("user_token", pa.string(), nullable=False),
            pa.field("superhero_id", pa.int32()),
            pa.field("name", pa.string()),
            pa.field("participants", pa.int16(), nullable=False),
            pa.field("is_host", pa.bool_(), nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("started_at", _TS),
            pa.field("ended_at", _TS),
            pa.field("invalid_entries", pa.int32()),
            pa.field("deciding_entry", pa.int32()),
        ]
    ),
}

#: One line per column, for Dagster's column schema and the README.
COLUMN_DOCS: dict[str, str] = {
    "game_token": "game token (UUID), the partition key",
    "user_token": "player's user token (UUID)",
    "superhero_id": "hero id in the roster (null if the snapshot has no hero for the player)",
    "rank": "1 = last hero standing; the first eliminated of P players gets P",
    "rounds": "attacks the player delivered",
    "damage_delivered": "sum of ENEMY_DAMAGE of the player's attacks",
    "damage_received": "sum of ENEMY_DAMAGE of attacks on the player",
    "name": "hero name from the snapshot's roster",
    "participants": "P, distinct players who took part (may exceed the configured count)",
    "is_host": "the player created the game",
    "status": "'completed', 'timed_out' or 'log_lost' (Completed, but no complete log anywhere)",
    "started_at": "first attack (UTC); null without a log",
    "ended_at": "the deciding attack (UTC); without a log, the 'Cleaning Game Records' time",
    "invalid_entries": "log entries by an already-eliminated attacker (they count for nothing); "
    "null without a log",
    "deciding_entry": "1-based position in the log of the entry that decided the game; later "
    "entries are post-game; null without a log",
}

#: Fixed so that the same table always gives the same bytes.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "version": "2.6",
    "use_dictionary": False,
    "write_statistics": True,
    "store_schema": True,
}


class InvalidToken(ValueError):
    """A game token that is not a canonical lowercase UUID: it never becomes part of a path."""


def validate_token(token: str) -> str:
    """Return the token if it is ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` in lowercase hex.

    Uppercase and brace/URN forms are refused rather than normalized: one game has one name, and a
    partition key that differs from the file name would break backfills.
    """
    if isinstance(token, str) and TOKEN_PATTERN.fullmatch(token):
        return str.__str__(token)  # a plain str: a subclass could format itself differently
    shown = repr(token)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise InvalidToken(f"not a game token (lowercase UUID expected): {shown}")


def _check_asset(asset: str) -> pa.Schema:
    try:
        return SCHEMAS[asset]
    except (KeyError, TypeError):
        raise ValueError(f"unknown asset {asset!r}; expected one of {sorted(SCHEMAS)}") from None


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def encode_json(asset: str, rows: list[dict[str, Any]]) -> bytes:
    """A JSON array, one row per line, keys in schema order: readable and byte-stable."""
    names = _check_asset(asset).names
    wanted = set(names)
    lines = []
    for i, row in enumerate(rows):
        if row.keys() != wanted:
            raise ValueError(f"{asset} row {i}: columns {sorted(row)} != {sorted(names)}")
        ordered = {name: _json_value(row[name]) for name in names}
        lines.append(json.dumps(ordered, ensure_ascii=False, separators=(", ", ": ")))
    if not lines:
        return b"[]\n"
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode()


def to_table(asset: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows -> Arrow table under the asset's schema; nulls in non-nullable columns are refused
    (pyarrow would store them silently)."""
    schema = _check_asset(asset)
    # Column by column: ~7x cheaper than Table.from_pylist for the few rows of one game.
    try:
        columns = [pa.array([row[f.name] for row in rows], type=f.type) for f in schema]
    except KeyError as exc:
        raise ValueError(f"{asset}: a row has no column {exc.args[0]!r}") from None
    table = pa.Table.from_arrays(columns, schema=schema)
    for field, column in zip(schema, table.columns, strict=True):
        if not field.nullable and column.null_count:
            raise ValueError(f"{asset}: column {field.name} has {column.null_count} null(s)")
    return table


def encode_parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **_PARQUET_OPTIONS)
    return sink.getvalue().to_pybytes()


def _local_root(root: str | os.PathLike[str]) -> Path:
    text = os.fspath(root)
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise ValueError(f"sink root must be a local folder or a file:// URL, got {text!r}")
        text = unquote(parts.path)
    if "\0" in text:
        raise ValueError("sink root contains a NUL byte")
    return Path(text).expanduser().resolve()


class SinkRoot:
    """The sink folder. Cheap to build; makes folders lazily on first write."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = _local_root(root)
        self.fsync = fsync
        self._ready: set[Path] = set()
        self._area = write_area(self.root / WRITE_AREA)

    def __repr__(self) -> str:
        return f"SinkRoot({str(self.root)!r})"

    # --- paths -------------------------------------------------------------------------------
    def json_path(self, asset: str, token: str) -> Path:
        _check_asset(asset)
        return self.root / "json" / asset / f"{validate_token(token)}.json"

    def parquet_path(self, asset: str, token: str) -> Path:
        _check_asset(asset)
        return self.root / "parquet" / asset / f"{validate_token(token)}.parquet"

    def raw_snapshot_path(self, token: str) -> Path:
        return self.root / "raw" / RAW_SNAPSHOT / f"{validate_token(token)}.json"

    # --- writing -----------------------------------------------------------------------------
    def _folder(self, folder: Path) -> None:
        """Create once, then insist the real folder is inside the real root (symlinks included)."""
        if folder in self._ready:
            return
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.resolve().is_relative_to(self.root):
            raise ValueError(f"{folder} resolves outside the sink root {self.root}")
        self._ready.add(folder)

    def temp_path(self) -> Path:
        """A fresh name in the write area, for writes that finish with a link, not a rename."""
        return self._area.temp_path()

    def write_file(self, path: Path, data: bytes) -> None:
        """Replace one file under the root atomically (folders made as needed); a writer killed
        mid-write leaves its temp file in the write area, where the next writer sweeps it."""
        self._folder(path.parent)
        self._folder(self._area.folder)  # the area too must not be a symlink out of the root
        atomic_write(path, data, fsync=self.fsync, temp=self._area.temp_path())

    def _write_encoded(
        self, asset: str, token: str, json_bytes: bytes, parquet_bytes: bytes
    ) -> tuple[str, str]:
        json_path = self.json_path(asset, token)
        parquet_path = self.parquet_path(asset, token)
        self.write_file(parquet_path, parquet_bytes)
        self.write_file(json_path, json_bytes)
        return str(json_path), str(parquet_path)

    def write_rows(self, asset: str, token: str, rows: list[dict[str, Any]]) -> tuple[str, str]:
        """Replace both files of one game; returns (json path, parquet path)."""
        validate_token(token)
        json_bytes = encode_json(asset, rows)
        parquet_bytes = encode_parquet(to_table(asset, rows))
        return self._write_encoded(asset, token, json_bytes, parquet_bytes)

    def write_tables(
        self, asset: str, tables_by_token: Mapping[str, list[dict[str, Any]]]
    ) -> dict[str, tuple[str, str]]:
        """Batch form of :meth:`write_rows`: every token is checked before any file is written,
        and all rows go through Arrow conversion once (one table, sliced per game)."""
        tokens = [validate_token(token) for token in tables_by_token]
        everything = [row for token in tokens for row in tables_by_token[token]]
        table = to_table(asset, everything)
        encoded = []
        offset = 0
        for token in tokens:
            rows = tables_by_token[token]
            piece = table.slice(offset, len(rows))
            offset += len(rows)
            encoded.append((token, encode_json(asset, rows), encode_parquet(piece)))
        return {token: self._write_encoded(asset, token, j, p) for token, j, p in encoded}

    def write_raw_snapshot(self, token: str, data: bytes) -> str:
        path = self.raw_snapshot_path(token)
        self.write_file(path, bytes(data))
        return str(path)

    # --- reading -----------------------------------------------------------------------------
    def read_raw_snapshot(self, token: str) -> bytes:
        return self.raw_snapshot_path(token).read_bytes()

    def has_raw_snapshot(self, token: str) -> bool:
        return self.raw_snapshot_path(token).is_file()

    def read_rows(self, asset: str, token: str, *, sink: str = "parquet") -> list[dict[str, Any]]:
        """Rows as the writer got them (timestamps as aware datetimes), from either sink."""
        schema = _check_asset(asset)
        if sink == "parquet":
            return pq.read_table(self.parquet_path(asset, token), schema=schema).to_pylist()
        if sink != "json":
            raise ValueError(f"sink must be 'parquet' or 'json', got {sink!r}")
        rows = json.loads(self.json_path(asset, token).read_bytes())
        stamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
        return [_parse_stamps(row, stamps) for row in rows]

    def tokens(self, asset: str) -> Iterable[str]:
        """Games that have a Parquet file for the asset (sorted), e.g. to compare a backfill."""
        _check_asset(asset)
        folder = self.root / "parquet" / asset
        if not folder.is_dir():
            return []
        names = (p.name.removesuffix(".parquet") for p in folder.glob("*.parquet"))
        return sorted(name for name in names if TOKEN_PATTERN.fullmatch(name))


def _parse_stamps(row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    for name in names:
        if row.get(name) is not None:
            row[name] = datetime.fromisoformat(row[name]).astimezone(UTC)
    return row
