"""Sinks: UUID-only names, atomic replace, byte-stable files, the empty podium's schema."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from superhero_dagster import games, sinks
from superhero_dagster.files import WRITE_AREA
from superhero_dagster.sinks import (
    GAME_METADATA,
    GAME_PODIUM,
    SCHEMAS,
    InvalidToken,
    SinkRoot,
    validate_token,
)
from superhero_dagster.snapshot import parse_snapshot
from tests.snapshot_factory import SnapshotBuilder, random_game, token

RNG = random.Random(3)
GAME = token(RNG)

HOSTILE = [
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    "",
    f"{GAME}\0",
    f"..\\..\\{GAME}",
    f"C:\\{GAME}",
    GAME.upper(),
    f"{{{GAME}}}",
    f"urn:uuid:{GAME}",
    f"{GAME}\n",
    f" {GAME}",
    GAME.replace("-", ""),
    GAME * 50,
    f"{GAME}/../{GAME}",
    None,
    12345,
    b"bytes",
]


def _files(root: Path) -> list[Path]:
    """The sink's files, not the write area's lock (see tests/test_write_area.py)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and WRITE_AREA not in p.parts)


def _played(seed: int = 5) -> tuple[str, list[dict], list[dict]]:
    snap = parse_snapshot(random_game(random.Random(seed)))
    return snap.token, games.metadata_rows(snap), games.podium_rows(snap)


def test_canonical_tokens_pass() -> None:
    assert validate_token(GAME) == GAME
    assert validate_token("00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize("bad", HOSTILE, ids=[repr(h)[:30] for h in HOSTILE])
def test_hostile_tokens_are_refused_before_any_path_exists(tmp_path: Path, bad) -> None:
    root = SinkRoot(tmp_path / "data")
    with pytest.raises(InvalidToken):
        validate_token(bad)
    for call in (
        lambda: root.json_path(GAME_PODIUM, bad),
        lambda: root.parquet_path(GAME_METADATA, bad),
        lambda: root.raw_snapshot_path(bad),
        lambda: root.write_rows(GAME_PODIUM, bad, []),
        lambda: root.write_tables(GAME_PODIUM, {GAME: [], bad: []}),
        lambda: root.write_raw_snapshot(bad, b"{}"),
        lambda: root.read_raw_snapshot(bad),
        lambda: root.has_raw_snapshot(bad),
        lambda: root.read_rows(GAME_PODIUM, bad),
    ):
        with pytest.raises(InvalidToken):
            call()
    assert not (tmp_path / "data").exists()  # not even the root folder was made


def test_invalid_token_message_is_short_and_one_line() -> None:
    with pytest.raises(InvalidToken) as caught:
        validate_token("a\n" * 1000)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 120


def test_unknown_asset_names_are_refused(tmp_path: Path) -> None:
    root = SinkRoot(tmp_path)
    for asset in ("../json", "game_podium/..", "raw", ""):
        with pytest.raises(ValueError, match="unknown asset"):
            root.write_rows(asset, GAME, [])
    assert _files(tmp_path) == []


def test_layout_and_round_trip_through_both_sinks(tmp_path: Path) -> None:
    root = SinkRoot(tmp_path)
    game, meta, podium = _played()
    json_path, parquet_path = root.write_rows(GAME_PODIUM, game, podium)
    assert json_path == str(tmp_path / "json" / "game_podium" / f"{game}.json")
    assert parquet_path == str(tmp_path / "parquet" / "game_podium" / f"{game}.parquet")
    root.write_rows(GAME_METADATA, game, meta)
    for asset, rows in ((GAME_PODIUM, podium), (GAME_METADATA, meta)):
        assert root.read_rows(asset, game) == rows
        assert root.read_rows(asset, game, sink="json") == rows
        assert pq.read_schema(root.parquet_path(asset, game)).remove_metadata() == SCHEMAS[asset]
        first = json.loads(root.json_path(asset, game).read_text())[0]
        assert list(first) == SCHEMAS[asset].names  # keys in schema order
    assert root.tokens(GAME_PODIUM) == [game]


def test_pandas_reads_what_the_readme_says(tmp_path: Path) -> None:
    root = SinkRoot(tmp_path)
    game, meta, _ = _played()
    root.write_rows(GAME_METADATA, game, meta)
    frame = pd.read_parquet(tmp_path / "parquet" / "game_metadata")
    assert len(frame) == 4 and str(frame["started_at"].dtype) == "datetime64[us, UTC]"
    assert str(frame["participants"].dtype) == "int16"
    from_json = pd.read_json(root.json_path(GAME_METADATA, game))
    assert sorted(from_json["user_token"]) == sorted(frame["user_token"])


def test_rewrite_replaces_and_gives_identical_bytes(tmp_path: Path) -> None:
    game, _, podium = _played()
    first = SinkRoot(tmp_path).write_rows(GAME_PODIUM, game, podium)
    before = [Path(p).read_bytes() for p in first]
    other = [dict(r, rounds=r["rounds"] + 1) for r in podium]
    SinkRoot(tmp_path).write_rows(GAME_PODIUM, game, other)
    assert SinkRoot(tmp_path).read_rows(GAME_PODIUM, game) == other  # replaced
    again = SinkRoot(tmp_path).write_rows(GAME_PODIUM, game, podium)  # a fresh root, as a new run
    assert [Path(p).read_bytes() for p in again] == before
    assert len(_files(tmp_path)) == 2  # never two names for one game
    assert _temp_files(tmp_path) == []


def test_batch_writer_gives_the_same_files_as_one_by_one(tmp_path: Path) -> None:
    rng = random.Random(9)
    snaps = [parse_snapshot(random_game(rng)) for _ in range(5)]
    lobby = SnapshotBuilder(token(rng), status="Timed Out")
    lobby.join(token(rng), 3, attack=1, health=1)
    snaps.append(parse_snapshot(lobby.to_json()))
    batch = {s.token: games.podium_rows(s) for s in snaps}
    assert batch[lobby.token] == []
    one, many = SinkRoot(tmp_path / "one"), SinkRoot(tmp_path / "many")
    for game, rows in batch.items():
        one.write_rows(GAME_PODIUM, game, rows)
    paths = many.write_tables(GAME_PODIUM, batch)
    assert set(paths) == set(batch)
    for game, (json_path, parquet_path) in paths.items():
        assert Path(json_path).read_bytes() == one.json_path(GAME_PODIUM, game).read_bytes()
        assert Path(parquet_path).read_bytes() == one.parquet_path(GAME_PODIUM, game).read_bytes()


def test_empty_podium_is_an_empty_array_and_a_parquet_file_with_the_schema(tmp_path: Path) -> None:
    root = SinkRoot(tmp_path)
    json_path, parquet_path = root.write_rows(GAME_PODIUM, GAME, [])
    assert Path(json_path).read_text() == "[]\n"
    table = pq.read_table(parquet_path)
    assert table.num_rows == 0
    assert table.schema.remove_metadata() == SCHEMAS[GAME_PODIUM]


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_a_failure_mid_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    game, _, podium = _played()
    root = SinkRoot(tmp_path)
    root.write_rows(GAME_PODIUM, game, podium)
    old = [p.read_bytes() for p in _files(tmp_path)]

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sinks.os, "fsync", disk_full)  # fails after the bytes went to the temp file
    with pytest.raises(OSError, match="No space"):
        root.write_rows(GAME_PODIUM, game, [dict(r, rounds=0) for r in podium])
    monkeypatch.undo()
    assert [p.read_bytes() for p in _files(tmp_path)] == old
    assert _temp_files(tmp_path) == []


def test_rows_that_do_not_fit_the_schema_touch_no_file(tmp_path: Path) -> None:
    game, _, podium = _played()
    root = SinkRoot(tmp_path)
    root.write_rows(GAME_PODIUM, game, podium)
    old = [p.read_bytes() for p in _files(tmp_path)]
    for broken in (
        [dict(podium[0], rank=None)],  # null in a non-nullable column
        [dict(podium[0], rank=70000)],  # does not fit int16
        [dict(podium[0], extra=1)],  # unknown column
        [{k: v for k, v in podium[0].items() if k != "rounds"}],  # missing column
    ):
        with pytest.raises((ValueError, OverflowError)):
            root.write_rows(GAME_PODIUM, game, broken)
        with pytest.raises((ValueError, OverflowError)):
            root.write_tables(GAME_PODIUM, {GAME: [], game: broken})
    assert [p.read_bytes() for p in _files(tmp_path)] == old
    assert _temp_files(tmp_path) == []


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root_dir = tmp_path / "data"
    (root_dir / "json").mkdir(parents=True)
    (root_dir / "json" / "game_podium").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the sink root"):
        SinkRoot(root_dir).write_rows(GAME_PODIUM, GAME, [])
    assert list(outside.iterdir()) == []


def test_files_get_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = SinkRoot(tmp_path, fsync=False).write_raw_snapshot(GAME, b"{}")
    finally:
        os.umask(umask)
    assert Path(path).stat().st_mode & 0o777 == 0o644  # readable by notebooks, not 0600


def test_raw_snapshot_round_trip(tmp_path: Path) -> None:
    root = SinkRoot(tmp_path)
    assert not root.has_raw_snapshot(GAME)
    data = random_game(random.Random(2)).encode()
    path = root.write_raw_snapshot(GAME, data)
    assert path == str(tmp_path / "raw" / "game_snapshot" / f"{GAME}.json")
    assert root.has_raw_snapshot(GAME) and root.read_raw_snapshot(GAME) == data


def test_file_url_roots_and_other_schemes(tmp_path: Path) -> None:
    root = SinkRoot(tmp_path.as_uri())
    assert root.root == tmp_path.resolve()
    root.write_rows(GAME_PODIUM, GAME, [])
    assert (tmp_path / "json" / "game_podium" / f"{GAME}.json").is_file()
    with pytest.raises(ValueError, match="local folder"):
        SinkRoot("s3://bucket/data")
