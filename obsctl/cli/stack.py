"""`obsctl stack`: the local stack of real servers, on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click

from obsctl.stack import install, manager, reload
from obsctl.stack.checkout import NotACheckout, demo_project
from obsctl.stack.layout import DEFAULT_PORT_BASE
from obsctl.stack.process import ProcessTable, is_running
from obsctl.stack.services import StackError

DIR_OPTION = click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".stack"),
    show_default=True,
    help="Directory holding all state, logs and stack.env of this stack.",
)


def _say(message: str) -> None:
    # Ctrl-C on `make run | tee log` kills tee first; a broken stderr must not stop a shutdown.
    with contextlib.suppress(OSError):
        click.echo(message, err=True)


@click.group()
def stack() -> None:
    """Run MariaDB, Redis, S3, SMTP, Prometheus, Alertmanager, fakes and the demo platform."""
    try:
        demo_project()
    except NotACheckout as exc:
        raise click.ClickException(str(exc)) from None


@stack.command()
@DIR_OPTION
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65000),
    default=None,
    help=f"First port of the stack (default {DEFAULT_PORT_BASE}, or the one recorded in DIR).",
)
@click.option("--no-install", is_flag=True, help="Do not install missing packages.")
@click.option(
    "--foreground",
    is_flag=True,
    help="Stay attached; Ctrl-C (or SIGTERM) stops the stack again.",
)
def up(root: Path, port_base: int | None, no_install: bool, foreground: bool) -> None:
    """Install what is missing, start every server and wait until each answers."""
    began = time.monotonic()
    try:
        layout = manager.up(root, port_base, _say, do_install=not no_install)
    except (StackError, install.InstallError) as exc:
        raise click.ClickException(str(exc)) from exc
    _say(f"stack ready in {time.monotonic() - began:.1f}s")
    _print_summary(layout.root)
    if foreground:
        _stay_until_signalled(layout.root)


@stack.command()
@DIR_OPTION
def down(root: Path) -> None:
    """Stop every process this stack started, and nothing else."""
    began = time.monotonic()
    try:
        manager.down(root, _say)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    _say(f"stack down in {time.monotonic() - began:.1f}s")


@stack.command()
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(root: Path, as_json: bool) -> None:
    """Show each server, its address and whether it answers; exit 0 only if all do."""
    try:
        servers = manager.status(root)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([s.__dict__ for s in servers], indent=2))
    else:
        click.echo(f"{'SERVER':<16} {'ADDRESS':<28} {'PID':>8}  STATE")
        for s in servers:
            state = (
                "answering" if s.answering else ("not answering" if s.running else "not running")
            )
            pid = str(s.pid) if s.pid else "-"
            click.echo(f"{s.name:<16} {s.address:<28} {pid:>8}  {state}")
    sys.exit(0 if all(s.answering for s in servers) else 1)


@stack.command(name="reload")
@DIR_OPTION
def reload_configs(root: Path) -> None:
    """Re-render the Prometheus and Alertmanager configs and reload both."""
    try:
        results = reload.reload_all(manager.layout_for(root))
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    failed = False
    for name, error in results.items():
        _say(f"{name:<16} {'reloaded' if error is None else 'REFUSED: ' + error}")
        failed = failed or error is not None
    sys.exit(1 if failed else 0)


@stack.command(name="install")
def install_cmd() -> None:
    """Install the Debian, Python and npm packages the stack and the tests need."""
    try:
        install.install_all(_say)
    except install.InstallError as exc:
        raise click.ClickException(str(exc)) from exc


def _print_summary(root: Path) -> None:
    for server in manager.status(root):
        click.echo(f"{server.name:<16} {server.address}")
    click.echo(f"{'stack.env':<16} {root / 'stack.env'}   (set -a; . {root}/stack.env; set +a)")
    click.echo(f"{'logs':<16} {root / 'logs'}/")


def _stay_until_signalled(root: Path) -> None:
    stopping = False

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    _say("running in the foreground; press Ctrl-C to stop the stack")
    reported: set[str] = set()
    table = ProcessTable(manager.layout_for(root).processes_file)
    while not stopping:
        for name, record in table.load().items():
            if name not in reported and not is_running(record):
                _say(f"WARNING: {name} exited; see {record.log}")
                reported.add(name)
        time.sleep(0.5)
    # A second Ctrl-C must not interrupt the shutdown half-way and leave servers behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _say("stopping the stack")
    manager.down(root, _say)
