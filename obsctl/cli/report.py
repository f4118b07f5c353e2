"""`obsctl report alerts`: what fired, for how long, who claimed it, and what was noise."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import click

from obsctl.cli.options import project_option, render_extra_missing

_SPAN = re.compile(r"^(\d+)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _seconds(text: str) -> float:
    found = _SPAN.fullmatch(text.strip())
    if not found or int(found.group(1)) == 0:
        raise click.BadParameter(f"expected a span such as 7d, 12h or 30m, found {text!r}")
    return int(found.group(1)) * _UNIT[found.group(2)]


@click.group()
def report() -> None:
    """Reports over the alert history."""


@report.command("alerts")
@click.option("--since", default="7d", show_default=True, help="How far back: 7d, 12h, 30m.")
@click.option(
    "--prometheus-url", envvar="OBSCTL_PROMETHEUS_URL",
    help="Prometheus (or the remote-write store's query API); default: the project's links.",
)  # fmt: skip
@click.option(
    "--alertmanager-url", envvar="OBSCTL_ALERTMANAGER_URL",
    help="Alertmanager, for the claims (silences with an author); default: the project's links.",
)  # fmt: skip
@click.option(
    "--drill-journals", type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Drill journals (the local stack's .stack/drills): their alerts are kept apart.",
)  # fmt: skip
@click.option(
    "--relay-url", envvar="OBSCTL_RELAY_URL",
    help="The relay, for when each episode reached a robot (its delivery log).",
)  # fmt: skip
@click.option(
    "--relay-token", envvar="OBSCTL_RELAY_TOKEN", show_envvar=True,
    help="The relay's bearer token (its webhook token).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Also draw the report to this PNG file (needs the render extra).",
)  # fmt: skip
@project_option
def alerts(
    since: str,
    prometheus_url: str | None,
    alertmanager_url: str | None,
    drill_journals: Path | None,
    relay_url: str | None,
    relay_token: str | None,
    as_json: bool,
    png: Path | None,
    project_dir: Path | None,
) -> None:
    """Per alert: how often it fired, time firing, MTTA, MTTR and the noise candidates."""
    from obsctl.alert_history import HistoryError, load_journals, read_deliveries, read_history
    from obsctl.silences import SilenceError, Silences

    span = _seconds(since)
    if prometheus_url is None or alertmanager_url is None:
        from obsctl.cli.options import load_config, open_project
        from obsctl.mixin.config import load

        links = load_config(load, open_project(project_dir).config_file).links
        prometheus_url = prometheus_url or (
            str(links.prometheus_url) if links.prometheus_url else None
        )
        alertmanager_url = alertmanager_url or (
            str(links.alertmanager_url) if links.alertmanager_url else None
        )
    if prometheus_url is None:
        click.echo("obsctl report alerts: pass --prometheus-url or set links.prometheus_url",
                   err=True)  # fmt: skip
        sys.exit(2)
    claims: list[dict[str, object]] = []
    if alertmanager_url is not None:
        try:
            claims = Silences(alertmanager_url).all()
        except SilenceError as exc:
            click.echo(f"obsctl report alerts: no claims counted: {exc}", err=True)
    now = time.time()
    deliveries = None
    if relay_url is not None:
        try:
            deliveries = read_deliveries(relay_url, relay_token, now - span)
        except HistoryError as exc:
            click.echo(f"obsctl report alerts: no notifications counted: {exc}", err=True)
    journals = load_journals(drill_journals) if drill_journals else []
    try:
        history = read_history(prometheus_url, now - span, now, claims, journals,
                               deliveries=deliveries)  # fmt: skip
    except HistoryError as exc:
        click.echo(f"obsctl report alerts: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(history.as_dict(), indent=2) if as_json else history.render())
    if png is not None:
        try:
            from obsctl.alert_history_png import history_png

            drawn = history_png(history, png)
        except ImportError as exc:
            raise render_extra_missing(exc) from None
        # On stderr, so that --json stays one JSON document on stdout.
        click.echo(f"report: {drawn}", err=True)
