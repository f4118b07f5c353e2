"""`obsctl validate`: check every config and generated artifact at once."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from obsctl.paths import REPO_ROOT


@click.command()
@click.option(
    "--repo",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=REPO_ROOT,
    help="The checkout to validate (default: this one).",
)
@click.option("--quiet", is_flag=True, help="Print only problems.")
def validate(repo: Path, quiet: bool) -> None:
    """Exporter and relay configs, generated files, promtool, amtool, dashboards, compose.

    One line per problem (file: location: what is wrong); exit 1 when there is any.
    """
    from obsctl.validate import run_all

    results = run_all(repo)
    total = 0
    for name, problems in results.items():
        total += len(problems)
        for problem in problems:
            click.echo(problem)
        if not quiet:
            click.echo(f"{'ok' if not problems else 'FAIL':>4}  {name}", err=True)
    if total:
        click.echo(f"{total} problem(s)", err=True)
    sys.exit(1 if total else 0)
