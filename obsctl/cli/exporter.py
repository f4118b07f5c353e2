"""`obsctl exporter`: the sidecar exporter."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from obsctl.cli.options import (
    load_config,
    log_level_option,
    project_file,
    project_file_options,
    setup_logging,
)


@click.command()
@project_file_options("exporter")
@click.option("--check", is_flag=True, help="Validate the config and exit (0 valid, 2 invalid).")
@log_level_option
def exporter(
    config_path: Path | None, project_dir: Path | None, check: bool, log_level: str
) -> None:
    """Probe MySQL, Redis, BullMQ, COS and providers; serve /metrics and /health."""
    setup_logging(log_level)
    from obsctl.exporter.config import load

    config_path = project_file(config_path, project_dir, "exporter_config")
    config = load_config(load, config_path)
    if check:
        sections = [name for name in ("mysql", "business", "redis", "bullmq", "cos")
                    if getattr(config, name) is not None]  # fmt: skip
        click.echo(
            f"{config_path}: valid; listen {config.listen}; probes: {', '.join(sections)}"
            f"{', ' if sections and config.providers else ''}"
            f"{', '.join('provider ' + p.name for p in config.providers)}"
        )
        return
    from obsctl.exporter.runner import serve

    asyncio.run(serve(config))
