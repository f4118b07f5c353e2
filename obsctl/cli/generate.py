"""`obsctl generate`: alert rules, their tests and the Alertmanager config from one config."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from obsctl.cli.options import config_option, load_config
from obsctl.mixin.config import DEFAULT_CONFIG, load
from obsctl.mixin.generate import generate as write_all
from obsctl.mixin.generate import stale
from obsctl.mixin.lint import lint
from obsctl.mixin.rules import RULES_PATH, render_rules
from obsctl.paths import REPO_ROOT


@click.command()
@config_option("Mixin config to render.", DEFAULT_CONFIG)
@click.option(
    "--repo",
    "repo_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO_ROOT,
    show_default=True,
    help="Repository root the generated files live under.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a file is out of date.")
@click.option("--lint", "run_lint", is_flag=True, help="Also lint the rules; exit 1 on problems.")
def generate(config_path: Path, repo_root: Path, check: bool, run_lint: bool) -> None:
    """Render alert-rules/ and alertmanager/ from the mixin config (exit 2 on a bad config)."""
    config = load_config(load, config_path)
    failed = False
    if check:
        outdated = stale(config, repo_root)
        for relative in outdated:
            click.echo(f"out of date: {relative}", err=True)
        if outdated:
            click.echo("run `obsctl generate` and commit the result", err=True)
            failed = True
        else:
            click.echo("generated files are up to date")
    else:
        for path in write_all(config, repo_root):
            click.echo(f"wrote {path.relative_to(repo_root)}")
    if run_lint:
        rules = yaml.safe_load(render_rules(config)[RULES_PATH])
        problems = lint(rules, config, repo_root)
        for problem in problems:
            click.echo(f"lint: {problem}", err=True)
        failed = failed or bool(problems)
        if not problems:
            click.echo("lint: clean")
    sys.exit(1 if failed else 0)
