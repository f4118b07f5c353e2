"""The `obsctl` command line."""

from __future__ import annotations

import importlib

import click

from obsctl import __version__

# Each command's module is imported only when that command runs: the relay, the exporter and
# the deadman are long-running processes, and none should carry the stack's, the dashboards'
# or the drills' imports in its memory.
COMMANDS = {
    "init": "obsctl.cli.init:init",
    "stack": "obsctl.cli.stack:stack",
    "exporter": "obsctl.cli.exporter:exporter",
    "probe": "obsctl.cli.probe:probe",
    "generate": "obsctl.cli.generate:generate",
    "drill": "obsctl.cli.drill:drill",
    "relay": "obsctl.cli.relay:relay",
    "deadman": "obsctl.cli.deadman:deadman",
    "dashboards": "obsctl.cli.dashboards:dashboards",
    "validate": "obsctl.cli.validate:validate",
    "check": "obsctl.cli.check:check",
    "silence": "obsctl.cli.silence:silence",
    "report": "obsctl.cli.report:report",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported by name on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, the lazy ones included."""
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module if it is a lazy one."""
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        return command


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="obsctl")
def cli() -> None:
    """Observability and SRE operations for the image-task platform."""
