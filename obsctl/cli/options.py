"""Options and set-up shared by the long-running commands (exporter, relay)."""

from __future__ import annotations

import logging
import sys

import click

log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)


def setup_logging(level: str) -> None:
    """One log line format for every obsctl server, on stderr."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
