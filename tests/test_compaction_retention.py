"""Compaction and partition retention (by age and by the cap), on games materialized in-process
over fake days; the hourly period, late games and restoring pruned games."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from superhero_dagster.assets.analytics import leaderboard_path
from superhero_dagster.assets.compaction import (
    METADATA_COMPACTED,
    PODIUM_COMPACTED,
    SOURCE,
    compacted_dataset,
    games_of_period,
    mark_pending,
    period_path,
)
from superhero_dagster.partitions import GAMES_PARTITIONS_NAME
from superhero_dagster.resources import SinkResource
from superhero_dagster.retention import build_retention_job
from superhero_dagster.settings import Settings, SettingsError
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM, SinkRoot
from tests.analytics_helpers import (  # noqa: F401 (fixtures: settings, instance)
    compact,
    day_settings,
    fast_instance_fixture,
    game_on,
    leaderboard,
    materialize_games,
    timed_out_on,
)
from tests.pipeline_helpers import run_batch, store

AS_OF = date(2023, 8, 1)
#: A cap no test below reaches, so only the age rule prunes (the cap has its own tests).
NO_CAP = 10**9


def partitions(instance) -> set[str]:
    return set(instance.get_dynamic_partitions(GAMES_PARTITIONS_NAME))


def pergame_rows(sink: SinkRoot, asset: str, tokens) -> list[dict]:
    rows = [row for t in tokens for row in sink.read_rows(asset, t)]
    return sorted(rows, key=lambda r: (r["game_token"], r["user_token"]))


def compacted_rows(sink: SinkRoot, asset: str, day: date | str) -> list[dict]:
    key = day if isinstance(day, str) else day.isoformat()
    rows = pq.read_table(period_path(sink, asset, key)).to_pylist()
    return sorted(rows, key=lambda r: (r["game_token"], r["user_token"]))


def prune(
    instance, settings, *, days: int, delete_files: bool, cap: int = NO_CAP, as_of: str = ""
) -> dg.ExecuteInProcessResult:
    job = build_retention_job(cap, days, delete_files)
    return job.execute_in_process(
        instance=instance,
        resources={
            "sink": SinkResource(
                root=str(settings.data_dir), compaction_period=settings.compaction_period
            )
        },
        run_config={
            "ops": {
                "prune_games": {
                    "config": {
                        "max_partitions": cap,
                        "retention_days": days,
                        "delete_files": delete_files,
                        "as_of": as_of or AS_OF.isoformat(),
                    }
                }
            }
        },
    )


def prune_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def test_compaction_puts_each_game_on_its_end_day_and_is_idempotent(instance, settings, r):
    rng = random.Random(4)
    d1, d2 = date(2023, 7, 25), date(2023, 7, 26)
    docs = {d1: [game_on(rng, d1) for _ in range(5)], d2: [game_on(rng, d2) for _ in range(4)]}
    docs[d1].append(timed_out_on(rng, d1))  # ended_at = its 'Cleaning' message time
    # No message time: the listener's capture time decides (23:30 on d2).
    docs[d2].append(timed_out_on(rng, None, datetime(2023, 7, 26, 23, 30, tzinfo=UTC)))
    tokens = {d: materialize_games(instance, settings, r, v) for d, v in docs.items()}
    sink = SinkRoot(settings.data_dir)
    for day in (d1, d2):
        assert games_of_period(sink, day.isoformat()) == sorted(tokens[day])
        result = compact(instance, settings, day)
        assert result.success
        for asset in (PODIUM_COMPACTED, METADATA_COMPACTED):
            assert compacted_rows(sink, asset, day) == pergame_rows(
                sink, SOURCE[asset], tokens[day]
            )
        mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
        meta = mats[METADATA_COMPACTED].materialization.metadata
        assert meta["dagster/row_count"].value == len(
            pergame_rows(sink, GAME_METADATA, tokens[day])
        )
        assert mats[METADATA_COMPACTED].materialization.partition == day.isoformat()
        assert games_of_period(sink, day.isoformat()) == []  # compacted: nothing pending
    before = {p: p.read_bytes() for p in (sink.root / "compacted").rglob("*.parquet")}
    assert compact(instance, settings, d1).success
    assert {p: p.read_bytes() for p in (sink.root / "compacted").rglob("*.parquet")} == before
    # The compacted dataset reads as one hive-partitioned table.
    whole = compacted_dataset(sink, PODIUM_COMPACTED).to_table()
    assert sorted(set(whole["period"].to_pylist())) == [d1.isoformat(), d2.isoformat()]
    # A day without games still gets (empty) files: it is compacted, just quiet.
    assert compact(instance, settings, date(2023, 7, 27)).success
    assert pq.read_table(period_path(sink, PODIUM_COMPACTED, "2023-07-27")).num_rows == 0


def test_a_few_hundred_games_pruned_after_compaction_nothing_lost(instance, settings, r):
    rng = random.Random(99)
    days = [AS_OF - timedelta(days=k) for k in range(7, 1, -1)]  # 07-25 .. 07-30
    docs = [game_on(rng, day, rng.randint(2, 5)) for day in days for _ in range(45)]
    docs += [timed_out_on(rng, day) for day in days]
    rng.shuffle(docs)  # batches mix days, as live traffic would
    tokens = materialize_games(instance, settings, r, docs, batch=140)
    sink = SinkRoot(settings.data_dir)
    by_day = {day: games_of_period(sink, day.isoformat()) for day in days}
    assert sorted(t for ts in by_day.values() for t in ts) == sorted(tokens)
    assert leaderboard(instance, settings).success
    board = pq.read_table(leaderboard_path(sink))
    rows_before = {
        asset: {day: pergame_rows(sink, asset, by_day[day]) for day in days}
        for asset in (GAME_PODIUM, GAME_METADATA)
    }
    for day in days[:-1]:  # the newest day is not compacted: retention must not touch it
        assert compact(instance, settings, day).success

    # Keep 3 days: cutoff 07-29, so 07-25 .. 07-28 go; 07-29 (compacted) and 07-30 stay.
    old = [d for d in days if d < AS_OF - timedelta(days=3)]
    old_tokens = {t for d in old for t in by_day[d]}
    result = prune(instance, settings, days=3, delete_files=False)
    assert result.success
    assert partitions(instance) == set(tokens) - old_tokens
    assert prune_metadata(result)["partitions_deleted"] == len(old_tokens)
    assert all(sink.parquet_path(GAME_PODIUM, t).is_file() for t in old_tokens)  # files kept
    assert leaderboard(instance, settings).success  # compacted + leftover files: no double count
    assert pq.read_table(leaderboard_path(sink)).equals(board)

    # Second pass with file deletion: partitions already gone, files go now; idempotent after.
    result = prune(instance, settings, days=3, delete_files=True)
    assert prune_metadata(result)["partitions_deleted"] == 0
    assert prune_metadata(result)["files_deleted"] == 4 * len(old_tokens)
    for t in old_tokens:
        for asset in (GAME_PODIUM, GAME_METADATA):
            assert not sink.parquet_path(asset, t).exists()
            assert not sink.json_path(asset, t).exists()
        assert sink.has_raw_snapshot(t)  # the attack log stays
    kept = set(tokens) - old_tokens
    assert all(sink.parquet_path(GAME_METADATA, t).is_file() for t in kept)
    assert (
        prune_metadata(prune(instance, settings, days=3, delete_files=True))["files_deleted"] == 0
    )

    # Every row survives in the compacted files, and the leaderboard does not move.
    for day in days[:-1]:
        assert compacted_rows(sink, PODIUM_COMPACTED, day) == rows_before[GAME_PODIUM][day]
        assert compacted_rows(sink, METADATA_COMPACTED, day) == rows_before[GAME_METADATA][day]
    assert leaderboard(instance, settings).success
    assert pq.read_table(leaderboard_path(sink)).equals(board)
    # Re-compacting a pruned day keeps its rows (they now come from the old compacted file).
    assert compact(instance, settings, old[0]).success
    assert compacted_rows(sink, PODIUM_COMPACTED, old[0]) == rows_before[GAME_PODIUM][old[0]]


def test_games_that_do_not_match_their_day_file_are_kept(instance, settings, r):
    rng = random.Random(5)
    day = date(2023, 7, 20)
    key = day.isoformat()
    docs = [game_on(rng, day) for _ in range(5)]
    tokens = materialize_games(instance, settings, r, docs)
    assert compact(instance, settings, day).success
    sink = SinkRoot(settings.data_dir)
    # A game that ended that day but arrived after the compaction: pending, not in the file.
    late = materialize_games(instance, settings, r, [game_on(rng, day)])
    # A game re-materialized since the compaction (new rows, pending again).
    again = tokens[1]
    again_rows = sink.read_rows(GAME_PODIUM, again)
    again_rows[0]["damage_received"] += 1
    sink.write_rows(GAME_PODIUM, again, again_rows)
    mark_pending(sink, key, again)
    # A game whose per-game file changed with nothing recording it (a hand edit).
    edited = tokens[0]
    rows = sink.read_rows(GAME_PODIUM, edited)
    rows[0]["damage_received"] += 1
    sink.write_rows(GAME_PODIUM, edited, rows)
    result = prune(instance, settings, days=3, delete_files=True)
    assert result.success
    assert partitions(instance) == {edited, again, *late}
    assert sink.parquet_path(GAME_PODIUM, edited).is_file()
    assert sink.parquet_path(GAME_PODIUM, again).is_file()
    assert prune_metadata(result)["games_kept_unverified"] == 2  # edited, again (late: not listed)
    # Re-compacting the day picks up the pending games; the edited one stays kept ...
    assert compact(instance, settings, day).success
    assert prune(instance, settings, days=3, delete_files=True).success
    assert partitions(instance) == {edited}
    # ... until it is materialized again (which indexes it), then compacted and pruned.
    store(r, [docs[0]])
    assert run_batch(instance, settings, [edited], expire_after_seconds=0).success
    assert compact(instance, settings, day).success
    assert prune(instance, settings, days=3, delete_files=True).success
    assert partitions(instance) == set()
    podium = pa.Table.from_pylist(compacted_rows(sink, PODIUM_COMPACTED, day))
    assert set(podium["game_token"].to_pylist()) == {*tokens, *late}
    # The re-materialized game's compacted rows are its new ones.
    compacted_again = [row for row in podium.to_pylist() if row["game_token"] == again]
    assert sorted(compacted_again, key=lambda x: x["rank"]) == sorted(
        again_rows, key=lambda x: x["rank"]
    )


def test_retention_settings_come_from_the_environment():
    settings = Settings.from_env(
        {"SUPERHERO_RETENTION_DAYS": "7", "SUPERHERO_DELETE_GAME_FILES": "yes"}
    )
    assert (settings.retention_days, settings.delete_game_files) == (7, True)
    assert Settings.from_env({}).delete_game_files is False
    with pytest.raises(SettingsError, match="SUPERHERO_DELETE_GAME_FILES"):
        Settings.from_env({"SUPERHERO_DELETE_GAME_FILES": "maybe"})
    with pytest.raises(SettingsError, match="SUPERHERO_RETENTION_DAYS"):
        Settings.from_env({"SUPERHERO_RETENTION_DAYS": "-1"})


def test_analytics_settings_come_from_the_environment():
    settings = Settings.from_env(
        {"SUPERHERO_ANALYTICS_START": "2024-02-03", "SUPERHERO_ANALYTICS_CRON": " */5  * * * * "}
    )
    assert (settings.analytics_start, settings.analytics_cron) == (date(2024, 2, 3), "*/5 * * * *")
    assert Settings.from_env({"SUPERHERO_ANALYTICS_CRON": "OFF"}).analytics_cron == "off"
    assert Settings.from_env({}).analytics_start is None
    with pytest.raises(SettingsError, match="SUPERHERO_ANALYTICS_START"):
        Settings.from_env({"SUPERHERO_ANALYTICS_START": "yesterday"})
    with pytest.raises(SettingsError, match="SUPERHERO_ANALYTICS_CRON"):
        Settings.from_env({"SUPERHERO_ANALYTICS_CRON": "every minute"})
