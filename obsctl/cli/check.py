"""`obsctl check`: checks of the watched platform itself, one subcommand per part of it."""

from __future__ import annotations

import click

from obsctl.cli.check_app import app


@click.group()
def check() -> None:
    """Does the watched platform give obsctl what it needs?"""


check.add_command(app)
