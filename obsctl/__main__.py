"""Allow `python -m obsctl`."""

from obsctl.cli.main import cli

cli()
