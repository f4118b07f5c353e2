"""`obsctl drill`: inject a real fault, prove the alert reaches people, restore, report."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        click.echo(message, err=True)


@click.group()
def drill() -> None:
    """Fault drills against the local stack (see `obsctl drill list`)."""


@drill.command(name="list")
def list_scenarios() -> None:
    """The scenarios, their faults and the alerts they expect."""
    from obsctl.drills.scenarios import SCENARIOS

    for scenario in SCENARIOS.values():
        alerts = ", ".join(a.value for a, _ in scenario.expect)
        variants = f" [variants: {', '.join(scenario.variants)}]" if scenario.variants else ""
        click.echo(f"{scenario.name:<16} {scenario.summary}{variants}\n{'':<16} expects {alerts}")


@drill.command()
@click.argument("scenario")
@click.option("--variant", default=None, help="A variant of the scenario, e.g. hang.")
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".stack"),
    show_default=True,
    help="The local stack to drill (as for `obsctl stack`).",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the JSON journal goes (default DIR/drills/<scenario>-<time>.json).",
)
def run(scenario: str, variant: str | None, root: Path, journal: Path | None) -> None:
    """Run SCENARIO: steady state, fault, alert -> DingTalk + email, restore, steady state.

    Exit 0 when every expectation held, 1 when one did not, 3 when the system was not in a
    steady state to begin with, 130 when interrupted (the restore has still run).
    """
    from obsctl.drills.report import summary
    from obsctl.drills.runner import run_drill
    from obsctl.drills.target import DrillError

    path = journal or root / "drills" / f"{scenario}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    try:
        result = run_drill(root, scenario, variant, path, _say)
    except DrillError as exc:
        raise click.ClickException(str(exc)) from exc
    _say("")
    _say(summary(result))
    _say(f"journal: {path}")
    codes = {"passed": 0, "failed": 1, "refused": 3, "interrupted": 130}
    sys.exit(codes.get(result.status, 1))


@drill.command()
@click.argument("journal", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the timeline to this PNG file.",
)
def report(journal: Path, png: Path | None) -> None:
    """Print a journal as a readable summary (and draw its timeline)."""
    from obsctl.drills.journal import Journal
    from obsctl.drills.report import summary, timeline_png

    loaded = Journal.load(journal)
    click.echo(summary(loaded), nl=False)
    if png is not None:
        click.echo(f"timeline: {timeline_png(loaded, png)}")
