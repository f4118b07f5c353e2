"""`obsctl deadman`: page on-call when the alert path's Watchdog stops arriving."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from obsctl.cli.options import log_level_option, setup_logging


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="YAML config (see alertmanager/deadman.yaml).",
)
@click.option("--check", is_flag=True, help="Validate the config, then exit (0 valid, 2 not).")
@log_level_option
def deadman(config_path: Path, check: bool, log_level: str) -> None:
    """Serve POST /heartbeat/<name> for Alertmanager's Watchdog; page on-call when it stops."""
    setup_logging(log_level)
    from obsctl.deadman.config import ConfigError, load

    try:
        config = load(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if check:
        channels = [name for name in ("dingtalk", "email") if getattr(config.notify, name)]
        click.echo(f"{config_path}: valid; listen {config.listen}; state in {config.state_dir}")
        for beat in config.heartbeats:
            click.echo(f"  {beat.name}: missing after {beat.timeout:g}s -> {', '.join(channels)}")
        return
    from obsctl.deadman.runner import serve
    from obsctl.statedir import StateDirError

    try:
        asyncio.run(serve(config))
    except StateDirError as exc:
        click.echo(f"{config_path}: state_dir: {exc}", err=True)
        sys.exit(2)
