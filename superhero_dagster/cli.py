"""The ``superhero-dagster`` command line: one group, each subcommand in the module it drives.

Errors that a user can fix surface as one line and a non-zero exit (:class:`CliError`), never as a
traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import click

from superhero_dagster.settings import Settings, SettingsError


class CliError(click.ClickException):
    """A one-line, user-facing failure (exit code 1)."""


def load_settings() -> Settings:
    """Settings from the environment, with configuration errors turned into one CLI line."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def passthrough_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A subcommand that wraps one of Dagster's CLIs: every argument, ``--help`` included, is left
    in ``ctx.args`` for it (the decorated function takes the click context)."""

    def decorate(fn: Callable[..., None]) -> click.Command:
        return click.command(
            name,
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
            add_help_option=False,
        )(click.pass_context(fn))

    return decorate


class LazyGroup(click.Group):
    """Subcommands from :data:`~superhero_dagster.commands.COMMANDS`, each module imported only
    when its command runs (or when ``--help`` lists them all)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from superhero_dagster.commands import COMMANDS

        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from superhero_dagster.commands import COMMANDS

        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Superhero combat traffic, captured from Redis and materialized by Dagster."""


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
