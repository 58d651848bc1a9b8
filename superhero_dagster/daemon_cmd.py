"""``superhero-dagster daemon``: ``dagster-daemon`` with a tighter sensor loop.

Why: Dagster's sensor daemon evaluates sensors in a loop that sleeps until 5 s have passed since
the loop began (``dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME``, not configurable). A sensor's
``minimum_interval_seconds`` below 5 therefore still ticks every 5 s, and a game that finished
just after a tick waits up to 5 s (mean 2.5 s, half of a lone game's latency, see README
"Latency") before its run is even requested. This command lowers that loop time in its own
process only, then hands the rest of the command line to Dagster's own ``dagster-daemon`` CLI
unchanged: same daemons, same heartbeats, same instance. The loop still sleeps; each pass reads
the sensors' states and ticks only the ones whose interval has passed, so a 1 s loop costs one
cheap pass per second.

The constant is private to Dagster: :func:`tighten_sensor_loop` refuses to start (clear error) if
it is missing or no longer an int, and ``tests/test_daemon_cmd.py`` pins that the loop reads it
at run time, so an upgrade that changes either fails there, not silently.
"""

from __future__ import annotations

import importlib

import click

from superhero_dagster.cli import CliError, load_settings, passthrough_command

_LOOP_MODULE = "dagster._daemon.sensor"
_LOOP_CONSTANT = "MIN_INTERVAL_LOOP_TIME"


def tighten_sensor_loop(seconds: float) -> float:
    """Set the sensor loop's minimum pass time; returns the value it replaced."""
    module = importlib.import_module(_LOOP_MODULE)
    old = getattr(module, _LOOP_CONSTANT, None)
    if not isinstance(old, int | float) or isinstance(old, bool):
        raise CliError(
            f"{_LOOP_MODULE}.{_LOOP_CONSTANT} is not there in this Dagster version; "
            "start `dagster-daemon run` instead (sensor loop of Dagster's default 5 s) "
            "or unset SUPERHERO_SENSOR_LOOP_SECONDS"
        )
    setattr(module, _LOOP_CONSTANT, seconds)
    return float(old)


@passthrough_command("daemon")
def daemon_command(ctx: click.Context) -> None:
    """Dagster's dagster-daemon with a 1 s sensor loop; same arguments as it.

    Example: `superhero-dagster daemon run -w workspace.yaml`. The loop time comes from
    SUPERHERO_SENSOR_LOOP_SECONDS (default 1 s; 0 keeps Dagster's 5 s). The code servers it
    starts fork their run workers from a preloaded process (SUPERHERO_FORK_RUN_WORKERS)."""
    settings = load_settings()
    if settings.sensor_loop_seconds:
        tighten_sensor_loop(settings.sensor_loop_seconds)
    if settings.fork_run_workers:
        from superhero_dagster.forked_runs import enable

        enable()
    from dagster._daemon.cli import cli as dagster_daemon

    dagster_daemon.main(args=list(ctx.args), prog_name="superhero-dagster daemon")
