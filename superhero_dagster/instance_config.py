"""The ``dagster.yaml`` that ``superhero-dagster init-instance`` and ``make demo`` write.

Users start ``dagster-daemon run -w workspace.yaml`` themselves, so whatever makes the daemon fast
has to live in the instance config rather than in our code. Everything here is a documented,
supported Dagster 1.13 instance setting (checked against ``dagster._core.instance.config``); the
text is rendered deterministically so that "is the file on disk still ours?" is a plain string
comparison, and a file a user edited is never replaced silently.

The multi-host (Postgres, containers) variant is ``compose/dagster.yaml``; the two share the run
queue tag below, which the sensor puts on every batch run it requests.
"""

from __future__ import annotations

from pathlib import Path

from superhero_dagster.files import atomic_write

#: Tag key/value the sensor sets on game-batch runs; the run queue limits them by this tag.
RUN_KIND_TAG = "superhero/kind"
GAMES_BATCH = "games-batch"
#: The same tag's value on analytics runs (compaction, leaderboard, retention, restore): the queue
#: gives them at most all slots but one, so a game batch never waits behind analytics alone.
ANALYTICS = "analytics"
ANALYTICS_TAGS = {RUN_KIND_TAG: ANALYTICS}

STORAGES = ("sqlite", "postgres")

#: The embedded event log (superhero_dagster/event_storage.py), named as text so that writing the
#: file does not import Dagster's storage code.
EVENT_STORAGE_MODULE = "superhero_dagster.event_storage"
EVENT_STORAGE_CLASS = "BatchingSqliteEventLogStorage"
PG_EVENT_STORAGE_MODULE = "superhero_dagster.postgres_event_storage"
PG_EVENT_STORAGE_CLASS = "BatchingPostgresEventLogStorage"
FILENAME = "dagster.yaml"


class InstanceConfigConflict(FileExistsError):
    """The target ``dagster.yaml`` exists with content we did not write (a user edited it)."""


_HEADER = """\
# Dagster instance for superhero-dagster, written by `superhero-dagster init-instance`.
# Re-running init-instance leaves this file alone while it is unchanged; once you edit it,
# init-instance refuses to replace it unless given --force (the old file is kept as
# dagster.yaml.bak). Every key below is a stock Dagster 1.13 instance setting.
"""

_STORAGE_SQLITE = """\
# Storage: Dagster's default SQLite files under $DAGSTER_HOME (history/, schedules/). One host
# only; for several hosts use Postgres (see compose/dagster.yaml). The event log is the project's
# subclass of the stock SqliteEventLogStorage (same files) that writes a batch of a run's asset
# events in one transaction per file; Dagster hands it batches when DAGSTER_EVENT_BATCH_SIZE is
# set where runs execute (the daemon, `dagster dev`). Without it, it behaves as the stock class.
# base_dir is where the stock class keeps them; after moving DAGSTER_HOME, re-run init-instance
# --force.
event_log_storage:
  module: {module}
  class: {class_name}
  config:
    base_dir: {base_dir}
"""

_STORAGE_POSTGRES = """\
# Storage: Postgres for runs, event log and schedules (several hosts can share it). The URL may
# carry a password: this file is written readable by its owner only. The event log is the
# project's subclass of dagster-postgres's (same tables) that keeps its connection instead of
# opening one per statement and stores a run's per-game check evaluations as one batch.
run_storage:
  module: dagster_postgres.run_storage
  class: PostgresRunStorage
  config:
    postgres_url: {postgres_url}
event_log_storage:
  module: {module}
  class: {class_name}
  config:
    postgres_url: {postgres_url}
schedule_storage:
  module: dagster_postgres.schedule_storage
  class: PostgresScheduleStorage
  config:
    postgres_url: {postgres_url}
"""

_BODY = """\
# Run queue: the daemon launches at most {max_concurrent_runs} runs at once; game-batch runs
# (tag {tag}={value}, set by the sensor) at most {batch_limit}; analytics runs (tag
# {tag}={analytics}: compaction, leaderboard, retention, restore) at most {analytics_limit}, so
# a game batch never queues behind analytics alone. On 2 cores more than 2 concurrent runs only
# adds process start-up cost. The queue is polled every second (Dagster's default is
# 5 s) with threads, so a run starts within about a second of being queued.
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {max_concurrent_runs}
    tag_concurrency_limits:
      - key: {tag}
        value: {value}
        limit: {batch_limit}
      - key: {tag}
        value: {analytics}
        limit: {analytics_limit}
    dequeue_interval_seconds: 1
    dequeue_use_threads: true
    dequeue_num_workers: {max_concurrent_runs}
    # The code server may be restarting when a run is dequeued: retry rather than fail the run.
    max_user_code_failure_retries: 3
    user_code_failure_retry_delay: 10

# Runs are subprocesses of the code server the daemon (or `dagster dev`) started: one host.
run_launcher:
  module: dagster
  class: DefaultRunLauncher

# Compute logs: not captured. Measured cheaper per run (no stdout/stderr capture files and their
# events). Trade-off: the UI shows no stdout/stderr for a step; Dagster's structured event log
# (asset materializations, checks, failures with tracebacks) is unaffected. To get them back
# replace this block with LocalComputeLogManager (base_dir: a folder under $DAGSTER_HOME).
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager

# A run stuck in STARTING (its process died before reporting) is failed after 3 minutes instead
# of holding a queue slot forever; run_retries then re-queues it.
# A run still STARTED after 10 minutes is failed too: with the default run launcher Dagster
# cannot see that a run's worker died with its daemon/code server (found by the fault suite),
# and such a run would hold a queue slot forever. Keep it above your longest batch.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  poll_interval_seconds: 30
  max_runtime_seconds: 600

# Re-run a run whose worker crashed (up to 5 times: only crashes are retried, so it is cheap). Failures inside the assets are not retried:
# a bad game fails the same way every time, and the asset checks report it.
run_retries:
  enabled: true
  max_retries: 5
  retry_on_asset_or_op_failure: false

# Sensor and schedule ticks in threads of the daemon: a slow tick of one sensor does not delay
# the others, and run requests of one tick are submitted in parallel.
sensors:
  use_threads: true
  num_workers: 4
  num_submit_workers: 4
schedules:
  use_threads: true
  num_workers: 2
backfills:
  use_threads: true
  num_workers: 2

# A sensor ticking every few seconds writes ~20k ticks a day; keep the tick tables small.
retention:
  sensor:
    purge_after_days:
      skipped: 1
      success: 7
      failure: 30
  schedule:
    purge_after_days: 30

# Runs print events to stdout at INFO and up (Dagster's default is DEBUG: ~7 lines per game,
# most of a demo's dagster.log). Every event is still stored and shown in the UI.
python_logs:
  python_log_level: INFO

telemetry:
  enabled: false
nux:
  enabled: false
"""


def render_instance_yaml(
    *,
    max_concurrent_runs: int = 2,
    storage: str = "sqlite",
    postgres_url: str | None = None,
    games_batch_limit: int | None = None,
    dagster_home: Path | None = None,
) -> str:
    """The instance config text; same arguments, same bytes (idempotence relies on it).

    ``games_batch_limit`` caps the sensor's batch runs separately (default: all the slots), e.g.
    ``max_concurrent_runs - 1`` to keep one slot for schedules and manual backfills.
    ``dagster_home`` (required for SQLite) is where the SQLite event log lives.
    """
    if max_concurrent_runs < 1:
        raise ValueError(f"max_concurrent_runs must be >= 1, got {max_concurrent_runs}")
    batch_limit = max_concurrent_runs if games_batch_limit is None else games_batch_limit
    if not 1 <= batch_limit <= max_concurrent_runs:
        raise ValueError(
            f"games_batch_limit must be between 1 and max_concurrent_runs "
            f"({max_concurrent_runs}), got {batch_limit}"
        )
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if storage == "postgres":
        if not postgres_url or not postgres_url.startswith(("postgresql", "postgres://")):
            raise ValueError("storage='postgres' needs postgres_url='postgresql://user:pw@host/db'")
        storage_block = _STORAGE_POSTGRES.format(
            postgres_url=_yaml_quote(_with_driver(postgres_url)),
            module=PG_EVENT_STORAGE_MODULE,
            class_name=PG_EVENT_STORAGE_CLASS,
        )
    elif postgres_url is not None:
        raise ValueError("postgres_url is only used with storage='postgres'")
    else:
        if dagster_home is None:
            raise ValueError("storage='sqlite' needs dagster_home (where its event log lives)")
        events_dir = Path(dagster_home).resolve() / "history" / "runs"
        storage_block = _STORAGE_SQLITE.format(
            module=EVENT_STORAGE_MODULE,
            class_name=EVENT_STORAGE_CLASS,
            base_dir=_yaml_quote(str(events_dir)),
        )
    body = _BODY.format(
        max_concurrent_runs=max_concurrent_runs,
        batch_limit=batch_limit,
        analytics_limit=max(1, max_concurrent_runs - 1),
        tag=RUN_KIND_TAG,
        value=GAMES_BATCH,
        analytics=ANALYTICS,
    )
    return f"{_HEADER}\n{storage_block}\n{body}"


def write_instance_yaml(dagster_home: Path, *, force: bool = False, **kw: object) -> Path:
    """Write ``$DAGSTER_HOME/dagster.yaml``; a no-op when it already holds exactly this text.

    An existing file with other content is a user's edit: refuse (InstanceConfigConflict) unless
    ``force``, and then keep the old file as ``dagster.yaml.bak``. The write is atomic (temp file in
    the same folder, then rename), so a daemon starting at the same moment never reads half a file.
    """
    dagster_home = Path(dagster_home)
    text = render_instance_yaml(dagster_home=dagster_home, **kw)  # type: ignore[arg-type]
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / FILENAME
    if target.exists():
        current = target.read_text(encoding="utf-8")
        if current == text:
            return target
        if not force:
            raise InstanceConfigConflict(
                f"{target} exists and differs from what init-instance writes (edited by hand?); "
                "leaving it alone. Use --force to replace it (the old file is kept as "
                f"{FILENAME}.bak)."
            )
        backup = target.with_name(FILENAME + ".bak")
        atomic_write(backup, current.encode("utf-8"), mode=0o600)
    # 0600: the Postgres variant may hold a password.
    atomic_write(target, text.encode("utf-8"), mode=0o600)
    return target


def _with_driver(url: str) -> str:
    """Name psycopg2 (dagster-postgres's dependency) when the URL names no driver: SQLAlchemy 2.1
    maps a bare ``postgresql://`` to psycopg 3, which is not installed."""
    scheme, _, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if scheme in ("postgresql", "postgres") else url


def _yaml_quote(value: str) -> str:
    """A YAML double-quoted scalar (URLs may contain ':' '#' '%' that plain scalars mangle)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
