"""``superhero-dagster init-instance``: write the tuned dagster.yaml into DAGSTER_HOME."""

from __future__ import annotations

import click

from superhero_dagster.cli import CliError, load_settings
from superhero_dagster.instance_config import InstanceConfigConflict, write_instance_yaml


@click.command("init-instance")
@click.option("--force", is_flag=True, help="Replace a dagster.yaml that was edited by hand.")
@click.option(
    "--max-concurrent-runs", type=int, default=None, help="Runs at once (default: settings)."
)
def init_instance_command(force: bool, max_concurrent_runs: int | None) -> None:
    """Write $DAGSTER_HOME/dagster.yaml (queued runs, cheap compute logs); idempotent."""
    settings = load_settings()
    home = settings.resolved_dagster_home
    try:
        path = write_instance_yaml(
            home,
            force=force,
            max_concurrent_runs=max_concurrent_runs or settings.max_concurrent_runs,
        )
    except (InstanceConfigConflict, ValueError) as exc:
        raise CliError(str(exc)) from None
    click.echo(f"Dagster instance config: {path}")
    click.echo(
        "Where runs execute (dagster-daemon, dagster dev), also export "
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1 DAGSTER_EVENT_BATCH_SIZE=1000 "
        "(README, Throughput)"
    )
    if settings.dagster_home is None:
        click.echo(f"DAGSTER_HOME is not set; use: export DAGSTER_HOME={home.resolve()}")
