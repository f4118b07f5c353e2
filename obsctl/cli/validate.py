"""`obsctl validate`: check every config and generated file of the project at once."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from obsctl.cli.options import open_project, project_option


@click.command()
@project_option
@click.option("--quiet", is_flag=True, help="Print only problems.")
@click.option(
    "--allow-missing-tools",
    is_flag=True,
    help="List checks whose tool (promtool, amtool, docker-compose) is missing as not run, "
    "instead of failing them.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Also check the platform's live servers: `check db` with the exporter's DSN (the "
    "real environment's secrets).",
)
def validate(project_dir: Path | None, quiet: bool, allow_missing_tools: bool, live: bool) -> None:
    """obsctl.yaml, the exporter and relay configs, generated files, promtool, amtool, ...

    One line per problem (file: location: what is wrong); exit 1 when there is any.
    """
    from obsctl.validate import run_all

    project = open_project(project_dir)
    validation = run_all(project, allow_missing_tools, live)
    total = 0
    for name, problems in validation.results.items():
        total += len(problems)
        for problem in problems:
            click.echo(problem)
        if name in validation.not_run:
            click.echo(f"{'skip':>4}  {name}: not run: {validation.not_run[name]}", err=True)
        elif not quiet:
            click.echo(f"{'ok' if not problems else 'FAIL':>4}  {name}", err=True)
    if total:
        click.echo(f"{total} problem(s) in {project.root}", err=True)
    sys.exit(1 if total else 0)
