"""`obsctl check db`: can the business reader run on the platform's database?"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from obsctl.cli.options import load_config, open_project, project_file_options
from obsctl.project import ProjectNotFound, find_project

if TYPE_CHECKING:
    from pydantic import SecretStr

    from obsctl.exporter.probes.business_config import BusinessConfig


@click.command("db")
@project_file_options("exporter (its mysql.dsn, or OBSCTL_MYSQL_DSN, and business section)")
@click.option(
    "--dsn",
    metavar="mysql://USER:PASSWORD@HOST:PORT/DATABASE",
    help="Check this database instead of the config's (the mapping then comes from --config "
    "when given, else the defaults). A command line is visible to other users: prefer the "
    "config or OBSCTL_MYSQL_DSN.",
)
@click.option(
    "--migration-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the knex migration for what is missing is written (default: the project's "
    "migrations/, or ./migrations without a project).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def db(
    config_path: Path | None,
    project_dir: Path | None,
    dsn: str | None,
    migration_dir: Path | None,
    as_json: bool,
) -> None:
    """Can the business reader run on this database?

    Connects with the exporter's read-only account, lists each table, column and index the
    reader needs with the DDL for what is missing, EXPLAINs every statement the reader sends,
    and writes a knex migration holding the DDL. It never changes the database.

    Exit code 0 when the reader can run, 1 when something is missing or a statement would read
    a table in full, 2 when the config is wrong or the database cannot be reached.
    """
    from obsctl.checks import knex_migration
    from obsctl.checks.db import CannotCheck, check_database, render_text, to_json

    if config_path is None and (dsn is None or project_dir is not None):
        config_path = open_project(project_dir).exporter_config
    if migration_dir is None:
        migration_dir = _project_root(project_dir) / "migrations"
    secret, business = _inputs(config_path, dsn)
    try:
        check = check_database(secret, business)
    except CannotCheck as exc:
        click.echo(f"obsctl check db: {exc}", err=True)
        sys.exit(2)
    try:
        migration = knex_migration.write(migration_dir, check.report.problems)
    except OSError as exc:
        click.echo(f"obsctl check db: cannot write the migration: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(to_json(check, migration), indent=2))
    else:
        click.echo(render_text(check, migration))
    sys.exit(0 if check.report.ok else 1)


def _project_root(project_dir: Path | None) -> Path:
    try:
        return find_project(project_dir).root
    except ProjectNotFound:
        return Path.cwd()


def _inputs(config_path: Path | None, dsn: str | None) -> tuple[SecretStr, BusinessConfig]:
    """The DSN and the reader's config, from --dsn and/or the exporter config (exit 2 if none)."""
    from pydantic import SecretStr

    from obsctl.exporter.config import load
    from obsctl.exporter.probes.business_config import BusinessConfig

    business, secret = BusinessConfig(), SecretStr(dsn) if dsn else None
    if config_path is not None:
        # --dsn stands in for the config's DSN, as OBSCTL_MYSQL_DSN does for the exporter.
        environ = {**os.environ, "OBSCTL_MYSQL_DSN": dsn} if dsn else os.environ
        config = load_config(lambda path: load(path, environ), config_path)
        business = config.business or business
        if secret is None and config.mysql is not None:
            secret = config.mysql.dsn
    if secret is None:
        click.echo(
            f"obsctl check db: {config_path} has no mysql section: add one, or pass --dsn",
            err=True,
        )
        sys.exit(2)
    return secret, business
