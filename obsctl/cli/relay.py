"""`obsctl relay`: Alertmanager webhooks to signed, paced DingTalk robot messages."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from obsctl.cli.options import (
    config_error,
    log_level_option,
    project_file,
    project_file_options,
    setup_logging,
)


@click.command()
@project_file_options("relay")
@click.option(
    "--check", is_flag=True, help="Validate the config and templates, then exit (0 valid, 2 not)."
)
@log_level_option
def relay(config_path: Path | None, project_dir: Path | None, check: bool, log_level: str) -> None:
    """Serve POST /dingtalk/<target> for Alertmanager, plus /health and /metrics."""
    setup_logging(log_level)
    import jinja2

    from obsctl.relay.config import ConfigError, load
    from obsctl.relay.render import Renderer

    config_path = project_file(config_path, project_dir, "relay_config")
    try:
        config = load(config_path)
        languages = sorted({config.language_of(name) for name in config.targets})
        Renderer(config.render).check(languages)
    except ConfigError as exc:
        config_error(exc)
    except jinja2.TemplateError as exc:
        where = (
            f"{exc.filename}:{exc.lineno}" if isinstance(exc, jinja2.TemplateSyntaxError) else ""
        )
        click.echo(
            f"{config_path}: template {where or config.render.templates_dir}: {exc}", err=True
        )
        sys.exit(2)
    if check:
        click.echo(f"{config_path}: valid; listen {config.listen}")
        spool = config.delivery.spool_dir
        click.echo(f"  spool: {spool if spool else 'none (memory only: a restart loses alerts)'}")
        prefixes = config.render.link_prefixes
        click.echo(f"  links under: {', '.join(prefixes) if prefixes else 'none (links left out)'}")
        for name, target in config.targets.items():
            features = ["signed" if target.signed else "unsigned", config.language_of(name)]
            if target.keyword:
                features.append(f"keyword {target.keyword!r}")
            if target.mentions.mobiles:
                severities = "/".join(target.mentions.severities)
                features.append(f"@{len(target.mentions.mobiles)} mobiles for {severities}")
            if target.mentions.at_all:
                features.append("@all")
            click.echo(f"  {name}: {', '.join(features)}")
        return
    from obsctl.relay.runner import serve
    from obsctl.relay.spool import SpoolError

    try:
        asyncio.run(serve(config))
    except SpoolError as exc:
        click.echo(f"{config_path}: delivery.spool_dir: {exc}", err=True)
        sys.exit(2)
