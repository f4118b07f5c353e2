"""`obsctl silence add|list|expire`: one-off maintenance as Alertmanager silences."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from obsctl.cli.options import project_option

URL_ENV = "OBSCTL_ALERTMANAGER_URL"
MAX_SECONDS = 7 * 86_400  # a week: a longer silence is a config change, not maintenance


def _alertmanager(url: str | None, project_dir: Path | None) -> str:
    """--alertmanager-url, else $OBSCTL_ALERTMANAGER_URL, else the project's links."""
    if url:
        return url
    from obsctl.cli.options import load_config, open_project
    from obsctl.mixin.config import load

    config = load_config(load, open_project(project_dir).config_file)
    if config.links.alertmanager_url is None:
        click.echo(
            f"obsctl: no Alertmanager to talk to: pass --alertmanager-url, set {URL_ENV}, "
            "or set links.alertmanager_url in obsctl.yaml",
            err=True,
        )
        sys.exit(2)
    return str(config.links.alertmanager_url)


url_option = click.option(
    "--alertmanager-url",
    "url",
    envvar=URL_ENV,
    help=f"Alertmanager's base URL (default: ${URL_ENV}, then the project's links).",
)


@click.group()
def silence() -> None:
    """Silences in Alertmanager: add one for a maintenance, list them, expire one."""


@silence.command("add")
@click.option("--for", "duration", required=True, help="How long: 30m, 2h (at most 168h).")
@click.option(
    "--matcher", "-m", "matchers", multiple=True, required=True,
    help='A label matcher: dependency=mysql, alertname=~"A|B", team!=ai (all must match).',
)  # fmt: skip
@click.option("--comment", required=True, help="Why: what maintenance, the ticket.")
@click.option("--author", default=None, help="Who (default: $USER).")
@url_option
@project_option
def add(
    duration: str,
    matchers: tuple[str, ...],
    comment: str,
    author: str | None,
    url: str | None,
    project_dir: Path | None,
) -> None:
    """Silence the alerts the matchers select, from now on for --for; prints the silence id."""
    from obsctl.config_types import parse_duration
    from obsctl.silences import Matcher, SilenceError, Silences

    problems = []
    try:
        seconds = parse_duration(duration)
        if seconds > MAX_SECONDS:
            raise ValueError(f"at most 168h (a week), found {duration!r}")
    except ValueError as exc:
        problems.append(f"--for: {exc}")
    parsed = []
    for text in matchers:
        try:
            parsed.append(Matcher.parse(text))
        except ValueError as exc:
            problems.append(f"--matcher: {exc}")
    if parsed and all(m.matches({}) for m in parsed):
        problems.append("--matcher: these matchers select every alert; name what to silence")
    if not comment.strip():
        problems.append("--comment: say why (the maintenance, a ticket)")
    if problems:
        click.echo("\n".join(f"obsctl silence add: {p}" for p in problems), err=True)
        sys.exit(2)
    who = author or os.environ.get("USER") or getpass.getuser()
    try:
        silence_id = Silences(_alertmanager(url, project_dir)).add(parsed, seconds, who, comment)
    except SilenceError as exc:
        click.echo(f"obsctl silence add: {exc}", err=True)
        sys.exit(1)
    click.echo(silence_id)


@silence.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@url_option
@project_option
def list_(as_json: bool, url: str | None, project_dir: Path | None) -> None:
    """The silences in force now."""
    from obsctl.silences import Matcher, SilenceError, Silences

    try:
        active = Silences(_alertmanager(url, project_dir)).active()
    except SilenceError as exc:
        click.echo(f"obsctl silence list: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(active, indent=2))
        return
    click.echo(f"{'ID':<36}  {'ENDS (UTC)':<20}  {'BY':<12}  MATCHERS / COMMENT")
    for s in sorted(active, key=lambda s: s["endsAt"]):
        matchers = ", ".join(str(Matcher.from_api(m)) for m in s["matchers"])
        ends = s["endsAt"][:19].replace("T", " ")
        click.echo(f"{s['id']:<36}  {ends:<20}  {s.get('createdBy', ''):<12}  {matchers}")
        click.echo(f"{'':<36}  {'':<20}  {'':<12}  {s.get('comment', '')}")


@silence.command("expire")
@click.argument("silence_ids", nargs=-1, required=True)
@url_option
@project_option
def expire(silence_ids: tuple[str, ...], url: str | None, project_dir: Path | None) -> None:
    """End silences now."""
    from obsctl.silences import SilenceError, Silences

    silences = Silences(_alertmanager(url, project_dir))
    failed = False
    for silence_id in silence_ids:
        try:
            silences.expire(silence_id)
            click.echo(f"expired {silence_id}")
        except SilenceError as exc:
            click.echo(f"obsctl silence expire: {silence_id}: {exc}", err=True)
            failed = True
    sys.exit(1 if failed else 0)
