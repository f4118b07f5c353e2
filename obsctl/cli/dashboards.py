"""`obsctl dashboards`: lint the generated dashboards, draw them to PNG from a real Prometheus."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from obsctl.cli.options import open_project, project_option, render_extra_missing
from obsctl.configfile import ConfigError
from obsctl.mixin.config import MixinConfig, load
from obsctl.mixin.dashboards import BUILDERS, build_dashboards
from obsctl.mixin.dashboards.lint import lint as lint_dashboards
from obsctl.mixin.dashboards.lint import recorded_metrics, schema_problems


def _load(project_dir: Path | None) -> MixinConfig:
    try:
        return load(open_project(project_dir).config_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def dashboards() -> None:
    """Grafana dashboards generated from the project's obsctl.yaml."""


@dashboards.command()
@project_option
def lint(project_dir: Path | None) -> None:
    """Check UIDs, datasource, units, rate intervals, metric names and the Grafana schema."""
    config = _load(project_dir)
    rules_dir = open_project(project_dir).alert_rules
    try:
        boards = build_dashboards(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    problems = lint_dashboards(boards, config, recorded_metrics(rules_dir))
    for board in boards:
        problems += [f"{board.path}: schema: {p}" for p in schema_problems(board.json)]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{len(boards)} dashboards pass every lint rule and the Grafana 11.6 schema")


@dashboards.command()
@project_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for <dashboard>.png.",
)
@click.option(
    "--prometheus",
    "prometheus_url",
    default=lambda: os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:9090"),
    show_default="$PROMETHEUS_URL or http://127.0.0.1:9090",
    help="Prometheus to query.",
)
@click.option("--from", "start", default="1h", show_default=True, help="now-1h, 1h, ISO time.")
@click.option("--to", "end", default="now", show_default=True, help="now, now-5m, ISO time.")
@click.option("--step", default=None, help="Range query step, e.g. 15s (default: ~240 points).")
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Template variable value (a regex), e.g. queue=matting; default .* (All).",
)
@click.option(
    "--dashboard",
    "only",
    multiple=True,
    type=click.Choice(list(BUILDERS)),
    help="Only this dashboard (repeatable); default every one.",
)
def render(
    project_dir: Path | None,
    out_dir: Path,
    prometheus_url: str,
    start: str,
    end: str,
    step: str | None,
    variables: tuple[str, ...],
    only: tuple[str, ...],
) -> None:
    """Draw each dashboard's panels to PNG from real Prometheus range queries."""
    # Here, not at the top: matplotlib is the `render` extra, not needed by any other command.
    from obsctl.snapshot.prometheus import QueryError, RenderError, time_range

    try:
        from obsctl.snapshot.render_png import render_dashboards_png
    except ImportError as exc:
        raise render_extra_missing(exc) from None

    config = _load(project_dir)
    values = {}
    for item in variables:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--var")
        values[name] = value
    try:
        window = time_range(start, end, step)
        boards = [b for b in build_dashboards(config) if not only or b.key in only]
        results = render_dashboards_png(boards, prometheus_url, window, out_dir, values)
    except (RenderError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    except QueryError as exc:
        raise click.ClickException(f"Prometheus at {prometheus_url}: {exc}") from None
    failed = False
    for result in results:
        drawn = sum(1 for p in result.panels if p.series)
        click.echo(f"{result.path}  {drawn}/{len(result.panels)} panels with data")
        for title in result.empty:
            quiet = any(p.quiet for p in result.panels if p.title == title)
            click.echo(f"  no data: {title}" + (" (expected while healthy)" if quiet else ""))
        for error in result.errors:
            failed = True
            click.echo(f"  query error: {error}", err=True)
    if failed:
        sys.exit(1)
