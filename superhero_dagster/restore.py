"""Bringing pruned games back: a job over the compaction periods that rebuilds per-game files.

Retention drops a game's ``games`` partition (and, with ``SUPERHERO_DELETE_GAME_FILES``, its
per-game files) once its compacted rows are verified; its raw snapshot is always kept. A user who
needs the per-game files of a time window again launches a **backfill of this job over those
periods** (UI: the job's partitions tab, or ``dagster job backfill``). For each game in a
period's compacted files, it writes the per-game JSON and Parquet files of both assets from the
compacted rows, which are exactly the rows that were verified before pruning (so no extraction
code, old or new, can change them), and says whether the game's raw snapshot is still there for
a full re-materialization. ``add_partitions`` also registers the games as ``games`` partitions
again (their materialization history is still in the event log); off by default, since the cap
applies to them again.
"""

import dagster as dg
import pyarrow.compute as pc

from superhero_dagster.assets.compaction import SOURCE, is_compacted, read_period
from superhero_dagster.instance_config import ANALYTICS_TAGS
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.resources import SinkResource
from superhero_dagster.sinks import SinkRoot

RESTORE_JOB = "restore_pruned_games"


class RestoreConfig(dg.Config):
    overwrite: bool = False
    """Rewrite per-game files that exist (default: only the missing ones)."""
    add_partitions: bool = False
    """Register the period's games as ``games`` partitions again."""


def restore_period(
    root: SinkRoot, key: str, *, overwrite: bool
) -> tuple[list[str], dict[str, int]]:
    """Rebuild the per-game files of the games of period ``key`` from its compacted rows;
    returns the period's games and what was done."""
    if not is_compacted(root, key):
        raise dg.Failure(f"period {key} is not compacted: there is nothing to restore from")
    tables = {asset: read_period(root, asset, key) for asset in SOURCE}
    tokens = sorted(set().union(*(pc.unique(t["game_token"]).to_pylist() for t in tables.values())))
    counts = {"games": len(tokens), "files_written": 0}
    for asset, table in tables.items():
        source = SOURCE[asset]
        by_token: dict[str, list[dict]] = {t: [] for t in tokens}
        for row in table.to_pylist():
            by_token[row["game_token"]].append(row)
        todo = {
            t: rows
            for t, rows in by_token.items()
            if overwrite or not root.parquet_path(source, t).is_file()
        }
        if todo:
            root.write_tables(source, todo)
            counts["files_written"] += 2 * len(todo)
    counts["without_raw_snapshot"] = sum(not root.has_raw_snapshot(t) for t in tokens)
    return tokens, counts


def build_restore_job(partitions_def: dg.TimeWindowPartitionsDefinition) -> dg.JobDefinition:
    @dg.op(name="restore_games", description="Rebuild per-game files of one compacted period.")
    def restore_games_op(
        context: dg.OpExecutionContext, config: RestoreConfig, sink: SinkResource
    ) -> dg.Output[None]:
        root = sink.sink()
        key = context.partition_key
        tokens, counts = restore_period(root, key, overwrite=config.overwrite)
        if config.add_partitions and tokens:
            context.instance.add_dynamic_partitions(GAMES_PARTITIONS_NAME, tokens)
        context.log.info(f"{key}: {counts}")
        return dg.Output(None, metadata={"period": key, **counts})

    @dg.job(
        name=RESTORE_JOB,
        partitions_def=partitions_def,
        executor_def=dg.in_process_executor,
        tags=ANALYTICS_TAGS,
        description="Backfill over a time window: rebuilds the per-game files of the games of "
        "those compacted periods (e.g. after retention pruned them).",
    )
    def restore_pruned_games() -> None:
        restore_games_op()

    return restore_pruned_games
