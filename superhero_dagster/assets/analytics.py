"""The hero leaderboard: which heroes win, and does hitting hard explain it?

Computed from per-period totals (``hero_totals.py``): each compacted period's sums are cached
and recomputed only when its files change, and the games not compacted yet are read from their
per-game files, found through the compaction's pending index. A refresh so reads what changed
since the last one, plus one small file per compacted period; no game is counted twice.

Per hero (``superhero_id``; rows of players without a known hero are left out):

* ``games``: podium appearances (completed games; a timed-out lobby has no podium);
* ``wins`` (rank 1), ``win_rate`` = wins / games, ``mean_rank``;
* ``expected_wins`` = sum over its games of 1/P (what chance alone gives in a P-player game) and
  ``win_lift`` = wins / expected_wins (> 1: better than chance, whatever the lobby sizes);
* ``damage_per_round`` = damage delivered / attacks made (the hero's hit strength, ≈ its attack
  stat), ``damage_taken_per_game`` = damage received / games.

Order (``leaderboard_rank``): wins, then win rate, then mean rank (lower is better), then id.
"""

import base64
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from superhero_dagster.assets.compaction import METADATA_COMPACTED, PODIUM_COMPACTED
from superhero_dagster.assets.hero_totals import collect, combined
from superhero_dagster.charts import Point, scatter_png
from superhero_dagster.resources import SinkResource
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot, encode_parquet

HERO_LEADERBOARD = "hero_leaderboard"
#: A hero with "null" powerstats attacks for 1 x 1 x 1 (SYSTEM.md): charted apart.
NULL_STATS_ATTACK = 1.0
GROUP = "analytics"
TOP = 20

LEADERBOARD_SCHEMA = pa.schema(
    [
        pa.field("leaderboard_rank", pa.int32(), nullable=False),
        pa.field("superhero_id", pa.int32(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("games", pa.int64(), nullable=False),
        pa.field("wins", pa.int64(), nullable=False),
        pa.field("win_rate", pa.float64(), nullable=False),
        pa.field("expected_wins", pa.float64(), nullable=False),
        pa.field("win_lift", pa.float64()),
        pa.field("mean_rank", pa.float64(), nullable=False),
        pa.field("rounds", pa.int64(), nullable=False),
        pa.field("damage_per_round", pa.float64()),
        pa.field("damage_taken_per_game", pa.float64(), nullable=False),
    ]
)

#: One line per column, for the column schema shown in the UI.
LEADERBOARD_DOCS = {
    "leaderboard_rank": "1 = most wins (then win rate, then mean rank, then id)",
    "superhero_id": "hero id in the roster",
    "name": "hero name from the snapshots' roster",
    "games": "podium appearances (completed games; a timed-out lobby has no podium)",
    "wins": "games where the hero was last standing (rank 1)",
    "win_rate": "wins / games",
    "expected_wins": "sum over its games of 1/P: the wins chance alone would give",
    "win_lift": "wins / expected_wins: > 1 is better than chance, whatever the lobby sizes",
    "mean_rank": "average rank, 1 = winner",
    "rounds": "attacks the hero made",
    "damage_per_round": "damage delivered / attacks made (≈ its attack stat); null: no attack",
    "damage_taken_per_game": "damage received / games",
}


def leaderboard_path(root: SinkRoot) -> Path:
    return root.root / "analytics" / f"{HERO_LEADERBOARD}.parquet"


def chart_path(root: SinkRoot) -> Path:
    return root.root / "analytics" / f"{HERO_LEADERBOARD}.png"


def compute_leaderboard(root: SinkRoot) -> tuple[pa.Table, dict[str, int]]:
    """The leaderboard table (LEADERBOARD_SCHEMA) and counts of what it was built from."""
    collected = collect(root)
    agg = combined(collected.parts)
    counts = {
        "games_counted": sum(p.games for p in collected.parts),
        "games_from_pergame_files": collected.pending_games,
        "periods_read": collected.periods_read,
        "periods_cached": collected.periods_cached,
    }
    games = pc.cast(agg["games"], pa.float64())
    wins = agg["wins"]
    rounds = agg["rounds"]
    nonzero_rounds = pc.if_else(pc.equal(rounds, 0), None, pc.cast(rounds, pa.float64()))
    nonzero_chance = pc.if_else(pc.equal(agg["expected_wins"], 0), None, agg["expected_wins"])
    table = pa.table(
        {
            "superhero_id": pc.cast(agg["superhero_id"], pa.int32()),
            "name": agg["name"],
            "games": agg["games"],
            "wins": wins,
            "win_rate": pc.divide(pc.cast(wins, pa.float64()), games),
            "expected_wins": agg["expected_wins"],
            "win_lift": pc.divide(pc.cast(wins, pa.float64()), nonzero_chance),
            "mean_rank": pc.divide(pc.cast(agg["rank_sum"], pa.float64()), games),
            "rounds": rounds,
            "damage_per_round": pc.divide(
                pc.cast(agg["damage_delivered"], pa.float64()), nonzero_rounds
            ),
            "damage_taken_per_game": pc.divide(
                pc.cast(agg["damage_received"], pa.float64()), games
            ),
        }
    )
    table = table.sort_by(
        [
            ("wins", "descending"),
            ("win_rate", "descending"),
            ("mean_rank", "ascending"),
            ("superhero_id", "ascending"),
        ]
    )
    ranks = pa.array(range(1, table.num_rows + 1), pa.int32())
    table = table.add_column(0, "leaderboard_rank", ranks)
    return table.cast(LEADERBOARD_SCHEMA), counts


#: The columns of the top-20 table shown on the asset's page (rounded for reading).
TOP_COLUMNS = [
    dg.TableColumn("rank", "int", description="leaderboard_rank: wins, then win rate, mean rank"),
    dg.TableColumn("hero", "string", description="hero name from the roster"),
    dg.TableColumn("id", "int", description="superhero_id"),
    dg.TableColumn("games", "int", description="podium appearances (completed games)"),
    dg.TableColumn("wins", "int", description="games where the hero was last standing"),
    dg.TableColumn("win_rate", "float", description="wins / games"),
    dg.TableColumn("vs_chance", "float", description="win_lift: wins / expected_wins (1 = luck)"),
    dg.TableColumn("mean_rank", "float", description="average rank, 1 = winner"),
    dg.TableColumn("dmg_per_round", "float", description="damage delivered / attacks made"),
    dg.TableColumn("dmg_taken_per_game", "float", description="damage received / games"),
]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def top_table(table: pa.Table, top: int = TOP) -> dg.TableMetadataValue:
    """The first ``top`` heroes as a Dagster table (rendered inline on the asset's page)."""
    records = [
        dg.TableRecord(
            {
                "rank": row["leaderboard_rank"],
                "hero": row["name"] or "?",
                "id": row["superhero_id"],
                "games": row["games"],
                "wins": row["wins"],
                "win_rate": round(row["win_rate"], 3),
                "vs_chance": _rounded(row["win_lift"], 2),
                "mean_rank": round(row["mean_rank"], 2),
                "dmg_per_round": _rounded(row["damage_per_round"], 0),
                "dmg_taken_per_game": round(row["damage_taken_per_game"], 0),
            }
        )
        for row in table.slice(0, top).to_pylist()
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=TOP_COLUMNS))


def chart(table: pa.Table) -> bytes:
    """Win rate vs damage per round, one dot per hero (area = games), top 5 named; heroes
    without damage data apart; the dashed line is the win rate chance alone would give."""
    rows = table.to_pylist()
    points = [
        Point(
            # Attack 1 is the "null" powerstats rule (1 x 1 x 1): not a measured strength.
            r["damage_per_round"] if (r["damage_per_round"] or 0) > NULL_STATS_ATTACK else None,
            r["win_rate"],
            r["games"],
            highlight=r["leaderboard_rank"] <= 5,
            label=f"{r['leaderboard_rank']}. {r['name'] or '?'} (#{r['superhero_id']})",
            mark=str(r["leaderboard_rank"]),
        )
        for r in rows
    ]
    games = sum(r["games"] for r in rows)
    chance = sum(r["expected_wins"] for r in rows) / games if games else None
    title = f"Win rate vs hit strength: {len(rows)} heroes"
    return scatter_png(points, chance=chance, title=title, nodata_label="null stats\n(attack 1)")


_CAPTION = (
    "*x*: damage per round (log scale) · *y*: win rate · dot area: games played · "
    "orange: top 5 (numbered) · dashed red: the win rate chance alone gives · grey, left: "
    "heroes with null powerstats (attack 1) or no attack"
)


@dg.asset(
    name=HERO_LEADERBOARD,
    group_name=GROUP,
    kinds={"parquet", "pyarrow"},
    deps=[
        dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping())
        for key in (PODIUM_COMPACTED, METADATA_COMPACTED, GAME_PODIUM, GAME_METADATA)
    ],
    description="Per hero: games, wins, win rate (and vs chance), mean rank, damage per round, "
    "damage taken per game; written to analytics/hero_leaderboard.parquet.",
    metadata={
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(f.name, str(f.type), description=LEADERBOARD_DOCS[f.name])
                for f in LEADERBOARD_SCHEMA
            ]
        )
    },
)
def hero_leaderboard(context: dg.AssetExecutionContext, sink: SinkResource) -> dg.MaterializeResult:
    root = sink.sink()
    table, counts = compute_leaderboard(root)
    path = leaderboard_path(root)
    root.write_file(path, encode_parquet(table))
    png = chart(table)
    root.write_file(chart_path(root), png)
    image = base64.b64encode(png).decode()
    context.log.info(f"{table.num_rows} heroes over {counts['games_counted']} games -> {path}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            **counts,
            "path": dg.MetadataValue.path(str(path)),
            "chart_path": dg.MetadataValue.path(str(chart_path(root))),
            "top_20": top_table(table),
            "win_rate_vs_damage": dg.MetadataValue.md(
                f"![win rate vs damage per round](data:image/png;base64,{image})\n\n{_CAPTION}"
            ),
        }
    )
