"""`obsctl drill`: inject a real fault, prove the alert reaches people, restore, report."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click

from obsctl.cli.options import open_project, project_option, render_extra_missing


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        click.echo(message, err=True)


@click.group()
def drill() -> None:
    """Fault drills against the local stack or a named target (see `obsctl drill list`)."""


@drill.command(name="list")
@click.option(
    "--target",
    "target_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Only the scenarios this target config can run, with its alert labels.",
)
def list_scenarios(target_file: Path | None) -> None:
    """The scenarios, their faults and the alerts they expect."""
    from obsctl.configfile import ConfigError
    from obsctl.drills.scenarios import SCENARIOS

    if target_file is None:
        for scenario in SCENARIOS.values():
            alerts = ", ".join(
                [a.value for a, _ in scenario.expect]
                + (["WatchdogMissing from obsctl deadman"] if scenario.deadman else [])
            )
            variants = f" [variants: {', '.join(scenario.variants)}]" if scenario.variants else ""
            click.echo(
                f"{scenario.name:<16} {scenario.summary}{variants}\n{'':<16} expects {alerts}"
            )
            for invariant in scenario.holds:
                click.echo(f"{'':<16} and {invariant.description}: at least {invariant.minimum:g}")
        return
    from obsctl.drills.remote import RemoteTarget, load_target

    try:
        target = RemoteTarget(load_target(target_file))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, fault in target.config.faults.items():
        expected = ", ".join(
            [
                a.value
                + ("{" + ",".join(f"{k}={v}" for k, v in labels.items()) + "}" if labels else "")
                for a, labels in target.expectations(SCENARIOS[name])
            ]
            + (["WatchdogMissing from obsctl deadman"] if SCENARIOS[name].deadman else [])
        )
        variants = f" [variants: {', '.join(fault.variants)}]" if fault.variants else ""
        click.echo(f"{name:<16} on {target.config.name}{variants}\n{'':<16} expects {expected}")


@drill.command()
@click.argument("scenario")
@click.option("--variant", default=None, help="A variant of the scenario, e.g. hang.")
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The local stack to drill (as for `obsctl stack`)  [default: .stack]",
)
@click.option(
    "--target",
    "target_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Drill the system this target config names instead of the local stack (needs --yes).",
)
@click.option("--yes", is_flag=True, help="Confirm a drill against a --target system.")
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the JSON journal goes (default DIR/drills/, or the target's state directory).",
)
@project_option
def run(
    scenario: str,
    variant: str | None,
    root: Path | None,
    target_file: Path | None,
    yes: bool,
    journal: Path | None,
    project_dir: Path | None,
) -> None:
    """Run SCENARIO: steady state, fault, alert -> DingTalk + email, restore, steady state.

    Without --target the drill acts on the local stack in --dir. With --target FILE it acts
    on the system that file describes, and only with --yes: without it the plan is printed
    and nothing is touched.

    Exit 0 when every expectation held, 1 when one did not, 2 when a --target drill was not
    confirmed with --yes, 3 when the system was not in a steady state to begin with, 4 when
    another drill is running on it (nothing touched), 130 when interrupted (the restore has
    still run).
    """
    from obsctl.configfile import ConfigError
    from obsctl.drills.report import summary
    from obsctl.drills.runner import find_scenario, run_drill
    from obsctl.drills.target import DrillError, DrillTarget
    from obsctl.mixin.config import load as load_mixin

    stamp = time.strftime("%Y%m%dT%H%M%S")
    target: DrillTarget
    try:
        chosen = find_scenario(scenario, variant)
        if target_file is None:
            from obsctl.drills.local import StackTarget
            from obsctl.stack.checkout import demo_project

            root = root or Path(".stack")
            target = StackTarget.open(root)
            alerting = demo_project().config_file
            path = journal or root / "drills" / f"{scenario}-{stamp}.json"
        else:
            from obsctl.drills.remote import RemoteTarget, load_target

            if root is not None:
                raise click.UsageError("--dir names the local stack; use it or --target, not both")
            remote = RemoteTarget(load_target(target_file))
            alerting = open_project(project_dir).config_file
            plan = remote.plan(chosen, variant)
            if not yes:
                _say(f"drill {scenario} would act on {remote.description}:")
                for line in plan:
                    _say(f"  {line}")
                _say("this injects a real fault there: re-run with --yes to go ahead")
                sys.exit(2)
            target = remote
            path = (
                journal
                or remote.state_file.parent / remote.config.name / f"{scenario}-{stamp}.json"
            )
        result = run_drill(target, chosen, variant, path, _say, load_mixin(alerting))
    except (DrillError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    _say("")
    _say(summary(result))
    _say(f"journal: {path}")
    codes = {"passed": 0, "failed": 1, "refused": 3, "locked": 4, "interrupted": 130}
    sys.exit(codes.get(result.status, 1))


@drill.command()
@click.argument("action", type=click.Choice(["set", "clear"]))
@click.argument("drill_id", required=False)
@click.option(
    "--prometheus-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The prometheus.yml Prometheus runs with.",
)
@click.option(
    "--reload-url",
    default="http://127.0.0.1:9090/-/reload",
    show_default=True,
    help="Prometheus's reload endpoint (it needs --web.enable-lifecycle).",
)
@click.option(
    "--alerts",
    default=None,
    help="The drill's own alerts, `Name{key=\"value\"};Other` (a target's {drill_alerts}).",
)
def label(
    action: str, drill_id: str | None, prometheus_config: Path, reload_url: str, alerts: str | None
) -> None:
    """Mark (`set DRILL_ID --alerts ...`) a drill's own alerts drill=<id>, or clear the marks.

    Only those alerts are marked (alert relabelling in prometheus.yml): a real incident during
    the drill reaches on-call unmarked. For a remote target's drill_label actions, run where
    the Prometheus config lives. `clear` puts the original file back byte for byte.
    """
    from obsctl.drills import prometheus_label
    from obsctl.drills.target import DrillError

    try:
        if action == "set":
            if not drill_id or not alerts:
                raise click.UsageError("`set` needs the drill id and --alerts")
            done = prometheus_label.set_label(
                prometheus_config, reload_url, drill_id, prometheus_label.parse_alerts(alerts)
            )
        else:
            done = prometheus_label.clear_label(prometheus_config, reload_url)
    except DrillError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(done)


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
        try:
            drawn = timeline_png(loaded, png)
        except ImportError as exc:
            raise render_extra_missing(exc) from None
        click.echo(f"timeline: {drawn}")
