"""The sensor that compacts periods other than the current one when games are pending in them.

Automation compacts the **current** period (it only looks at the latest time window). Everything
else that has pending games needs a run too: the tail of the period that just closed (games of
its last minutes), and **late games**, ones that end in a period compacted long ago (a backfill,
a game materialized after an outage, a reconcile capture). The game asset indexes every game it
writes under its period (``compacted/_pending/<key>/``), so a tick lists the periods with pending
games (folder names only: its cost is the number of such periods, not the history) and asks for
one compaction run per period. The run key carries the newest marker's time, so a period is asked
for again only when a game was (re)written since, and a period whose run is in flight is not
asked for twice.
"""

from __future__ import annotations

import dagster as dg

from superhero_dagster.assets.compaction import pending_markers, pending_periods
from superhero_dagster.periods import Period
from superhero_dagster.resources import SinkResource
from superhero_dagster.sensors import default_status

SENSOR_NAME = "compact_pending_periods"
INTERVAL_SECONDS = 60


def build_pending_periods_sensor(
    job: dg.UnresolvedAssetJobDefinition,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    period: Period,
    *,
    running: bool,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=default_status(running),
        description="Compacts closed periods with pending games: the tail of the period that "
        "just closed, and late games of periods compacted before.",
    )
    def compact_pending_periods(
        context: dg.SensorEvaluationContext, sink: SinkResource
    ) -> dg.SensorResult:
        root = sink.sink()
        latest = partitions_def.get_last_partition_key()
        first = partitions_def.get_first_partition_key()
        requests, before_start = [], []
        for key in pending_periods(root, period):
            if key == latest:
                continue  # automation's
            if first is None or key < first:
                before_start.append(key)
                continue
            newest = max(pending_markers(root, key).values(), default=0)
            requests.append(dg.RunRequest(run_key=f"{key}@{newest}", partition_key=key))
        if before_start:
            context.log.warning(
                f"games pending in {len(before_start)} periods before the first partition {first} "
                f"(set SUPERHERO_ANALYTICS_START earlier to compact them): {before_start[:10]}"
            )
        if not requests:
            return dg.SensorResult(skip_reason="no closed period has pending games")
        return dg.SensorResult(run_requests=requests)

    return compact_pending_periods
