"""`obsctl check`: does the watched platform give obsctl what it needs? (db, app)"""

from __future__ import annotations

import click

from obsctl.cli.check_app import app
from obsctl.cli.check_db import db


@click.group()
def check() -> None:
    """Does the watched platform give obsctl what it needs?"""


check.add_command(db)
check.add_command(app)
