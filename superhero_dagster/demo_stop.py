"""Stopping the demo's Dagster without a failed run: pause the sensors, let runs finish, restore.

Why: ``dagster dev`` stopped while a run is executing kills the run worker with it, and the run
is left as FAILURE ("Execution was interrupted unexpectedly"), to be retried on the next start.
So the demo first **stops every running sensor and schedule** of the code location through the
webserver's GraphQL API (the games sensor requests no new batch, the automation and pending-period
sensors no new compaction, the retention schedule, every few minutes, no new pass),
then **waits for queued and in-progress runs** (the daemon keeps launching queued ones) for at
most ``--stop-wait`` seconds, and only then stops ``dagster dev``. A second Ctrl-C skips the wait.

They are stopped in the instance's storage, which outlives the demo, so once Dagster is down
their state is **reset to the status declared in code** (running), exactly as the UI's
"Reset to default status" does. A marker file names what the demo stopped, so a demo killed
half-way is repaired by the next start, and a sensor the user stopped stays stopped.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # dagster is imported where used: the CLI starts without it (~2 s)
    import dagster as dg

    from superhero_dagster.stack import Stack

#: Default bound on the wait for runs (a 500-game batch takes ~10-20 s on a laptop).
STOP_WAIT_SECONDS = 90.0
MARKER = "sensors_paused_by_demo.json"
_POLL_SECONDS = 0.5

_SENSORS = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        sensors { name sensorState { id status } }
        schedules { name scheduleState { id status } }
      }
    }
  }
}"""
#: sensor|schedule -> (the stop mutation, the result type that means it stopped).
_STOP = {
    "sensor": ("stopSensor", "StopSensorMutationResult"),
    "schedule": ("stopRunningSchedule", "ScheduleStateResult"),
}
_STOP_MUTATION = """
mutation ($id: String) {
  %s(id: $id) {
    __typename
    ... on PythonError { message }
  }
}"""


class GraphQLError(RuntimeError):
    """The webserver did not answer, or answered with errors."""


def graphql(url: str, query: str, variables: dict[str, object] | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(  # noqa: S310 (the demo's own 127.0.0.1 webserver)
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            reply = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise GraphQLError(f"{url}/graphql: {exc}") from None
    if reply.get("errors"):
        raise GraphQLError(str(reply["errors"])[:300])
    return reply["data"]


def running_sensors(url: str) -> dict[str, tuple[str, str]]:
    """Name -> (sensor|schedule, instigation state id) of every one running now."""
    repos = graphql(url, _SENSORS)["repositoriesOrError"].get("nodes", [])
    running = {}
    for repo in repos:
        for kind, items, state in (
            ("sensor", repo["sensors"], "sensorState"),
            ("schedule", repo["schedules"], "scheduleState"),
        ):
            for item in items:
                if item[state]["status"] == "RUNNING":
                    running[item["name"]] = (kind, item[state]["id"])
    return running


def pause_sensors(url: str, state_dir: Path) -> list[str]:
    """Stop every running sensor and schedule (recorded in the marker first); the names."""
    running = running_sensors(url)
    if not running:
        return []
    state_dir.mkdir(parents=True, exist_ok=True)
    marker = state_dir / MARKER
    known = set(json.loads(marker.read_text())) if marker.is_file() else set()
    marker.write_text(json.dumps(sorted(known | set(running))))
    for kind, state_id in running.values():
        field, ok = _STOP[kind]
        result = graphql(url, _STOP_MUTATION % field, {"id": state_id})[field]
        if result["__typename"] != ok:
            raise GraphQLError(result.get("message", result["__typename"]))
    return sorted(running)


def unfinished_runs(instance: dg.DagsterInstance) -> int:
    import dagster as dg

    from superhero_dagster.sensors.instance_view import IN_FLIGHT

    return instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT))


def wait_for_runs(
    instance: dg.DagsterInstance,
    timeout: float,
    now: threading.Event,
    report: Callable[[int], None],
) -> int:
    """Poll until no run is queued or in progress, ``timeout`` passes or ``now`` is set;
    the number of runs still unfinished."""
    deadline = time.monotonic() + timeout
    left = unfinished_runs(instance)
    if left:
        report(left)
    while left and time.monotonic() < deadline and not now.wait(_POLL_SECONDS):
        left = unfinished_runs(instance)
    return left


def restore_sensors(home: Path, state_dir: Path) -> list[str]:
    """After Dagster stopped: sensors and schedules the demo stopped go back to their status
    in code."""
    import dagster as dg
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import InstigatorStatus

    marker = state_dir / MARKER
    if not marker.is_file() or not (home / "dagster.yaml").is_file():
        return []
    names = set(json.loads(marker.read_text()))
    restored = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for kind in (InstigatorType.SENSOR, InstigatorType.SCHEDULE):
            for state in instance.all_instigator_state(instigator_type=kind):
                if state.name in names and state.status == InstigatorStatus.STOPPED:
                    instance.update_instigator_state(
                        state.with_status(InstigatorStatus.DECLARED_IN_CODE)
                    )
                    restored.append(state.name)
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    return sorted(restored)


def stop_stack(
    stack: Stack,
    *,
    ui_url: str,
    home: Path,
    wait_seconds: float,
    now: threading.Event,
    echo: Callable[[str], None],
) -> None:
    """The demo's whole stop: sensors, producers, listeners, runs, Dagster, sensors restored."""
    state_dir = stack.settings.state_dir
    if stack.alive("dagster") and not now.is_set():
        try:
            paused = pause_sensors(ui_url, state_dir)
            if paused:
                echo(f"Sensors stopped: {', '.join(paused)}")
        except GraphQLError as exc:
            echo(f"Could not stop the sensors ({exc}); a run in progress may fail")

    def drain() -> None:
        import dagster as dg

        if not stack.alive("dagster") or now.is_set() or not (home / "dagster.yaml").is_file():
            return
        with dg.DagsterInstance.from_config(str(home)) as instance:
            left = wait_for_runs(
                instance,
                wait_seconds,
                now,
                lambda n: echo(
                    f"Waiting up to {wait_seconds:.0f} s for {n} run(s) to finish "
                    "(Ctrl-C again to stop now)..."
                ),
            )
        if left:
            echo(f"{left} run(s) unfinished: they are stopped with Dagster")

    stack.stop_all(timeout=15, drain=drain)
    restored = restore_sensors(home, state_dir)
    if restored:
        echo(f"Sensors reset to their default status: {', '.join(restored)}")
