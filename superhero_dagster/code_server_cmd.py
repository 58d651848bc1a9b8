"""``superhero-dagster code-server``: ``dagster code-server`` with forked run workers.

Why a command of ours: in compose the code server is its own container and executes every run,
so it is where a run's start-up is paid. This is Dagster's own ``code-server`` CLI, arguments
unchanged, with :mod:`superhero_dagster.forked_runs` applied first (unless
SUPERHERO_FORK_RUN_WORKERS=false): the gRPC server it starts forks each run from a process that
has Dagster and the code location imported, instead of spawning a new interpreter per run.
"""

from __future__ import annotations

import click

from superhero_dagster.cli import load_settings, passthrough_command


@passthrough_command("code-server")
def code_server_command(ctx: click.Context) -> None:
    """Dagster's `dagster code-server`, run workers forked; same arguments as it.

    Example: `superhero-dagster code-server start -m superhero_dagster.definitions -p 4000`."""
    if load_settings().fork_run_workers:
        from superhero_dagster.forked_runs import enable

        enable()
    from dagster._cli.code_server import code_server_cli

    code_server_cli.main(args=list(ctx.args), prog_name="superhero-dagster code-server")
