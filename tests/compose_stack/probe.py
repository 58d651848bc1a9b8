"""Run INSIDE the code-server container (`docker exec -i <id> python - < probe.py`).

Reads the stack's own Dagster instance (Postgres, via the container's DAGSTER_HOME) and the sinks
volume, and prints one JSON line: storage classes, materializations per asset and game, run
statuses and launch tags, daemon heartbeats, sink files. Standalone on purpose: the image holds
the package, not the tests.
"""

from __future__ import annotations

import collections
import json

import dagster as dg

from superhero_dagster.instance_config import RUN_KIND_TAG
from superhero_dagster.settings import Settings
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot

ASSETS = ("game_snapshot", GAME_METADATA, GAME_PODIUM)


def materializations(instance: dg.DagsterInstance, asset: str) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    cursor = None
    while True:
        page = instance.fetch_materializations(dg.AssetKey(asset), limit=5000, cursor=cursor)
        counts.update(rec.partition_key or "" for rec in page.records)
        if not page.has_more:
            return dict(counts)
        cursor = page.cursor


def describe(run: dg.DagsterRun) -> dict[str, object]:
    tags = {k: v for k, v in run.tags.items() if k.startswith(("dagster/", "superhero/"))}
    return {"run_id": run.run_id, "job": run.job_name, "status": run.status.value, "tags": tags}


def runs_by_kind_and_sensor(runs: list[dg.DagsterRun]) -> dict[str, dict[str, int]]:
    found: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in runs:
        found[r.tags.get(RUN_KIND_TAG, "")][r.tags.get("dagster/sensor_name", "")] += 1
    return {kind: dict(sensors) for kind, sensors in found.items()}


def main() -> None:
    settings = Settings.from_env()
    sink = SinkRoot(settings.data_dir)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        beats = instance.get_daemon_heartbeats()
        answer = {
            "run_storage": type(instance.run_storage).__name__,
            "event_log_storage": type(instance.event_log_storage).__name__,
            "materializations": {a: materializations(instance, a) for a in ASSETS},
            "runs": collections.Counter(r.status.value for r in runs),
            # run kind -> launching sensor -> runs: game batches come from the games sensor,
            # analytics runs (compaction, retention, leaderboard) from automation or schedules.
            "run_sensors": runs_by_kind_and_sensor(runs),
            "unfinished": [describe(r) for r in runs if not r.is_finished],
            "not_succeeded": [describe(r) for r in runs if r.status != dg.DagsterRunStatus.SUCCESS],
            "heartbeats": {
                kind: {"daemon_id": b.daemon_id, "timestamp": b.timestamp}
                for kind, b in beats.items()
            },
            "parquet": {a: len(list(sink.tokens(a))) for a in (GAME_METADATA, GAME_PODIUM)},
        }
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
