"""Which subcommands exist: name -> "module:attribute" of its click command.

Imported on use, not at start-up: `superhero-dagster daemon` and `listen` run for days and should
not carry the demo's pandas (~0.9 s and ~95 MB when every command module was imported first).
"""

from __future__ import annotations

COMMANDS: dict[str, str] = {
    "redis": "superhero_dagster.redis_cmd:redis_command",
    "listen": "superhero_dagster.listener.command:listen_command",
    "status": "superhero_dagster.listener.command:status_command",
    "init-instance": "superhero_dagster.instance_cmd:init_instance_command",
    "simulate": "superhero_dagster.simulator.command:simulate_command",
    "demo": "superhero_dagster.demo:demo_command",
    "daemon": "superhero_dagster.daemon_cmd:daemon_command",
    "code-server": "superhero_dagster.code_server_cmd:code_server_command",
}
