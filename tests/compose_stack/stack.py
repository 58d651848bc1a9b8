"""Driving the compose stack from the tests: compose commands, containers, crashes, probes.

Everything goes through the real `docker-compose` (v1, what Debian packages; see compose/README.md)
and `docker` CLIs. Containers are found by compose's own labels, so scaled services and restarted
containers are seen as they are, not as the test expects them to be.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = (
    REPO / "compose" / "docker-compose.yml",
    REPO / "compose" / "docker-compose.test.yml",
)
PROBE = Path(__file__).with_name("probe.py")


class CommandFailed(AssertionError):
    """A docker/compose command exited non-zero; the message carries its output."""


def run(argv: list[str], *, timeout: float = 120, stdin: str | None = None) -> str:
    proc = subprocess.run(
        argv, cwd=REPO, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-4000:]
        raise CommandFailed(f"`{' '.join(argv[:6])} ...` exited {proc.returncode}:\n{output}")
    return proc.stdout


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@dataclass
class ComposeStack:
    """One compose project: the production file plus the test override, the test's env file."""

    project: str
    env_file: Path
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = read_env_file(self.env_file)

    # ------------------------------------------------------------ compose
    def compose(self, *args: str, timeout: float = 600) -> str:
        files = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
        base = ["docker-compose", "--project-name", self.project, "--env-file", str(self.env_file)]
        return run([*base, *files, *args], timeout=timeout)

    def down(self) -> None:
        # With the simulator's profile, or its container would keep the network alive.
        self.compose("--profile", "simulate", "down", "--volumes", "--remove-orphans", "-t", "10")

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks still labelled with this project."""
        label = f"label=com.docker.compose.project={self.project}"
        return {
            kind: run(["docker", *cmd, "--filter", label, "-q"]).split()
            for kind, cmd in (
                ("containers", ["ps", "-a"]),
                ("volumes", ["volume", "ls"]),
                ("networks", ["network", "ls"]),
            )
        }

    # ------------------------------------------------------------ containers
    def containers(self, service: str) -> list[str]:
        """Ids of the service's running containers, by compose's container number."""
        ids = run(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ]
        ).split()
        return sorted(
            ids,
            key=lambda cid: int(
                self.inspect(cid)["Config"]["Labels"].get(
                    "com.docker.compose.container-number", "0"
                )
            ),
        )

    def container(self, service: str) -> str:
        (cid,) = self.containers(service)
        return cid

    def inspect(self, cid: str) -> dict[str, Any]:
        (info,) = json.loads(run(["docker", "inspect", cid]))
        return info

    def health(self, cid: str) -> str | None:
        state = self.inspect(cid)["State"]
        return (state.get("Health") or {}).get("Status") if state["Running"] else "down"

    def crash(self, cid: str) -> dict[str, Any]:
        """SIGKILL the container's main process from the host: a crash, not `docker stop`/`kill`.

        Docker treats `docker kill` as a deliberate stop and does not apply the restart policy;
        a process dying by itself is what `restart: unless-stopped` is for. Returns the state the
        container had, so recovery can be told apart (restart count, start time).
        """
        state = self.inspect(cid)["State"]
        os.kill(state["Pid"], signal.SIGKILL)
        return state

    def restarted_since(self, cid: str, before: dict[str, Any]) -> bool:
        state = self.inspect(cid)["State"]
        return state["Running"] and state["StartedAt"] != before["StartedAt"]

    def logs(self, service: str, tail: int = 40) -> str:
        try:
            return self.compose("logs", "--no-color", f"--tail={tail}", service, timeout=60)
        except CommandFailed as exc:
            return str(exc)

    def published(self, service: str, port: int) -> list[tuple[str, int]]:
        """(host address, host port) the service's container port is published on."""
        bindings = self.inspect(self.container(service))["NetworkSettings"]["Ports"]
        return [(b["HostIp"], int(b["HostPort"])) for b in bindings.get(f"{port}/tcp") or []]

    # ------------------------------------------------------------ inside the stack
    def sink_tokens(self, *assets: str) -> dict[str, set[str]]:
        """Games with a JSON file per asset on the sinks volume (as the code server sees it)."""
        script = 'for a in "$@"; do echo "== $a"; ls "/data/json/$a" 2>/dev/null || true; done'
        cid = self.container("code-server")
        out = run(["docker", "exec", cid, "sh", "-c", script, "sh", *assets], timeout=60)
        found: dict[str, set[str]] = {}
        current = None
        for word in out.split():
            if word == "==":
                current = None
            elif current is None:
                current = word
                found[current] = set()
            elif word.endswith(".json"):
                found[current].add(word.removesuffix(".json"))
        return found

    def probe(self) -> dict[str, Any]:
        """tests/compose_stack/probe.py run by the code server's Python against the stack's
        Dagster instance (Postgres) and sinks volume; its JSON answer."""
        cid = self.container("code-server")
        out = run(
            ["docker", "exec", "-i", cid, "python", "-"], stdin=PROBE.read_text(), timeout=180
        )
        return json.loads(out.strip().splitlines()[-1])

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.env['REDIS_PASSWORD']}@127.0.0.1:{self.env['REDIS_PORT']}/0"

    @property
    def ui_port(self) -> int:
        return int(self.env["DAGSTER_WEBSERVER_PORT"])
