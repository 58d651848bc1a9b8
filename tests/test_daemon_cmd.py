"""`superhero-dagster daemon`: the sensor loop it tightens is Dagster's private constant, so these
tests fail loudly when a Dagster upgrade renames it or stops reading it at run time.

That the daemon it starts is Dagster's own (same subcommands, real sensor ticks, runs) is what
tests/test_daemon_e2e.py and the fault suite exercise: they start it through this command.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess

import pytest

from superhero_dagster.cli import CliError
from superhero_dagster.daemon_cmd import tighten_sensor_loop
from superhero_dagster.stack import executable

CLI = executable("superhero-dagster")


def test_the_loop_reads_the_constant_at_run_time() -> None:
    sensor = importlib.import_module("dagster._daemon.sensor")
    assert isinstance(sensor.MIN_INTERVAL_LOOP_TIME, int)
    source = inspect.getsource(sensor.execute_sensor_iteration_loop)
    # The sleep is computed from the module global on every pass (not bound as a default).
    assert "MIN_INTERVAL_LOOP_TIME - loop_duration" in source
    assert "MIN_INTERVAL_LOOP_TIME" not in str(
        inspect.signature(sensor.execute_sensor_iteration_loop)
    )


def test_tightening_sets_it_and_returns_dagsters_value(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = importlib.import_module("dagster._daemon.sensor")
    monkeypatch.setattr(sensor, "MIN_INTERVAL_LOOP_TIME", sensor.MIN_INTERVAL_LOOP_TIME)
    assert tighten_sensor_loop(1) == 5.0
    assert sensor.MIN_INTERVAL_LOOP_TIME == 1


def test_a_dagster_without_the_constant_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = importlib.import_module("dagster._daemon.sensor")
    monkeypatch.delattr(sensor, "MIN_INTERVAL_LOOP_TIME")
    with pytest.raises(CliError, match="dagster-daemon run"):
        tighten_sensor_loop(1)


def test_it_hands_everything_else_to_dagster_daemon() -> None:
    out = subprocess.run(
        [CLI, "daemon", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Run any daemons configured on the DagsterInstance" in out.stdout
    assert "--workspace" in out.stdout


def test_a_bad_loop_setting_is_one_line() -> None:
    out = subprocess.run(
        [CLI, "daemon", "run"],
        capture_output=True,
        text=True,
        env={**os.environ, "SUPERHERO_SENSOR_LOOP_SECONDS": "soon"},
    )
    assert out.returncode == 1
    assert (
        out.stderr.strip() == "Error: SUPERHERO_SENSOR_LOOP_SECONDS must be an integer, got 'soon'"
    )
