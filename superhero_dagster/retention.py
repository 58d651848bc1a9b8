"""Retention: keep the live ``games`` partitions under a cap, and drop those of old periods,
only ever for games whose rows the compacted files are verified to hold.

Dagster advises at most ~100k partitions per asset; at 50 games/s that is half an hour of
traffic. So retention runs every few minutes (``SUPERHERO_RETENTION_CRON``) and prunes two kinds
of games:

* **Over the cap**: the oldest partitions (insertion order) beyond ``PRUNE_TO`` of
  ``SUPERHERO_MAX_GAME_PARTITIONS``, so that the traffic until the next pass fits under the cap.
  They are found without loading the partition list: the newest partition's row id ``N`` is read
  (one row), and the partitions with an id at most ``N - target`` are paged through, newest first.
  Ids only grow, so at most ``target`` partitions have a larger id: the live set stays bounded
  whatever the gaps left by earlier deletions. Cost: the partitions pruned, not the history.
* **Older than N days** (``SUPERHERO_RETENTION_DAYS``): every game of a compacted period that
  ended before ``as_of - N days``; a period whose games are all gone gets a ``_PRUNED`` mark so
  later passes skip it without opening it.

Rules, so that nothing is lost:

* A game is pruned only if its period is compacted (both files present), it is not pending
  (no newer per-game files than its compacted rows) and, where its per-game Parquet files still
  exist, its rows in both compacted files equal them exactly (as multisets). Otherwise it is kept
  and reported; the next compaction of its period repairs it.
* Verified games lose their ``games`` partition and, if ``SUPERHERO_DELETE_GAME_FILES`` is on, their
  per-game JSON and Parquet files. The raw snapshot (``raw/game_snapshot/<t>.json``) is kept: it is
  the only copy of the attack log, and ``restore_pruned_games`` rebuilds per-game files from it.
* Idempotent: a second run finds nothing to do; a run that died half-way is finished by the next.
  Materialization history stays in the event log (Dagster keeps events of deleted partitions).
"""

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
from dagster._core.types.pagination import StorageIdCursor

from superhero_dagster.assets.compaction import (
    METADATA_COMPACTED,
    SOURCE,
    compacted_periods,
    is_compacted,
    mark_pruned,
    pending_markers,
    pergame_dataset,
    periods_of_games,
    pruned_level,
    read_period,
    retry_vanished,
)
from superhero_dagster.instance_config import ANALYTICS_TAGS
from superhero_dagster.partitions import (
    GAMES_PARTITIONS_NAME,
    delete_game_partitions,
    end_partition_id,
)
from superhero_dagster.periods import Period
from superhero_dagster.resources import SinkResource
from superhero_dagster.sinks import SinkRoot

RETENTION_JOB = "prune_game_partitions"
#: Prune down to this share of the cap: the games of the next few minutes must fit under it.
PRUNE_TO = 0.8
_PAGE = 1000


@dataclass
class RetentionReport:
    cutoff: datetime
    target: int
    over_cap: int = 0
    periods: list[str] = field(default_factory=list)
    partitions_deleted: int = 0
    files_deleted: int = 0
    kept_unverified: dict[str, str] = field(default_factory=dict)  # token -> why


def over_cap(instance: dg.DagsterInstance, target: int) -> list[str]:
    """Partitions beyond the newest ``target`` ids, newest first (empty when under it)."""
    newest = end_partition_id(instance, newest=True)
    if newest is None or newest <= target:
        return []
    cursor: str | None = StorageIdCursor(storage_id=newest - target + 1).to_string()
    out: list[str] = []
    while cursor is not None:
        page = instance.get_paginated_dynamic_partitions(
            GAMES_PARTITIONS_NAME, _PAGE, ascending=False, cursor=cursor
        )
        out.extend(page.results)
        cursor = page.cursor if page.has_more else None
    return out


def _rows_by_token(table: pa.Table) -> dict[str, Counter[tuple]]:
    out: dict[str, Counter[tuple]] = {}
    names = table.column_names
    for row in table.to_pylist():
        out.setdefault(row["game_token"], Counter())[tuple(row[n] for n in names)] += 1
    return out


def verify(root: SinkRoot, key: str, tokens: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Which of ``tokens`` (games of period ``key``) the compacted files hold exactly."""
    tokens = sorted(set(tokens))
    problems: dict[str, str] = {}
    if not is_compacted(root, key):
        return [], {t: f"period {key} is not compacted yet" for t in tokens}
    pending = pending_markers(root, key)  # one listing, not a stat per game
    for token in tokens:
        if token in pending:
            problems[token] = f"pending: written after the last compaction of {key}"
    checked = [t for t in tokens if t not in problems]
    for asset, source in SOURCE.items():
        compacted = _rows_by_token(read_period(root, asset, key, checked))
        with_files = [t for t in checked if root.parquet_path(source, t).is_file()]
        pergame = _rows_by_token(
            retry_vanished(lambda s=source, w=with_files: pergame_dataset(root, s, w).to_table())
        )
        for token in with_files:
            if pergame.get(token, Counter()) != compacted.get(token, Counter()):
                problems.setdefault(token, f"{source} rows differ from {asset} {key}")
        for token in checked:
            if token not in with_files and token not in compacted and asset == METADATA_COMPACTED:
                # No per-game file and no compacted row: nothing proves the game is held.
                problems.setdefault(token, f"not in {asset} {key} and no {source} file")
    return [t for t in tokens if t not in problems], problems


def _delete_files(root: SinkRoot, token: str) -> int:
    deleted = 0
    for asset in SOURCE.values():
        for path in (root.parquet_path(asset, token), root.json_path(asset, token)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                deleted += 1
    return deleted


def _prune(
    instance: dg.DagsterInstance,
    root: SinkRoot,
    report: RetentionReport,
    key: str,
    tokens: Iterable[str],
    alive: AbstractSet[str],
    delete_files: bool,
) -> list[str]:
    """Verify ``tokens`` of period ``key``; delete the partitions (those in ``alive``) and, if
    asked, the per-game files of the verified ones."""
    verified, problems = verify(root, key, tokens)
    report.kept_unverified.update(problems)
    if delete_files:
        for token in verified:
            report.files_deleted += _delete_files(root, token)
    gone = [token for token in verified if token in alive]
    delete_game_partitions(instance, gone)
    report.partitions_deleted += len(gone)
    return verified


def prune_games(
    instance: dg.DagsterInstance,
    root: SinkRoot,
    *,
    period: Period,
    max_partitions: int,
    retention_days: int,
    delete_files: bool,
    as_of: datetime | None = None,
    info: Callable[[str], None] | None = None,
) -> RetentionReport:
    """One retention pass: games over the cap, then games of periods older than N days."""
    if retention_days < 0:
        raise ValueError(f"retention_days must be >= 0, got {retention_days}")
    if max_partitions < 1:
        raise ValueError(f"max_partitions must be >= 1, got {max_partitions}")
    now = as_of or datetime.now(UTC)
    report = RetentionReport(
        cutoff=now - timedelta(days=retention_days), target=int(max_partitions * PRUNE_TO)
    )
    say = info or (lambda _msg: None)

    candidates = over_cap(instance, report.target)
    report.over_cap = len(candidates)
    by_period: dict[str, list[str]] = {}
    located = periods_of_games(root, period, candidates)
    for token in candidates:
        if token in located:
            by_period.setdefault(located[token], []).append(token)
        else:
            report.kept_unverified[token] = "no per-game file nor raw snapshot: period unknown"
    for key in sorted(by_period):
        tokens = by_period[key]
        done = _prune(instance, root, report, key, tokens, set(tokens), delete_files)
        report.periods.append(key)
        say(f"over the cap, {key}: {len(done)} of {len(by_period[key])} games pruned")

    for key in compacted_periods(root, period):
        if period.bounds(key)[1] > report.cutoff:
            break  # oldest first: the rest is younger
        level = "files" if delete_files else "partitions"
        if pruned_level(root, key) in (level, "files"):
            continue
        tokens = read_period(root, METADATA_COMPACTED, key)["game_token"].unique().to_pylist()
        alive = instance.get_existing_dynamic_partitions(GAMES_PARTITIONS_NAME, tokens)
        todo = tokens if delete_files else sorted(alive)
        done = _prune(instance, root, report, key, todo, alive, delete_files)
        if len(done) == len(todo):
            mark_pruned(root, key, level)
        report.periods.append(key)
        say(f"older than {retention_days} days, {key}: {len(done)} of {len(todo)} games pruned")
    return report


class RetentionConfig(dg.Config):
    """Defaults come from the settings (see :func:`build_retention_job`); the launchpad can
    override them for one run."""

    max_partitions: int
    retention_days: int
    delete_files: bool
    as_of: str = ""  # ISO 8601 date or time (UTC); empty = now


@dg.op(
    name="prune_games",
    description="Delete games partitions over the cap or of periods older than N days, once "
    "their rows are verified in the compacted files.",
)
def prune_games_op(
    context: dg.OpExecutionContext, config: RetentionConfig, sink: SinkResource
) -> dg.Output[None]:
    as_of = None
    if config.as_of:
        as_of = datetime.fromisoformat(config.as_of)
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    report = prune_games(
        context.instance,
        sink.sink(),
        period=sink.period(),
        max_partitions=config.max_partitions,
        retention_days=config.retention_days,
        delete_files=config.delete_files,
        as_of=as_of,
        info=context.log.info,
    )
    if report.kept_unverified:
        context.log.warning(
            f"{len(report.kept_unverified)} games kept (not compacted yet, or their period needs "
            "re-compaction): "
            + ", ".join(f"{t} ({why})" for t, why in sorted(report.kept_unverified.items())[:20])
        )
    return dg.Output(
        None,
        metadata={
            "cutoff": report.cutoff.isoformat(),
            "target_partitions": report.target,
            "over_cap": report.over_cap,
            "periods_touched": len(report.periods),
            "partitions_deleted": report.partitions_deleted,
            "files_deleted": report.files_deleted,
            "games_kept_unverified": len(report.kept_unverified),
        },
    )


def build_retention_job(
    max_partitions: int, retention_days: int, delete_files: bool
) -> dg.JobDefinition:
    @dg.job(
        name=RETENTION_JOB,
        description="Keeps the games partitions under SUPERHERO_MAX_GAME_PARTITIONS and drops "
        "those of periods older than SUPERHERO_RETENTION_DAYS, once the compacted files are "
        "verified to hold their rows (files too if SUPERHERO_DELETE_GAME_FILES).",
        config=dg.RunConfig(
            ops={
                "prune_games": RetentionConfig(
                    max_partitions=max_partitions,
                    retention_days=retention_days,
                    delete_files=delete_files,
                )
            }
        ),
        executor_def=dg.in_process_executor,
        tags=ANALYTICS_TAGS,
    )
    def prune_game_partitions() -> None:
        prune_games_op()

    return prune_game_partitions
