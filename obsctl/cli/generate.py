"""`obsctl generate`: every generated file of the project, from its obsctl.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from obsctl.cli.options import load_config, open_project, project_option


@click.command()
@project_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a file is out of date.")
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Write nothing; print what this obsctl would change (e.g. after an upgrade).",
)
@click.option("--lint", "run_lint", is_flag=True, help="Also lint the rules; exit 1 on problems.")
def generate(project_dir: Path | None, check: bool, show_diff: bool, run_lint: bool) -> None:
    """Render alert-rules/, alertmanager/, dashboards/ ... from obsctl.yaml (exit 2: bad config)."""
    from obsctl.mixin.config import load
    from obsctl.mixin.generate import diff, stale
    from obsctl.mixin.generate import generate as write_all
    from obsctl.mixin.lint import lint
    from obsctl.mixin.rules import RULES_PATH, render_rules

    project = open_project(project_dir)
    config = load_config(load, project.config_file)
    # Files are still right; `obsctl validate` fails on these before anything is deployed.
    for gap in config.alert_path_gaps():
        click.echo(f"warning: {project.relative(project.config_file)}: {gap}", err=True)
    failed = False
    if show_diff:
        changes = diff(config, project.root)
        click.echo(changes, nl=False)
        if not changes:
            click.echo("no changes: the project's generated files are what this obsctl makes")
    elif check:
        outdated = stale(config, project.root)
        for relative in outdated:
            click.echo(f"out of date: {relative}", err=True)
        if outdated:
            click.echo("run `obsctl generate` and commit the result", err=True)
            failed = True
        else:
            click.echo("generated files are up to date")
    else:
        for path in write_all(config, project.root):
            click.echo(f"wrote {project.relative(path)}")
    if run_lint:
        rules = yaml.safe_load(render_rules(config)[RULES_PATH])
        problems = lint(rules, config, project.root)
        for problem in problems:
            click.echo(f"lint: {problem}", err=True)
        failed = failed or bool(problems)
        if not problems:
            click.echo("lint: clean")
    sys.exit(1 if failed else 0)
