"""The dagster.yaml that init-instance writes: a real DagsterInstance loads it, and a user's edits
are never replaced without force."""

from __future__ import annotations

import stat
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

from superhero_dagster.event_storage import BatchingSqliteEventLogStorage
from superhero_dagster.instance_config import (
    ANALYTICS,
    GAMES_BATCH,
    RUN_KIND_TAG,
    InstanceConfigConflict,
    render_instance_yaml,
    write_instance_yaml,
)


def test_rendered_config_loads_as_a_tuned_instance(dagster_home: Path) -> None:
    write_instance_yaml(dagster_home, max_concurrent_runs=3, games_batch_limit=2)
    with dg.DagsterInstance.get() as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        queue = coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == 3
        assert queue.tag_concurrency_limits == [
            {"key": RUN_KIND_TAG, "value": GAMES_BATCH, "limit": 2},
            # All slots but one: a game batch never waits behind analytics runs alone.
            {"key": RUN_KIND_TAG, "value": ANALYTICS, "limit": 2},
        ]
        assert coordinator.dequeue_interval_seconds == 1
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 5
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert not instance.telemetry_enabled
        assert instance.get_settings("sensors")["use_threads"] is True
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        # The event log is the project's batch-writing class, in the stock class's folder.
        assert isinstance(instance.event_log_storage, BatchingSqliteEventLogStorage)
        assert Path(instance.event_log_storage._base_dir) == dagster_home / "history" / "runs"
        # SQLite storage in the home folder: a run written through it reads back.
        run = instance.add_run(dg.DagsterRun(job_name="probe", tags={RUN_KIND_TAG: GAMES_BATCH}))
        assert instance.get_run_by_id(run.run_id).tags[RUN_KIND_TAG] == GAMES_BATCH
    assert (dagster_home / "history").is_dir()


def test_default_batch_limit_is_every_slot() -> None:
    text = render_instance_yaml(max_concurrent_runs=5, dagster_home=Path("/srv/home"))
    assert 'base_dir: "/srv/home/history/runs"' in text
    with pytest.raises(ValueError, match="dagster_home"):
        render_instance_yaml(max_concurrent_runs=5)  # SQLite: its event log needs a place
    assert "max_concurrent_runs: 5" in text and "limit: 5" in text
    # One slot: analytics shares it (a limit of 0 would never run them).
    one = render_instance_yaml(max_concurrent_runs=1, dagster_home=Path("/srv/home"))
    assert one.count("limit: 1") == 2


def test_rewriting_the_same_config_is_a_no_op(tmp_path: Path) -> None:
    path = write_instance_yaml(tmp_path / "home")
    before = path.stat()
    assert write_instance_yaml(tmp_path / "home") == path
    after = path.stat()
    # An atomic rewrite would have replaced the inode; a no-op leaves the very same file.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in path.parent.iterdir()) == ["dagster.yaml"]  # no temp files


def test_an_edited_file_is_refused_then_replaced_with_force(tmp_path: Path) -> None:
    path = write_instance_yaml(tmp_path)
    edited = path.read_text(encoding="utf-8") + "\n# my own tweak\n"
    path.write_text(edited, encoding="utf-8")

    with pytest.raises(InstanceConfigConflict, match="--force"):
        write_instance_yaml(tmp_path)
    assert path.read_text(encoding="utf-8") == edited
    # Other arguments are a different file too: refused the same way.
    with pytest.raises(InstanceConfigConflict):
        write_instance_yaml(tmp_path, max_concurrent_runs=4)

    write_instance_yaml(tmp_path, force=True, max_concurrent_runs=4)
    want = render_instance_yaml(max_concurrent_runs=4, dagster_home=tmp_path)
    assert path.read_text(encoding="utf-8") == want
    assert (tmp_path / "dagster.yaml.bak").read_text(encoding="utf-8") == edited


def test_postgres_variant_is_valid_and_private(tmp_path: Path) -> None:
    url = "postgresql://dagster:s3cr%23t@db.example:5432/dagster"
    path = write_instance_yaml(tmp_path, storage="postgres", postgres_url=url)
    config, _ = dagster_instance_config(str(tmp_path))
    for key in ("run_storage", "event_log_storage", "schedule_storage"):
        assert config[key]["config"]["postgres_url"] == url.replace(
            "postgresql://", "postgresql+psycopg2://"
        )
    assert config["event_log_storage"]["class"] == "BatchingPostgresEventLogStorage"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_concurrent_runs": 0},
        {"max_concurrent_runs": 2, "games_batch_limit": 3},
        {"storage": "mysql"},
        {"storage": "postgres"},
        {"postgres_url": "postgresql://x@y/z"},
    ],
)
def test_bad_arguments_are_refused_before_writing(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        write_instance_yaml(tmp_path, **kwargs)
    assert not (tmp_path / "dagster.yaml").exists()
