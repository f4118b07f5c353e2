"""The `obsctl` command line."""

import click

from obsctl import __version__
from obsctl.cli.dashboards import dashboards
from obsctl.cli.deadman import deadman
from obsctl.cli.drill import drill
from obsctl.cli.exporter import exporter
from obsctl.cli.generate import generate
from obsctl.cli.probe import probe
from obsctl.cli.relay import relay
from obsctl.cli.stack import stack
from obsctl.cli.validate import validate


@click.group()
@click.version_option(__version__, prog_name="obsctl")
def cli() -> None:
    """Observability and SRE operations for the image-task platform."""


cli.add_command(stack)
cli.add_command(exporter)
cli.add_command(probe)
cli.add_command(generate)
cli.add_command(drill)
cli.add_command(relay)
cli.add_command(deadman)
cli.add_command(dashboards)
cli.add_command(validate)
