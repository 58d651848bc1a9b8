"""Which subcommands exist. One line per command; each command lives in its own module."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    from superhero_dagster.daemon_cmd import daemon_command
    from superhero_dagster.demo import demo_command
    from superhero_dagster.instance_cmd import init_instance_command
    from superhero_dagster.listener.command import listen_command, status_command
    from superhero_dagster.redis_cmd import redis_command
    from superhero_dagster.simulator.command import simulate_command

    group.add_command(redis_command)
    group.add_command(listen_command)
    group.add_command(status_command)
    group.add_command(init_instance_command)
    group.add_command(simulate_command)
    group.add_command(demo_command)
    group.add_command(daemon_command)
