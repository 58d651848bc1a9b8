"""A leaderboard refresh against the history: cached per-period totals vs reading every row.

Issue 14 asks that what the pipeline does per run not grow with history. The leaderboard sums
over every game kept, so its refresh reads the cached totals of each compacted period and
recomputes only the periods with pending games (the current hour, always hot under traffic). This
writes P compacted hours of G synthetic games each (4 players, heroes drawn from 732, files in the
compaction's layout and schemas), marks one game of the newest hour pending, and times:

* **baseline**: the totals of every compacted row, read whole (what a refresh cost before the
  cache; the same ``totals_of``/``combined`` code, so only the reading differs);
* **refresh**: ``hero_totals.collect`` with the cache warm (the hot hour read again) + ``combined``.

Both give the same table (checked). Ratios are baseline / refresh in the same run.

    .venv/bin/python -m benchmarks.bench_leaderboard [--periods 24,168,720] [--games 5000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from superhero_dagster.assets.compaction import (
    METADATA_COMPACTED,
    PODIUM_COMPACTED,
    SOURCE,
    compacted_dataset,
    mark_pending,
    period_path,
)
from superhero_dagster.assets.hero_totals import (
    METADATA_COLUMNS,
    PODIUM_COLUMNS,
    collect,
    combined,
    totals_of,
)
from superhero_dagster.periods import Period
from superhero_dagster.sinks import SCHEMAS, SinkRoot, encode_parquet

HOUR = Period("hour")
PLAYERS, HEROES = 4, 732


def uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random lowercase UUID strings, vectorized (millions are needed)."""
    chars = np.frombuffer(rng.bytes(16 * n).hex().encode(), "S1").reshape(n, 32)
    dash = np.full((n, 1), b"-", "S1")
    cut = [chars[:, :8], dash, chars[:, 8:12], dash, chars[:, 12:16], dash, chars[:, 16:20]]
    joined = np.ascontiguousarray(np.hstack([*cut, dash, chars[:, 20:]]))
    return joined.view("S36").reshape(n).astype(str)


def hour_tables(rng: np.random.Generator, games: int, start: datetime) -> dict[str, pa.Table]:
    """Podium and metadata rows of ``games`` 4-player games of one hour (full schemas)."""
    n = games * PLAYERS
    game = np.repeat(uuids(rng, games), PLAYERS)
    users = uuids(rng, n)
    heroes = rng.integers(1, HEROES + 1, n, dtype=np.int32)
    ranks = rng.permuted(np.tile(np.arange(1, PLAYERS + 1, dtype=np.int16), (games, 1)), axis=1)
    podium = {
        "game_token": game,
        "user_token": users,
        "superhero_id": heroes,
        "rank": ranks.reshape(-1),
        "rounds": rng.integers(1, 41, n, dtype=np.int32),
        "damage_delivered": rng.integers(0, 10**6, n),
        "damage_received": rng.integers(0, 10**6, n),
    }
    base = np.datetime64(start.replace(tzinfo=None), "us")
    ended = np.repeat(
        base + rng.integers(0, 3600 * 10**6, games).astype("timedelta64[us]"), PLAYERS
    )
    metadata = {
        "game_token": game,
        "user_token": users,
        "superhero_id": heroes,
        "name": np.char.add("Hero ", heroes.astype(str)),
        "participants": np.full(n, PLAYERS, np.int16),
        "is_host": np.arange(n) % PLAYERS == 0,
        "status": np.full(n, "completed"),
        "started_at": ended - np.timedelta64(30, "s"),
        "ended_at": ended,
        "invalid_entries": np.zeros(n, np.int32),
        "deciding_entry": rng.integers(3, 41, n, dtype=np.int32),
    }
    return {
        PODIUM_COMPACTED: pa.table(podium, schema=SCHEMAS[SOURCE[PODIUM_COMPACTED]]),
        METADATA_COMPACTED: pa.table(metadata, schema=SCHEMAS[SOURCE[METADATA_COMPACTED]]),
    }


def grow(root: SinkRoot, rng: np.random.Generator, have: int, want: int, games: int) -> str:
    """Write compacted hours ``have``..``want``-1; returns the newest hour's key."""
    first = datetime(2026, 1, 1, tzinfo=UTC)
    key = ""
    for i in range(have, want):
        start = first + timedelta(hours=i)
        key = HOUR.key(start)
        for asset, table in hour_tables(rng, games, start).items():
            root.write_file(period_path(root, asset, key), encode_parquet(table))
    return key


def baseline(root: SinkRoot) -> pa.Table:
    """Every compacted row read whole, then the same sums."""
    totals = totals_of(
        compacted_dataset(root, PODIUM_COMPACTED).to_table(columns=PODIUM_COLUMNS),
        compacted_dataset(root, METADATA_COMPACTED).to_table(columns=METADATA_COLUMNS),
    )
    return combined([totals])


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--periods", default="24,168,720", help="compacted hours (increasing)")
    parser.add_argument("--games", type=int, default=5000, help="games per hour")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many")
    args = parser.parse_args(argv)
    sizes = [int(p) for p in args.periods.split(",")]
    if sizes != sorted(sizes) or sizes[0] < 1:
        parser.error("--periods must be increasing positive integers")
    rng = np.random.default_rng(14)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-leaderboard-") as tmp:
        root = SinkRoot(Path(tmp) / "data", fsync=False)
        have = 0
        for p in sizes:
            newest = grow(root, rng, have, p, args.games)
            have = p
            # One game of the newest hour pending again: that hour is hot, as under traffic.
            podium = pads.dataset(str(period_path(root, PODIUM_COMPACTED, newest)))
            mark_pending(root, newest, podium.head(1)["game_token"][0].as_py())
            collect(root)  # warms the cache for the hours added (untimed)
            base_s, want = timed(lambda: baseline(root), args.repeat)
            refresh_s, got = timed(lambda: combined(collect(root).parts), args.repeat)
            assert got.equals(want), "the cached totals differ from the whole read"
            rows.append((p, p * args.games, base_s, refresh_s))
            print(f"measured {p} hours", flush=True)
    print()
    print(f"{args.games} games per hour, 4 players; best of {args.repeat}; ratio in the same run")
    print("| compacted hours | games | baseline: read every row, ms | refresh: cached totals, ms"
          " | baseline / refresh |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for p, games, base_s, refresh_s in rows:
        print(f"| {p} | {games} | {base_s * 1e3:.0f} | {refresh_s * 1e3:.0f} | "
              f"{base_s / refresh_s:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
