"""The bounded live set (issue 14): hourly periods, the pending index and its sensor (late games),
retention by the cap without reading the partition list, and restoring pruned games."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow.parquet as pq
import pytest

from superhero_dagster import retention
from superhero_dagster.assets.compaction import (
    METADATA_COMPACTED,
    PODIUM_COMPACTED,
    build_compaction,
    pending_dir,
    pending_periods,
    period_path,
)
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.periods import Period
from superhero_dagster.resources import SinkResource
from superhero_dagster.restore import build_restore_job
from superhero_dagster.sensors.pending_periods import build_pending_periods_sensor
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from tests.analytics_helpers import (  # noqa: F401 (fixtures: settings, instance)
    START,
    compact,
    fast_instance_fixture,
    game_at,
    hour_settings,
    materialize_games,
)
from tests.test_compaction_retention import prune, prune_metadata

HOUR = Period("hour")
HOURLY = HOUR.partitions_def(START)
hourly_compaction = build_compaction(HOURLY, HOUR)
H1, H2 = datetime(2023, 7, 25, 10, 5, tzinfo=UTC), datetime(2023, 7, 25, 11, 20, tzinfo=UTC)
K1, K2 = "2023-07-25-10:00", "2023-07-25-11:00"


def tokens_in(sink: SinkRoot, asset: str, key: str) -> list[str]:
    return sorted(pq.read_table(period_path(sink, asset, key))["game_token"].to_pylist())


def games(rng: random.Random, moment: datetime, n: int) -> list[str]:
    return [game_at(rng, moment + timedelta(minutes=i)) for i in range(n)]


def test_period_keys_match_dagster_partitions_and_refuse_anything_else():
    moment = datetime(2026, 12, 2, 7, 59, 59, tzinfo=UTC)
    assert HOUR.key(moment) == "2026-12-02-07:00"
    assert Period("day").key(moment) == "2026-12-02"
    assert HOUR.key(moment.replace(tzinfo=None)) == "2026-12-02-07:00"  # naive = UTC
    assert HOUR.bounds("2026-12-02-07:00") == (moment.replace(minute=0, second=0), moment.replace(hour=8, minute=0, second=0))  # fmt: skip
    for hostile in ("../../etc", "2026-12-02-07:30", "2026-12-02", "", "2026-13-01-00:00"):
        assert HOUR.parse(hostile) is None, hostile
    sink = SinkRoot("/nonexistent")
    for hostile in ("../../etc", "2026-12-02/../..", "2026-12-02-07:00/x"):
        with pytest.raises(ValueError, match="not a period key"):
            period_path(sink, PODIUM_COMPACTED, hostile)
        with pytest.raises(ValueError, match="not a period key"):
            pending_dir(sink, hostile)
    keys = HOURLY.get_partition_keys(current_time=datetime(2023, 1, 2, 3, 10, tzinfo=UTC))
    assert keys[:2] == ["2023-01-01-00:00", "2023-01-01-01:00"] and len(keys) == 28
    for key in keys:
        assert HOUR.key(HOUR.bounds(key)[0]) == key
    with pytest.raises(ValueError, match="hour"):
        Period("week")


def test_sensor_compacts_closed_periods_and_late_games(instance, settings, r):
    rng = random.Random(8)
    sink = SinkRoot(settings.data_dir)
    first = materialize_games(instance, settings, r, games(rng, H1, 3))
    second = materialize_games(instance, settings, r, games(rng, H2, 2))
    assert pending_periods(sink, HOUR) == [K1, K2]
    # Not periods: ignored by the sensor (and never turned into a path).
    (sink.root / "compacted" / "_pending" / "not-a-period").mkdir()
    (sink.root / "compacted" / "_pending" / "2023-07-25-10:30").mkdir()
    job = dg.define_asset_job("compact", selection=[hourly_compaction])
    sensor = build_pending_periods_sensor(job, HOURLY, HOUR, running=True)
    resources = {"sink": SinkResource(root=str(settings.data_dir), compaction_period="hour")}

    def tick() -> list[dg.RunRequest]:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            return list(sensor(context).run_requests or [])

    requested = tick()
    assert [q.partition_key for q in requested] == [K1, K2]
    assert [q.partition_key for q in tick()] == [K1, K2]  # same run keys: launched once
    assert [q.run_key for q in tick()] == [q.run_key for q in requested]
    assert compact(instance, settings, K1, hourly_compaction).success
    assert set(tokens_in(sink, PODIUM_COMPACTED, K1)) == set(first)
    assert [q.partition_key for q in tick()] == [K2]
    assert compact(instance, settings, K2, hourly_compaction).success
    assert tick() == []
    # A late game of the first hour: its period is asked for again, under a new run key.
    late = materialize_games(instance, settings, r, games(rng, H1 + timedelta(minutes=30), 1))
    (again,) = tick()
    assert again.partition_key == K1 and again.run_key != requested[0].run_key
    assert compact(instance, settings, K1, hourly_compaction).success
    for asset in (PODIUM_COMPACTED, METADATA_COMPACTED):
        assert tokens_in(sink, asset, K1).count(late[0]) == 4  # its 4 players, once
        assert set(tokens_in(sink, asset, K1)) == {*first, *late}
        assert set(tokens_in(sink, asset, K2)) == set(second)
    assert tick() == []
    assert not pending_dir(sink, K1).exists()


def test_the_cap_prunes_the_oldest_verified_games_without_the_partition_list(
    instance, settings, r, monkeypatch
):
    rng = random.Random(9)
    sink = SinkRoot(settings.data_dir)
    older = materialize_games(instance, settings, r, games(rng, H1, 30), batch=10)
    newer = materialize_games(instance, settings, r, games(rng, H2, 20), batch=10)
    everything = list(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME))
    assert everything == older + newer  # insertion order
    assert compact(instance, settings, K1, hourly_compaction).success  # the newer hour is not

    def no_full_list(name: str):
        raise AssertionError("retention read the whole partition list")

    monkeypatch.setattr(retention, "_PAGE", 7)  # several pages
    monkeypatch.setattr(instance, "get_dynamic_partitions", no_full_list)
    # Cap 20: prune to 16, so the 34 oldest are over it: all 30 of the first hour (compacted,
    # verified) and 4 of the second (not compacted yet: kept, and said so).
    result = prune(instance, settings, days=10_000, delete_files=False, cap=20)
    assert result.success
    meta = prune_metadata(result)
    assert (meta["over_cap"], meta["partitions_deleted"], meta["games_kept_unverified"]) == (34, 30, 4)  # fmt: skip
    monkeypatch.undo()
    assert list(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)) == newer
    assert compact(instance, settings, K2, hourly_compaction).success
    assert prune(instance, settings, days=10_000, delete_files=False, cap=20).success
    assert list(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)) == newer[4:]
    # Every game's rows exactly once in the compacted files; the per-game files are still there.
    compacted = tokens_in(sink, METADATA_COMPACTED, K1) + tokens_in(sink, METADATA_COMPACTED, K2)
    assert sorted(set(compacted)) == sorted(older + newer)
    assert len(compacted) == sum(len(sink.read_rows(GAME_METADATA, t)) for t in older + newer)
    # Under the cap: nothing to do.
    again = prune_metadata(prune(instance, settings, days=10_000, delete_files=False, cap=20))
    assert (again["over_cap"], again["partitions_deleted"]) == (0, 0)


def test_a_backfill_of_the_restore_job_rebuilds_pruned_games(instance, settings, r):
    rng = random.Random(10)
    sink = SinkRoot(settings.data_dir)
    tokens = materialize_games(instance, settings, r, games(rng, H1, 4))
    before = {
        (asset, kind, t): sink.read_rows(asset, t, sink=kind)
        for asset in (GAME_PODIUM, GAME_METADATA)
        for kind in ("parquet", "json")
        for t in tokens
    }
    assert compact(instance, settings, K1, hourly_compaction).success
    as_of = (H1 + timedelta(days=3)).isoformat()
    assert prune(instance, settings, days=1, delete_files=True, as_of=as_of).success
    assert instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME) == []
    assert not any(sink.parquet_path(GAME_PODIUM, t).exists() for t in tokens)
    job = build_restore_job(HOURLY)
    resources = {"sink": SinkResource(root=str(settings.data_dir))}
    config = {"ops": {"restore_games": {"config": {"add_partitions": True}}}}
    result = job.execute_in_process(
        instance=instance, partition_key=K1, resources=resources, run_config=config
    )
    assert result.success
    after = {key: sink.read_rows(key[0], key[2], sink=key[1]) for key in before}
    assert after == before
    assert sorted(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)) == sorted(tokens)
    # A period that was never compacted: a clear failure, nothing written.
    empty = job.execute_in_process(
        instance=instance, partition_key=K2, resources=resources, raise_on_error=False
    )
    assert not empty.success
    (failure,) = [e for e in empty.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert f"period {K2} is not compacted" in failure.step_failure_data.error.message


def test_a_game_without_a_known_period_is_kept(instance, settings, r):
    rng = random.Random(11)
    sink = SinkRoot(settings.data_dir)
    (token,) = materialize_games(instance, settings, r, games(rng, H1, 1))
    assert compact(instance, settings, K1, hourly_compaction).success
    for asset in (GAME_METADATA, GAME_PODIUM):
        sink.parquet_path(asset, token).unlink()
    sink.raw_snapshot_path(token).unlink()
    result = prune(instance, settings, days=10_000, delete_files=False, cap=100)
    assert prune_metadata(result)["partitions_deleted"] == 0
    instance_keys = instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME)
    assert instance_keys == [token]  # under the cap: untouched
    capped = prune_metadata(prune(instance, settings, days=10_000, delete_files=False, cap=1))
    assert (capped["over_cap"], capped["partitions_deleted"]) == (1, 0)
