"""The ``superhero-dagster`` command line: one group, each subcommand in the module it drives.

Errors that a user can fix surface as one line and a non-zero exit (:class:`CliError`), never as a
traceback.
"""

from __future__ import annotations

import sys

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Superhero combat traffic, captured from Redis and materialized by Dagster."""


def _register() -> None:
    """Attach subcommands; each lives next to the code it runs."""
    from superhero_dagster.commands import register

    register(cli)


def main() -> None:
    _register()
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
