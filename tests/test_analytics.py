"""The hero leaderboard against numbers computed in the test from the snapshots' attack logs."""

from __future__ import annotations

import base64
import random
import re
import struct
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow.parquet as pq
import pytest

from superhero_dagster.assets.analytics import (
    HERO_LEADERBOARD,
    LEADERBOARD_SCHEMA,
    chart_path,
    leaderboard_path,
)
from superhero_dagster.assets.compaction import (
    METADATA_COMPACTED,
    PODIUM_COMPACTED,
    analytics_start,
)
from superhero_dagster.charts import HEIGHT, WIDTH, Point, scatter_png
from superhero_dagster.periods import Period
from superhero_dagster.sinks import SinkRoot
from tests.analytics_helpers import (  # noqa: F401 (fixtures: settings, instance)
    POOL,
    compact,
    day_settings,
    expected_leaderboard,
    fast_instance_fixture,
    game_on,
    leaderboard,
    materialize_games,
    timed_out_on,
)

DAY1, DAY2 = date(2023, 7, 25), date(2023, 7, 26)


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    (mat,) = result.asset_materializations_for_node(HERO_LEADERBOARD)
    return {k: v.value for k, v in mat.metadata.items()}


def _table(settings):
    return pq.read_table(leaderboard_path(SinkRoot(settings.data_dir)))


@pytest.fixture
def played(instance, settings, r) -> list[str]:
    rng = random.Random(21)
    docs = [game_on(rng, DAY1, rng.randint(2, 5)) for _ in range(14)]
    docs += [game_on(rng, DAY2, rng.randint(2, 5)) for _ in range(8)]
    docs.append(timed_out_on(rng, DAY2))  # metadata only: counts for no hero
    materialize_games(instance, settings, r, docs)
    return docs


def test_leaderboard_matches_the_attack_logs(instance, settings, played):
    result = leaderboard(instance, settings)
    assert result.success
    table = _table(settings)
    assert table.schema == LEADERBOARD_SCHEMA
    want = expected_leaderboard(played)
    rows = {row["superhero_id"]: row for row in table.to_pylist()}
    assert set(rows) == set(want)
    for hero_id, w in want.items():
        row = rows[hero_id]
        assert row["name"] == POOL[hero_id][0]
        assert (row["games"], row["wins"], row["rounds"]) == (w["games"], w["wins"], w["rounds"])
        assert row["win_rate"] == pytest.approx(w["wins"] / w["games"])
        assert row["mean_rank"] == pytest.approx(w["ranks"] / w["games"])
        assert row["damage_per_round"] == pytest.approx(w["dealt"] / w["rounds"])
        assert row["damage_taken_per_game"] == pytest.approx(w["taken"] / w["games"])
        # Every hit of a hero deals its attack stat, so damage per round is exactly that.
        assert row["damage_per_round"] == pytest.approx(POOL[hero_id][1])
    assert sum(r["wins"] for r in rows.values()) == 22  # one winner per completed game
    ordered = [(-r["wins"], -r["win_rate"], r["mean_rank"]) for r in table.to_pylist()]
    assert ordered == sorted(ordered)
    assert table["leaderboard_rank"].to_pylist() == list(range(1, table.num_rows + 1))

    meta = _metadata(result)
    assert meta["dagster/row_count"] == len(want)
    assert meta["games_counted"] == 22 and meta["games_from_pergame_files"] == 22
    top = table.slice(0, 1).to_pylist()[0]
    shown = meta["top_20"]  # a dg.TableMetadataValue: rendered inline, with its schema
    assert [c.name for c in shown.schema.columns][:5] == ["rank", "hero", "id", "games", "wins"]
    assert len(shown.records) == min(20, table.num_rows)
    first = shown.records[0].data
    assert (first["hero"], first["id"]) == (top["name"], top["superhero_id"])
    assert (first["rank"], first["games"], first["wins"]) == (1, top["games"], top["wins"])
    assert first["win_rate"] == pytest.approx(top["win_rate"], abs=5e-4)
    column_docs = meta_spec_columns(HERO_LEADERBOARD)
    assert set(column_docs) == set(LEADERBOARD_SCHEMA.names) and all(column_docs.values())
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", meta["win_rate_vs_damage"])
    assert match is not None
    png = base64.b64decode(match.group(1))
    assert png == chart_path(SinkRoot(settings.data_dir)).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_compacted_days_and_fresh_games_are_each_counted_once(instance, settings, played):
    assert leaderboard(instance, settings).success
    before = _table(settings)
    assert compact(instance, settings, DAY1).success  # day 2 stays in per-game files only
    result = leaderboard(instance, settings)
    assert _table(settings).equals(before)
    meta = _metadata(result)
    assert meta["games_counted"] == 22
    assert meta["games_from_pergame_files"] == 8
    assert compact(instance, settings, DAY2).success
    meta = _metadata(leaderboard(instance, settings))
    assert _table(settings).equals(before)
    assert meta["games_from_pergame_files"] == 0


def _reads(meta: dict) -> tuple[int, int, int]:
    return meta["periods_read"], meta["periods_cached"], meta["games_from_pergame_files"]


def test_a_refresh_reads_only_the_periods_that_changed(instance, settings, r, played):
    """Compacted periods' totals are cached; a late game makes its period hot (read again, the
    game counted once) and its re-compaction changes only that period's cache."""
    assert compact(instance, settings, DAY1).success and compact(instance, settings, DAY2).success
    assert _reads(_metadata(leaderboard(instance, settings))) == (2, 0, 0)
    before = _table(settings)
    again = _metadata(leaderboard(instance, settings))
    assert _reads(again) == (0, 2, 0) and again["games_counted"] == 22
    assert _table(settings).equals(before)

    late = game_on(random.Random(5), DAY1)
    materialize_games(instance, settings, r, [late])
    hot = _metadata(leaderboard(instance, settings))
    assert _reads(hot) == (1, 1, 1) and hot["games_counted"] == 23
    assert compact(instance, settings, DAY1).success
    after = _metadata(leaderboard(instance, settings))
    assert _reads(after) == (1, 1, 0) and after["games_counted"] == 23
    rows = {row["superhero_id"]: row for row in _table(settings).to_pylist()}
    want = expected_leaderboard([*played, late])
    assert {h: (w["games"], w["wins"], w["rounds"]) for h, w in want.items()} == {
        h: (row["games"], row["wins"], row["rounds"]) for h, row in rows.items()
    }


def test_a_game_materialized_again_after_compaction_counts_once(instance, settings, r, played):
    assert compact(instance, settings, DAY1).success and compact(instance, settings, DAY2).success
    assert leaderboard(instance, settings).success
    before = _table(settings)
    materialize_games(instance, settings, r, played[:3])  # pending again, already compacted
    meta = _metadata(leaderboard(instance, settings))
    assert meta["games_counted"] == 22 and meta["games_from_pergame_files"] == 0
    assert _table(settings).equals(before)


def test_a_damaged_or_stale_totals_cache_is_recomputed(instance, settings, played):
    from superhero_dagster.assets.hero_totals import ROLLUP, totals_dir

    assert compact(instance, settings, DAY1).success and compact(instance, settings, DAY2).success
    assert leaderboard(instance, settings).success
    before = _table(settings)
    cache = totals_dir(SinkRoot(settings.data_dir))
    (cache / ROLLUP).write_bytes(b"PAR1 torn")
    (cache / f"{DAY1.isoformat()}.parquet").write_bytes(b"not parquet")
    stale = cache / f"{DAY2.isoformat()}.parquet"
    stale.write_bytes(pq.read_table(stale).slice(0, 1).to_pandas().to_parquet())  # no stamp
    gone = cache / "2023-07-01.parquet"  # a period that no longer exists
    gone.write_bytes(stale.read_bytes())
    meta = _metadata(leaderboard(instance, settings))
    assert _reads(meta) == (2, 0, 0)
    assert _table(settings).equals(before)
    assert not gone.exists()


def test_empty_sinks_give_an_empty_leaderboard(instance, settings):
    result = leaderboard(instance, settings)
    assert result.success
    meta = _metadata(result)
    assert meta["dagster/row_count"] == 0
    assert meta["top_20"].records == []
    assert _table(settings).num_rows == 0


def test_chart_is_a_deterministic_png_of_the_declared_size():
    points = [Point(10.0**k, k / 6, k + 1, highlight=k == 3, label=f"H{k}") for k in range(7)]
    points.append(Point(None, 0.0, 3))  # a hero without damage data: drawn apart
    png = scatter_png(points, chance=0.25)
    assert png == scatter_png(points, chance=0.25)
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (WIDTH, HEIGHT)
    assert png != scatter_png(points[:-1], chance=0.25)  # the no-data hero is drawn
    assert scatter_png([], chance=None).startswith(b"\x89PNG")


def meta_spec_columns(asset: str) -> dict[str, str | None]:
    """Column name -> description from the asset's declared column schema."""
    from superhero_dagster.assets.analytics import hero_leaderboard

    spec = hero_leaderboard.specs_by_key[dg.AssetKey(asset)]
    return {c.name: c.description for c in spec.metadata["dagster/column_schema"].columns}


def minute_automation(instance, settings, selection: dg.AssetSelection):
    """The code location's definitions with automation on every minute, and the automation
    sensor's first evaluation two minutes ago: (definitions, now, that evaluation)."""
    from superhero_dagster.assembly import build_definitions

    now = datetime.now(UTC)
    defs = build_definitions(
        settings.with_(analytics_start=now.date() - timedelta(days=2), analytics_cron="* * * * *")
    )
    first = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=now - timedelta(minutes=2)
    )
    return defs, now, first


def test_automation_compacts_today_then_nothing_until_new_games(instance, settings, r):
    """The code location's own conditions, evaluated as the automation sensor does: after a cron
    tick, new games request today's compaction, then the leaderboard; a tick without new games
    requests nothing. (Evaluation times are real, so the games' materializations fall between.)"""
    selection = dg.AssetSelection.assets(PODIUM_COMPACTED, METADATA_COMPACTED, HERO_LEADERBOARD)
    # A first evaluation two minutes ago (the sensor's first tick): nothing to do yet.
    defs, now, first = minute_automation(instance, settings, selection)
    today = now.date()
    assert first.total_requested == 0
    rng = random.Random(3)
    materialize_games(instance, settings, r, [game_on(rng, today) for _ in range(3)])
    second = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=datetime.now(UTC), cursor=first.cursor
    )
    for asset in (PODIUM_COMPACTED, METADATA_COMPACTED):
        assert second.get_requested_partitions(dg.AssetKey(asset)) == {today.isoformat()}
    # The leaderboard follows once today's compaction has landed (a separate, unpartitioned run).
    assert second.get_requested_partitions(dg.AssetKey(HERO_LEADERBOARD)) == set()
    assert compact(instance, settings, today).success
    third = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=datetime.now(UTC), cursor=second.cursor
    )
    assert third.get_requested_partitions(dg.AssetKey(HERO_LEADERBOARD)) == {None}
    assert third.total_requested == 1
    assert leaderboard(instance, settings).success
    idle = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=datetime.now(UTC), cursor=third.cursor
    )
    assert idle.total_requested == 0
    # The last game of a burst, landed before a tick and followed by nothing: the tick after it
    # still compacts it (AutomationCondition.on_cron would wait for an update after the tick).
    materialize_games(instance, settings, r, [game_on(rng, today)])
    later = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=datetime.now(UTC) + timedelta(seconds=61),
        cursor=idle.cursor,
    )  # fmt: skip
    assert later.get_requested_partitions(dg.AssetKey(PODIUM_COMPACTED)) == {today.isoformat()}


def test_games_landing_as_the_compaction_finishes_are_compacted_on_a_later_tick(
    instance, settings, r
):
    """A batch that lands in the same evaluation window as the requested compaction's own
    materialization (after the run read its inputs), then nothing: a later tick still compacts
    it. With ``since_last_handled`` the compaction's update reset the condition in that window
    and those games waited for their period to close (the 40-minute bench_steady run)."""
    selection = dg.AssetSelection.assets(PODIUM_COMPACTED, METADATA_COMPACTED)
    podium = dg.AssetKey(PODIUM_COMPACTED)
    defs, now, first = minute_automation(instance, settings, selection)
    today = now.date()
    rng = random.Random(5)
    materialize_games(instance, settings, r, [game_on(rng, today) for _ in range(2)])
    requested = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=now, cursor=first.cursor
    )
    assert requested.get_requested_partitions(podium) == {today.isoformat()}
    assert compact(instance, settings, today).success
    late = materialize_games(instance, settings, r, [game_on(rng, today)])
    window = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=now + timedelta(seconds=61),
        cursor=requested.cursor,
    )  # fmt: skip
    after = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=now + timedelta(seconds=122),
        cursor=window.cursor,
    )  # fmt: skip
    asked = window.get_requested_partitions(podium) | after.get_requested_partitions(podium)
    assert asked == {today.isoformat()}, f"game {late} was never compacted"


def test_partitions_start_on_the_first_load_and_include_today(tmp_path):
    sink = SinkRoot(tmp_path / "data")
    first = analytics_start(sink, today=date(2026, 3, 4))
    assert first == date(2026, 3, 4)
    assert analytics_start(sink, today=date(2027, 1, 1)) == first  # written once, never moved
    now = datetime(2026, 3, 6, 0, 1, tzinfo=UTC)
    keys = Period("day").partitions_def(first).get_partition_keys(current_time=now)
    assert keys == ["2026-03-04", "2026-03-05", "2026-03-06"]
    hours = Period("hour").partitions_def(first).get_partition_keys(current_time=now)
    assert (len(hours), hours[0], hours[-1]) == (49, "2026-03-04-00:00", "2026-03-06-00:00")


def test_every_analytics_run_is_tagged_for_its_own_queue_limit(instance, settings):
    """The run queue keeps a slot for game batches by limiting ``superhero/kind=analytics``; a
    job or the automation sensor without the tag would take slots past that limit."""
    from superhero_dagster.assembly import INGEST_JOB, build_definitions
    from superhero_dagster.assets.schedules import AUTOMATION_SENSOR, LEADERBOARD_JOB
    from superhero_dagster.instance_config import ANALYTICS, RUN_KIND_TAG

    defs = build_definitions(settings)
    jobs = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    analytics_jobs = jobs - {INGEST_JOB}
    assert {LEADERBOARD_JOB, "compaction_job", "prune_game_partitions"} <= analytics_jobs
    for name in analytics_jobs:
        assert defs.resolve_job_def(name).tags.get(RUN_KIND_TAG) == ANALYTICS, name
    assert RUN_KIND_TAG not in defs.resolve_job_def(INGEST_JOB).tags  # the sensor tags batches
    assert defs.resolve_sensor_def(AUTOMATION_SENSOR).run_tags[RUN_KIND_TAG] == ANALYTICS
    # A run of such a job carries the tag (what the queue reads).
    result = defs.resolve_job_def(LEADERBOARD_JOB).execute_in_process(instance=instance)
    assert result.success
    assert instance.get_run_by_id(result.run_id).tags[RUN_KIND_TAG] == ANALYTICS
