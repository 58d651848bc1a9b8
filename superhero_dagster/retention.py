"""Retention: drop the per-game ``games`` partitions (and optionally files) of compacted old days.

Dagster advises at most ~100k partitions per asset; one partition per game passes that within
days of steady traffic. Once a day is compacted (``daily/…/date=D/``), its games' rows live in
the daily files, so their per-game partitions can go.

Rules, so that nothing is lost:

* Only **compacted** days are looked at (both daily files present), and only days **older than
  N days**: ``day < as_of - N`` (N = ``SUPERHERO_RETENTION_DAYS``; ``as_of`` = today, UTC).
  A game is a candidate only if it is in that day's ``metadata_daily`` file.
* A candidate whose per-game Parquet files still exist is **verified** first: its rows in both
  daily files must equal its per-game rows exactly (same rows, as multisets). A game that fails
  (re-materialized since the compaction, or with a missing podium file) is kept and reported;
  re-compacting its day repairs it.
* Verified games lose their ``games`` partition and, if ``SUPERHERO_DELETE_GAME_FILES`` is on, their
  per-game JSON and Parquet files (metadata and podium). The raw snapshot
  (``raw/game_snapshot/<t>.json``) is kept: it is the only copy of the attack log.
* Idempotent: a second run finds nothing to do; a run that died half-way is finished by the next.
  Materialization history stays in the event log (Dagster keeps events of deleted partitions).
"""

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa

from superhero_dagster.assets.daily import (
    METADATA_DAILY,
    PODIUM_DAILY,
    SOURCE,
    compacted_days,
    daily_path,
    pergame_dataset,
    pyarrow_dataset,
    retry_vanished,
)
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.resources import SinkResource
from superhero_dagster.sinks import SCHEMAS, SinkRoot

RETENTION_JOB = "prune_game_partitions"


@dataclass
class RetentionReport:
    cutoff: date
    days: list[str] = field(default_factory=list)
    partitions_deleted: int = 0
    files_deleted: int = 0
    kept_unverified: dict[str, str] = field(default_factory=dict)  # token -> why
    partitions_left: int = 0


def _rows_by_token(table: pa.Table) -> dict[str, Counter[tuple]]:
    out: dict[str, Counter[tuple]] = {}
    names = table.column_names
    for row in table.to_pylist():
        out.setdefault(row["game_token"], Counter())[tuple(row[n] for n in names)] += 1
    return out


def _verify_day(root: SinkRoot, day: date) -> tuple[list[str], dict[str, str]]:
    """Tokens of the day whose per-game rows (if any remain) equal their daily rows."""
    daily = {}
    for asset in (PODIUM_DAILY, METADATA_DAILY):
        schema = SCHEMAS[SOURCE[asset]]
        table = (
            pyarrow_dataset().dataset(str(daily_path(root, asset, day)), schema=schema).to_table()
        )
        daily[asset] = _rows_by_token(table)
    tokens = sorted(daily[METADATA_DAILY])
    problems: dict[str, str] = {}
    for asset in (PODIUM_DAILY, METADATA_DAILY):
        source = SOURCE[asset]
        with_files = [t for t in tokens if root.parquet_path(source, t).is_file()]
        pergame = _rows_by_token(
            retry_vanished(lambda s=source, w=with_files: pergame_dataset(root, s, w).to_table())
        )
        for token in with_files:
            if pergame.get(token, Counter()) != daily[asset].get(token, Counter()):
                problems.setdefault(token, f"{source} rows differ from {asset} {day}")
        if asset == PODIUM_DAILY:
            # A metadata file without its podium file is a half-written game: keep it.
            for token in tokens:
                meta_file = root.parquet_path(SOURCE[METADATA_DAILY], token).is_file()
                if meta_file and token not in with_files:
                    problems.setdefault(token, f"{source} file missing")
    return [t for t in tokens if t not in problems], problems


def _delete_files(root: SinkRoot, token: str) -> int:
    deleted = 0
    for asset in SOURCE.values():
        for path in (root.parquet_path(asset, token), root.json_path(asset, token)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                deleted += 1
    return deleted


def prune_games(
    instance: dg.DagsterInstance,
    root: SinkRoot,
    *,
    retention_days: int,
    delete_files: bool,
    as_of: date | None = None,
    info: Callable[[str], None] | None = None,
) -> RetentionReport:
    """Delete the ``games`` partitions (and files, if asked) of verified games of old days."""
    if retention_days < 0:
        raise ValueError(f"retention_days must be >= 0, got {retention_days}")
    today = as_of or datetime.now(UTC).date()
    report = RetentionReport(cutoff=today - timedelta(days=retention_days))
    existing = set(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME))
    for day in compacted_days(root):
        if day >= report.cutoff:
            continue
        verified, problems = _verify_day(root, day)
        report.kept_unverified.update(problems)
        for token in verified:
            if delete_files:
                report.files_deleted += _delete_files(root, token)
            if token in existing:
                instance.delete_dynamic_partition(GAMES_PARTITIONS_NAME, token)
                existing.discard(token)
                report.partitions_deleted += 1
        report.days.append(day.isoformat())
        if info is not None:
            info(f"{day}: {len(verified)} games pruned, {len(problems)} kept (unverified)")
    report.partitions_left = len(existing)
    return report


class RetentionConfig(dg.Config):
    """Defaults come from SUPERHERO_RETENTION_DAYS / SUPERHERO_DELETE_GAME_FILES (see
    :func:`build_retention_job`); the launchpad can override them for one run."""

    retention_days: int
    delete_files: bool
    as_of: str = ""  # YYYY-MM-DD; empty = today (UTC)


@dg.op(
    name="prune_games", description="Delete games partitions of compacted days older than N days."
)
def prune_games_op(
    context: dg.OpExecutionContext, config: RetentionConfig, sink: SinkResource
) -> dg.Output[None]:
    as_of = date.fromisoformat(config.as_of) if config.as_of else None
    report = prune_games(
        context.instance,
        sink.sink(),
        retention_days=config.retention_days,
        delete_files=config.delete_files,
        as_of=as_of,
        info=context.log.info,
    )
    if report.kept_unverified:
        context.log.warning(
            f"{len(report.kept_unverified)} games kept (their day needs re-compaction): "
            + ", ".join(f"{t} ({why})" for t, why in sorted(report.kept_unverified.items())[:20])
        )
    return dg.Output(
        None,
        metadata={
            "cutoff": report.cutoff.isoformat(),
            "days_pruned": len(report.days),
            "partitions_deleted": report.partitions_deleted,
            "files_deleted": report.files_deleted,
            "games_kept_unverified": len(report.kept_unverified),
            "partitions_left": report.partitions_left,
        },
    )


def build_retention_job(retention_days: int, delete_files: bool) -> dg.JobDefinition:
    @dg.job(
        name=RETENTION_JOB,
        description="Per-game partitions of compacted days older than SUPERHERO_RETENTION_DAYS "
        "are deleted (files too if SUPERHERO_DELETE_GAME_FILES); daily files keep every row.",
        config=dg.RunConfig(
            ops={
                "prune_games": RetentionConfig(
                    retention_days=retention_days, delete_files=delete_files
                )
            }
        ),
        executor_def=dg.in_process_executor,
    )
    def prune_game_partitions() -> None:
        prune_games_op()

    return prune_game_partitions
