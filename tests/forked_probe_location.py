"""The code location of tests/test_forked_runs.py: a sensor asks for one run, and the run's op
records how its process was started (its parent's command line, what was already imported)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dagster as dg

#: Imported by the fork server's preload, never by this location or by `python -m dagster`.
PRELOAD_ONLY = "redis"


@dg.op
def record_process() -> None:
    proc = Path(f"/proc/{os.getppid()}")
    record = {
        "pid": os.getpid(),
        "parent": (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(),
        "parent_threads": len(list((proc / "task").iterdir())),
        "preloaded": PRELOAD_ONLY in sys.modules,
    }
    Path(os.environ["FORKED_PROBE_OUT"]).write_text(json.dumps(record))


@dg.job(executor_def=dg.in_process_executor)
def probe_job() -> None:
    record_process()


@dg.sensor(job=probe_job, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=1)
def probe_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    if context.cursor:
        return dg.SkipReason("the probe run was requested already")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key="probe")], cursor="requested")


defs = dg.Definitions(jobs=[probe_job], sensors=[probe_sensor])
