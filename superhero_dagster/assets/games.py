"""Per-game assets: the raw snapshot, then game_metadata and game_podium in both sinks.

One multi-asset step handles a whole batch of game partitions (``BackfillPolicy.single_run``):
Dagster's per-run cost is paid once per batch, not once per game. Each game still gets its own
materialization event (with its own metadata) per asset, so every game is its own partition in the
UI; a game that cannot be processed gets none, is reported by name, and fails the run only after
every other game of the batch has been written. The events are emitted so that Dagster can store
a batch's events in one go (see ``_materializations``).
"""

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import redis

from superhero_dagster import games, keys, log_findings
from superhero_dagster.assets.check_events import log_check_evaluations
from superhero_dagster.assets.compaction import game_period, mark_pending
from superhero_dagster.assets.partition_metadata import add_partition_metadata
from superhero_dagster.partitions import games_partitions
from superhero_dagster.redis_client import RedisUnavailable
from superhero_dagster.resources import RedisResource, SinkResource
from superhero_dagster.sinks import (
    COLUMN_DOCS,
    GAME_METADATA,
    GAME_PODIUM,
    SCHEMAS,
    InvalidToken,
    validate_token,
)
from superhero_dagster.snapshot import GameSnapshot, SnapshotError, parse_snapshot

GAME_SNAPSHOT = "game_snapshot"
ASSETS = (GAME_SNAPSHOT, GAME_METADATA, GAME_PODIUM)
GROUP = "games"
PODIUM_CHECK = "podium_consistent"
METADATA_CHECK = "metadata_consistent"
LOG_CHECK = "log_complete"
ANOMALY_CHECK = "source_anomalies"
#: Check -> (asset, severity). The first two are the pipeline's own invariants and a lost log is
#: lost data (ERROR); the game server's quirks are reported but do not turn anything red (WARN).
CHECKS: dict[str, tuple[str, dg.AssetCheckSeverity]] = {
    PODIUM_CHECK: (GAME_PODIUM, dg.AssetCheckSeverity.ERROR),
    METADATA_CHECK: (GAME_METADATA, dg.AssetCheckSeverity.ERROR),
    LOG_CHECK: (GAME_SNAPSHOT, dg.AssetCheckSeverity.ERROR),
    ANOMALY_CHECK: (GAME_SNAPSHOT, dg.AssetCheckSeverity.WARN),
}

#: Redis unreachable (restart, failover): the step is retried inside the run, up to this many
#: times this many seconds apart, instead of failing. Run retries do not cover step failures
#: (retry_on_asset_or_op_failure is off on purpose), and the sensor has already acknowledged the
#: batch, so a failed run would leave its games out of the sinks until someone backfilled them.
REDIS_RETRIES, REDIS_RETRY_SECONDS = 6, 5
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, RedisUnavailable)


def _column_schema(asset: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f.name, str(f.type), description=COLUMN_DOCS.get(f.name))
            for f in SCHEMAS[asset]
        ]
    )


def _game_summary(
    metadata_rows: list[dict[str, Any]], podium_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a person looks for on a game's partition: who won, how many played, when."""
    names = {r["user_token"]: (r["name"], r["superhero_id"]) for r in metadata_rows}
    winners = [names.get(r["user_token"], (None, r["superhero_id"])) for r in podium_rows
               if r["rank"] == 1]  # fmt: skip
    first = metadata_rows[0] if metadata_rows else {}
    summary: dict[str, Any] = {
        "winner": f"{winners[0][0] or '?'} (#{winners[0][1]})" if winners else "none",
        "players": len(metadata_rows),
        "game_status": first.get("status", "unknown"),
    }
    for field in ("started_at", "ended_at"):
        if first.get(field) is not None:
            summary[field] = dg.MetadataValue.timestamp(first[field])
    return summary


def _check_evaluations(token: str, findings: dict[str, list[str]]) -> list[dg.AssetCheckEvaluation]:
    """A failing check's evaluation **for this game's partition**, so the checks page names the
    game; the batch's summary result (every game checked) follows at the end of the step.

    Why failures only: even written as one batch (``check_events``), each evaluation is a row in
    both event files plus a row of ``asset_check_executions``; a passing one per game and check
    would be four of those per game, for nothing the batch summary does not already say."""
    evaluations = []
    for check_name, found in findings.items():
        if not found:
            continue
        asset, severity = CHECKS[check_name]
        evaluations.append(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(asset),
                check_name=check_name,
                passed=False,
                partition=token,
                severity=severity,
                description=f"game {token}: " + "; ".join(found),
                metadata={"game": token, "problems": "\n".join(found)},
            )
        )
    return evaluations


def _redis_copies(
    client: redis.Redis, project: keys.ProjectKeys, tokens: list[str]
) -> dict[str, bytes | None]:
    """The Redis copies of the batch's snapshots, in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    for token in tokens:
        pipe.get(project.snapshot(token))
    return dict(zip(tokens, pipe.execute(), strict=True))


def _retry_later() -> dg.RetryRequested:
    return dg.RetryRequested(max_retries=REDIS_RETRIES, seconds_to_wait=REDIS_RETRY_SECONDS)


def _release(
    client: redis.Redis,
    redis_resource: RedisResource,
    done: list[GameSnapshot],
    from_redis: set[str],
) -> None:
    """After success: expire the simulator's keys (as the seed's clean-up worker did), let the
    Redis copy of persisted snapshots go, drop the listener's attack stream of each game (the
    snapshot holds what it needed), record lost logs and the materialization time for `status` (sorted sets trimmed to the
    newest ``materialized_cap`` games, so they stay bounded)."""
    if not done:
        return
    project = redis_resource.project_keys
    expire = redis_resource.expire_after
    retention = redis_resource.snapshot_retention
    pipe = client.pipeline(transaction=False)
    now = time.time()
    for snap in done:
        if expire > 0:
            for key in keys.game_keys(snap.token, list(snap.players)):
                pipe.expire(key, expire)
        if snap.token in from_redis:
            if retention > 0:
                pipe.expire(project.snapshot(snap.token), retention)
            else:
                pipe.delete(project.snapshot(snap.token))
        pipe.delete(project.stream(snap.token), project.stream_seen(snap.token))
        if games.outcome(snap) == games.LOG_LOST:
            pipe.zadd(project.log_lost, {snap.token: now}, nx=True)
    pipe.zadd(project.materialized, {snap.token: round(now, 3) for snap in done})
    # Newest kept: ranks 0 .. -(cap + 1) are the oldest beyond the cap (O(log n + removed)).
    pipe.zremrangebyrank(project.materialized, 0, -(redis_resource.materialized_cap + 1))
    pipe.zremrangebyrank(project.log_lost, 0, -(redis_resource.materialized_cap + 1))
    pipe.hincrby(project.stats, "materialized", len(done))
    pipe.execute()


class GameAssetsConfig(dg.Config):
    """Run config of the game batch (the defaults are what the sensor's runs use)."""

    per_game_events: bool = False
    """Emit one AssetMaterialization per game and asset instead of one MaterializeResult per asset
    over the run's partitions: the events then reach the storage one by one (no batch write).
    Same materializations and metadata; kept to measure the difference (bench_bookkeeping)."""


def _materializations(
    context: dg.AssetExecutionContext,
    tokens: list[str],
    per_game: dict[str, dict[str, dict[str, Any]]],
    *,
    batched: bool,
) -> Iterator[Any]:
    """Each written game gets its own materialization per asset, with its own metadata.

    Every game of the run written: one ``MaterializeResult`` per asset over the run's partitions,
    which Dagster expands into one event per game and, with ``DAGSTER_EVENT_BATCH_SIZE`` set,
    stores as one batch (a single transaction per shard with the project's SQLite storage).
    Some game failed: a MaterializeResult would mark every partition of the range, so the games
    that were written get one ``AssetMaterialization`` each instead (stored one by one; rare).
    The latter is also what ``per_game_events`` asks for (the pre-batching path, for comparison).
    """
    if batched:
        if tokens:
            targeted = set(tokens)
            for asset in ASSETS:
                add_partition_metadata(context, asset, per_game[asset], targeted)
                yield dg.MaterializeResult(asset_key=asset)
        return
    for token in per_game[GAME_SNAPSHOT]:
        for asset in ASSETS:
            yield dg.AssetMaterialization(asset, partition=token, metadata=per_game[asset][token])


def snapshot_metadata(snap: GameSnapshot, path: str) -> dict[str, Any]:
    """The game_snapshot materialization's metadata: where it is, how it was captured, which copy
    of the log the rows come from, and what the game server did oddly (counts)."""
    meta: dict[str, Any] = {
        "path": dg.MetadataValue.path(path),
        "captured_at": snap.captured_at,
        "captured_by": snap.captured_by,
        "trigger": snap.trigger,
        "status": snap.status or "unknown",
        "outcome": games.outcome(snap),
    }
    meta.update(log_findings.log_summary(snap))
    return {k: v for k, v in meta.items() if v is not None}


def metadata_metadata(rows: list[dict[str, Any]], paths: tuple[str, str]) -> dict[str, Any]:
    """The game_metadata materialization's metadata for one game."""
    return {
        "dagster/row_count": len(rows),
        "json_path": dg.MetadataValue.path(paths[0]),
        "parquet_path": dg.MetadataValue.path(paths[1]),
    }


def podium_metadata(
    snap: GameSnapshot, rows: list[dict[str, Any]], paths: tuple[str, str]
) -> dict[str, Any]:
    """The game_podium materialization's metadata for one game."""
    return {
        "dagster/row_count": len(rows),
        "json_path": dg.MetadataValue.path(paths[0]),
        "parquet_path": dg.MetadataValue.path(paths[1]),
        "preview": dg.MetadataValue.md(games.podium_markdown(rows, snap)),
    }


def _findings(
    snap: GameSnapshot, metadata_rows: list[dict[str, Any]], podium_rows: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """Check name -> this game's problems ([] = passes)."""
    return {
        PODIUM_CHECK: games.podium_problems(snap, podium_rows),
        METADATA_CHECK: games.metadata_problems(snap, metadata_rows),
        LOG_CHECK: log_findings.log_problems(snap),
        ANOMALY_CHECK: log_findings.source_anomalies(snap),
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            GAME_SNAPSHOT,
            group_name=GROUP,
            skippable=True,
            kinds={"redis", "json"},
            description="The listener's snapshot of a finished game, persisted to raw/game_snapshot/<token>.json.",
        ),
        dg.AssetSpec(
            GAME_METADATA,
            group_name=GROUP,
            skippable=True,
            deps=[GAME_SNAPSHOT],
            kinds={"parquet", "json"},
            description="One row per participant: hero, host flag, status and game times.",
            metadata={"dagster/column_schema": _column_schema(GAME_METADATA)},
        ),
        dg.AssetSpec(
            GAME_PODIUM,
            group_name=GROUP,
            skippable=True,
            deps=[GAME_SNAPSHOT],
            kinds={"parquet", "json"},
            description="One row per participant: rank (1 = last standing), rounds, damage dealt and taken.",
            metadata={"dagster/column_schema": _column_schema(GAME_PODIUM)},
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            PODIUM_CHECK,
            asset=GAME_PODIUM,
            description="Ranks are 1..P with one winner; damage delivered equals damage received; one row per participant.",
        ),
        dg.AssetCheckSpec(
            METADATA_CHECK,
            asset=GAME_METADATA,
            description="One row per participant; every superhero id exists in the game's roster snapshot.",
        ),
        dg.AssetCheckSpec(
            LOG_CHECK,
            asset=GAME_SNAPSHOT,
            description="A Completed game has a complete attack log (the Redis list or the listener's attack stream); failing = the log was lost (ERROR).",
        ),
        dg.AssetCheckSpec(
            ANOMALY_CHECK,
            asset=GAME_SNAPSHOT,
            description="The game server's quirks, by game (WARN, never our bug): invalid or post-game entries, the winner killed after the end, overfilled lobbies.",
        ),
    ],
    partitions_def=games_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
    name="game_assets",
)
def game_assets(
    context: dg.AssetExecutionContext,
    config: GameAssetsConfig,
    redis: RedisResource,
    sink: SinkResource,
) -> Iterator[Any]:
    tokens = list(context.partition_keys)  # a range is read by row id (RangeByRowIdPartitions)
    root = sink.sink()
    # Metadata and podium files are rebuilt from the persisted snapshot by any backfill, so they
    # skip the per-file fsync (about 1-2 ms each here); the snapshot itself keeps it: once the
    # Redis copy is released it is the only copy.
    derived = sink.sink(fsync=False)
    period = sink.period()
    failures: dict[str, str] = {}
    valid: list[str] = []
    for token in tokens:
        try:
            valid.append(validate_token(token))
        except InvalidToken as exc:
            failures[token] = str(exc)
    project = redis.project_keys
    try:
        client = redis.client()
        raw_by_token = _redis_copies(client, project, valid)
    except _REDIS_DOWN as exc:
        raise _retry_later() from exc
    done: list[GameSnapshot] = []
    from_redis: set[str] = set()
    check_failures: dict[str, dict[str, list[str]]] = {name: {} for name in CHECKS}
    per_game: dict[str, dict[str, dict[str, Any]]] = {asset: {} for asset in ASSETS}
    evaluations: list[dg.AssetCheckEvaluation] = []

    for token in valid:
        raw = raw_by_token[token]
        try:
            if raw is not None:
                data = raw
                from_redis.add(token)
            elif root.has_raw_snapshot(token):
                data = root.read_raw_snapshot(token)
            else:
                failures[token] = (
                    f"game {token}: no snapshot in Redis nor at {root.raw_snapshot_path(token)}"
                )
                continue
            snap = parse_snapshot(data, expected_token=token)
        except SnapshotError as exc:
            failures[token] = str(exc)
            continue
        snapshot_path = (
            root.write_raw_snapshot(token, data)
            if raw is not None
            else str(root.raw_snapshot_path(token))
        )
        metadata_rows = games.metadata_rows(snap)
        podium_rows = games.podium_rows(snap)
        summary = _game_summary(metadata_rows, podium_rows)
        meta_paths = derived.write_rows(GAME_METADATA, token, metadata_rows)
        pod_paths = derived.write_rows(GAME_PODIUM, token, podium_rows)
        ended = next((r["ended_at"] for r in metadata_rows if r["ended_at"]), None)
        mark_pending(root, game_period(period, ended, snap.captured_at), token)
        per_game[GAME_SNAPSHOT][token] = snapshot_metadata(snap, snapshot_path)
        per_game[GAME_METADATA][token] = {**metadata_metadata(metadata_rows, meta_paths), **summary}
        per_game[GAME_PODIUM][token] = {**podium_metadata(snap, podium_rows, pod_paths), **summary}
        findings = _findings(snap, metadata_rows, podium_rows)
        for check_name, problems in findings.items():
            if problems:
                check_failures[check_name][token] = problems
        evaluations.extend(_check_evaluations(token, findings))
        done.append(snap)

    try:
        _release(client, redis, done, from_redis)
    except _REDIS_DOWN as exc:
        raise _retry_later() from exc  # the retry rewrites the same bytes, then releases
    log_check_evaluations(context, evaluations)
    yield from _materializations(
        context, tokens, per_game, batched=not failures and not config.per_game_events
    )
    for check_name, (asset, severity) in CHECKS.items():
        failing = check_failures[check_name]
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name=check_name,
            passed=not failing,
            severity=severity,
            description=(
                f"{len(failing)} of {len(done)} games failed: " + ", ".join(sorted(failing))
                if failing
                else f"{len(done)} games checked"
            ),
            metadata={
                "games_checked": len(done),
                "failing_games": dg.MetadataValue.json(failing),
            },
        )
    if failures:
        listed = "\n".join(f"- {msg}" for msg in failures.values())
        raise dg.Failure(
            description=f"{len(failures)} of {len(tokens)} games could not be materialized "
            f"(the other {len(done)} were):\n{listed}",
            metadata={"failed_games": dg.MetadataValue.json(failures)},
        )
