"""The production stack of compose/ running for real: `make test-compose` (scripts/test-compose.sh).

Not part of `make test` (pyproject's norecursedirs): it needs a Docker engine and the base images
the script prepares, and takes minutes. The tests run in file order against one stack, brought up
from scratch with `docker-compose up --build` and torn down at the end: games from the simulator
on the host reach the sinks volume exactly once through the containerized daemon on Postgres;
listeners scale to 3; a listener and the daemon crash mid-run and come back with nothing lost; the
UI answers on 127.0.0.1 only. Figures (bring-up, games/s, recovery) go to SUPERHERO_COMPOSE_REPORT.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from superhero_dagster.instance_config import ANALYTICS, GAMES_BATCH
from superhero_dagster.keys import ProjectKeys
from superhero_dagster.listener.status import collect
from superhero_dagster.simulator.run import SimConfig, SimSummary, run_simulation
from superhero_dagster.sinks import GAME_METADATA, GAME_PODIUM
from tests.compose_stack.stack import CommandFailed, ComposeStack, run
from tests.conftest import require
from tests.pipeline_helpers import poll

pytestmark = pytest.mark.timeout(900)

SINK_ASSETS = (GAME_METADATA, GAME_PODIUM)
ALL_ASSETS = ("game_snapshot", GAME_METADATA, GAME_PODIUM)
SENSOR = "completed_games_sensor"
FIGURES: dict[str, Any] = {}
LANDED: list[str] = []  # games every later test expects to find exactly once


def quietly(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` for polling across restarts: a command failing (container not up yet) is "not yet"."""

    def attempt() -> Any:
        try:
            return fn()
        except (CommandFailed, redis.ConnectionError, OSError):
            return None

    return attempt


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    project = os.environ.get("SUPERHERO_COMPOSE_PROJECT")
    env_file = os.environ.get("SUPERHERO_COMPOSE_ENV_FILE")
    require(bool(project and env_file), "run through `make test-compose` (scripts/test-compose.sh)")
    require(
        subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0,
        "no Docker engine answers",
    )
    stack = ComposeStack(str(project), Path(str(env_file)))
    stack.down()  # nothing of an earlier run may survive into this one
    FIGURES["base_images_s"] = float(os.environ.get("SUPERHERO_COMPOSE_BASE_SECONDS", "nan"))
    started = time.monotonic()
    try:
        stack.compose("up", "-d", "--build", timeout=900)
        FIGURES["up_build_command_s"] = round(time.monotonic() - started, 1)
        wait_ready(stack, listeners=2)
        FIGURES["bring_up_s"] = round(time.monotonic() - started, 1)
        yield stack
    finally:
        report = os.environ.get("SUPERHERO_COMPOSE_REPORT")
        if report:
            Path(report).write_text(json.dumps(FIGURES, indent=2), encoding="utf-8")
        stack.down()


@pytest.fixture(scope="module")
def r(stack: ComposeStack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    yield client
    client.close()


def alive_listeners(stack: ComposeStack) -> set[str]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        return {b["id"] for b in collect(client, ProjectKeys())["listeners_alive"]}
    finally:
        client.close()


def wait_ready(stack: ComposeStack, listeners: int) -> None:
    """Every health check green, ``listeners`` heartbeats, the daemon's sensor loop beating."""
    for service in ("redis", "postgres", "code-server", "webserver"):
        poll(
            quietly(lambda s=service: stack.health(stack.container(s)) == "healthy"),
            timeout=300,
            interval=1,
            what=f"{service} healthy\n{stack.logs(service)}",
        )
    poll(
        quietly(lambda: len(alive_listeners(stack)) >= listeners),
        timeout=120,
        interval=1,
        what=f"{listeners} listener heartbeats",
    )
    poll(
        quietly(lambda: "SENSOR" in stack.probe()["heartbeats"]),
        timeout=180,
        interval=2,
        what="the daemon's sensor heartbeat",
    )


def simulate(stack: ComposeStack, **options: Any) -> SimSummary:
    """Games from the host, as the game servers publish them: to Redis's published port."""
    return run_simulation(stack.redis_url, SimConfig(cleaning_delay=0.0, **options))


def wait_landed(stack: ComposeStack, tokens: list[str], timeout: float) -> None:
    def landed() -> bool:
        found = stack.sink_tokens(*SINK_ASSETS)
        return all(set(tokens) <= found.get(asset, set()) for asset in SINK_ASSETS)

    poll(quietly(landed), timeout=timeout, interval=1, what="every game in both sinks")


def assert_exactly_once(probe: dict[str, Any], tokens: list[str]) -> None:
    for asset in ALL_ASSETS:
        counts = probe["materializations"][asset]
        assert set(counts) == set(tokens), f"{asset}: games missing or unexpected"
        twice = {t: n for t, n in counts.items() if n != 1}
        assert twice == {}, f"{asset}: materialized more than once"
    assert probe["parquet"] == dict.fromkeys(SINK_ASSETS, len(tokens))


# ---------------------------------------------------------------- the tests, in order


def test_stack_runs_on_postgres_with_the_official_layout(stack: ComposeStack) -> None:
    probe = stack.probe()
    assert probe["run_storage"] == "PostgresRunStorage"
    assert probe["event_log_storage"] == "BatchingPostgresEventLogStorage"
    assert len(stack.containers("listener")) == 2  # deploy.replicas
    image = stack.inspect(stack.container("daemon"))["Config"]
    assert image["User"] == "dagster"


def test_ui_answers_on_loopback_only(stack: ComposeStack) -> None:
    assert stack.published("webserver", 3000) == [("127.0.0.1", stack.ui_port)]
    assert stack.published("redis", 6379) == [("127.0.0.1", int(stack.env["REDIS_PORT"]))]
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.ui_port}/server_info", timeout=10) as r:
        assert "dagster_webserver_version" in json.loads(r.read())
    # The UI serves the code server's definitions (webserver -> gRPC -> code-server).
    query = json.dumps(
        {
            "query": "{ repositoriesOrError { ... on RepositoryConnection { nodes "
            "{ location { name } } } } }"
        }
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.ui_port}/graphql",
        data=query,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        nodes = json.loads(r.read())["data"]["repositoriesOrError"]["nodes"]
    assert {n["location"]["name"] for n in nodes} == {"superhero_dagster"}
    # Not on the machine's other addresses (the docker bridge's gateway at least exists).
    others = [
        a
        for a in subprocess.run(
            ["hostname", "-I"], capture_output=True, text=True, check=True
        ).stdout.split()
        if ":" not in a
    ]
    gateway = stack.inspect(stack.container("webserver"))["NetworkSettings"]["Networks"]
    others += [n["Gateway"] for n in gateway.values() if n.get("Gateway")]
    assert others
    for address in set(others) - {"127.0.0.1"}:
        with socket.socket() as sock:
            sock.settimeout(3)
            assert sock.connect_ex((address, stack.ui_port)) != 0, f"UI reachable on {address}"


def test_games_land_exactly_once_through_the_daemon(stack: ComposeStack) -> None:
    started = time.monotonic()
    summary = simulate(stack, games=200, seed=15, concurrency=16)
    wait_landed(stack, summary.tokens, timeout=420)
    elapsed = time.monotonic() - started
    FIGURES["throughput_games"] = summary.games
    FIGURES["throughput_games_per_s"] = round(summary.games / elapsed, 1)
    # A batch's materializations (and its check evaluations before them) are recorded when the
    # batch ends, after its files are written: wait for the run to finish, then count.
    probe = poll(
        quietly(lambda: (p := stack.probe())["unfinished"] == [] and p),
        timeout=300,
        interval=2,
        what="every run finished",
    )
    assert_exactly_once(probe, summary.tokens)
    assert probe["runs"].get("SUCCESS", 0) >= 1 and set(probe["runs"]) == {"SUCCESS"}
    # Every game batch was launched by the daemon's games sensor; any other run is an analytics
    # run (compaction, retention, leaderboard) that the games' arrival may have started.
    assert set(probe["run_sensors"][GAMES_BATCH]) == {SENSOR}
    assert set(probe["run_sensors"]) <= {GAMES_BATCH, ANALYTICS}
    FIGURES["throughput_runs"] = probe["run_sensors"][GAMES_BATCH][SENSOR]
    LANDED.extend(summary.tokens)


def captured(r: redis.Redis) -> int:
    return collect(r, ProjectKeys())["counters"]["captured"]


def simulator_games(stack: ComposeStack, cid: str) -> int:
    """Completed games the simulator container reports on its last line (after SIGINT)."""
    line = run(["docker", "logs", cid], timeout=60).strip().splitlines()[-1]
    match = re.search(r"(\d+) games \((\d+) completed, (\d+) timed out\)", line)
    assert match, f"no summary from the simulator: {line!r}"
    games, completed, timed_out = map(int, match.groups())
    assert timed_out == 0 and completed == games
    return completed


def test_scaled_out_listeners_and_crashes_lose_nothing(stack: ComposeStack, r: redis.Redis) -> None:
    """The stack's own simulator service (its production command) runs through both crashes."""
    assert LANDED, "runs after test_games_land_exactly_once_through_the_daemon"
    stack.compose("up", "-d", "--no-recreate", "--scale", "listener=3")
    poll(
        lambda: len(stack.containers("listener")) == 3, timeout=120, interval=1, what="3 listeners"
    )
    poll(quietly(lambda: len(alive_listeners(stack)) >= 3), timeout=120, interval=1, what="3 beats")

    base = captured(r)
    stack.compose("--profile", "simulate", "up", "-d", "--no-deps", "simulator")
    simulator = stack.container("simulator")

    # A listener crashes once games flow: restarted by its policy, a new listener beats.
    poll(lambda: captured(r) - base >= 25, timeout=120, interval=0.2, what="games flowing")
    victim = stack.containers("listener")[0]
    before, ids_before = stack.crash(victim), alive_listeners(stack)
    crashed = time.monotonic()
    poll(
        quietly(
            lambda: stack.restarted_since(victim, before) and alive_listeners(stack) - ids_before
        ),
        timeout=120,
        interval=0.2,
        what=f"the crashed listener back\n{stack.logs('listener')}",
    )
    FIGURES["listener_recovery_s"] = round(time.monotonic() - crashed, 1)

    # Then the daemon: restarted, its sensor loop beats again as a new process.
    daemon = stack.container("daemon")
    beat_before = stack.probe()["heartbeats"]["SENSOR"]["daemon_id"]
    before = stack.crash(daemon)
    crashed = time.monotonic()
    poll(
        quietly(
            lambda: (
                stack.restarted_since(daemon, before)
                and stack.probe()["heartbeats"]["SENSOR"]["daemon_id"] != beat_before
            )
        ),
        timeout=240,
        interval=1,
        what=f"the crashed daemon back\n{stack.logs('daemon')}",
    )
    FIGURES["daemon_recovery_s"] = round(time.monotonic() - crashed, 1)

    # SIGINT (stop_signal): the simulator finishes its games in flight and prints its summary.
    stack.compose("--profile", "simulate", "stop", "simulator")
    games = simulator_games(stack, simulator)
    FIGURES["crash_run_games"] = games
    drain_from = time.monotonic()

    def all_landed() -> bool:
        found = stack.sink_tokens(*SINK_ASSETS)
        return all(len(found.get(a, ())) >= len(LANDED) + games for a in SINK_ASSETS)

    poll(quietly(all_landed), timeout=600, interval=2, what="every game in both sinks")
    FIGURES["drain_after_simulator_s"] = round(time.monotonic() - drain_from, 1)
    # A run the daemon was launching when it died stays STARTING until run monitoring fails it
    # (start_timeout_seconds) and run retries re-queue it: wait for that too, then count.
    probe = poll(
        quietly(lambda: (p := stack.probe())["unfinished"] == [] and p),
        timeout=420,
        interval=5,
        what="every run finished",
    )
    FIGURES["all_runs_finished_after_daemon_crash_s"] = round(time.monotonic() - crashed, 1)
    FIGURES["runs_not_succeeded"] = probe["not_succeeded"]
    tokens = set(probe["materializations"]["game_snapshot"])
    assert set(LANDED) <= tokens and len(tokens) == len(LANDED) + games, "a game lost or extra"
    assert_exactly_once(probe, sorted(tokens))
    assert stack.sink_tokens(*SINK_ASSETS) == dict.fromkeys(SINK_ASSETS, tokens)
    FIGURES["runs_after_crashes"] = probe["runs"]
    status = poll(lambda: (s := collect(r, ProjectKeys()))["buffer_depth"] == 0 and s, timeout=60)
    assert status["deadletters_total"] == 0
    assert len(stack.containers("listener")) == 3
    assert stack.inspect(victim)["RestartCount"] == 1
    assert stack.inspect(daemon)["RestartCount"] == 1


def test_teardown_leaves_nothing(stack: ComposeStack) -> None:
    stack.down()
    assert stack.leftovers() == {"containers": [], "volumes": [], "networks": []}
