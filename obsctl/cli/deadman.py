"""`obsctl deadman`: page on-call when the alert path's Watchdog stops arriving."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from obsctl.cli.options import (
    log_level_option,
    project_file,
    project_file_options,
    setup_logging,
)


@click.command()
@project_file_options("deadman")
@click.option("--check", is_flag=True, help="Validate the config, then exit (0 valid, 2 not).")
@log_level_option
def deadman(
    config_path: Path | None, project_dir: Path | None, check: bool, log_level: str
) -> None:
    """Serve POST /heartbeat/<name> for Alertmanager's Watchdog; page on-call when it stops."""
    setup_logging(log_level)
    from obsctl.deadman.config import ConfigError, load

    config_path = project_file(config_path, project_dir, "deadman_config")
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
