"""Options and set-up shared by the commands: `--project`, `--config`, `--log-level`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import click
from click.decorators import FC

from obsctl.configfile import ConfigError
from obsctl.project import Project, ProjectNotFound, find_project

T = TypeVar("T")


project_option = click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The ops project (a directory with obsctl.yaml); default: $OBSCTL_PROJECT, else the "
    "current directory or the nearest one above it that holds obsctl.yaml.",
)


def open_project(project_dir: Path | None) -> Project:
    """The project `--project` names or the one found; a usage error (exit 2) if none."""
    try:
        return find_project(project_dir)
    except ProjectNotFound as exc:
        click.echo(f"obsctl: {exc}", err=True)
        sys.exit(2)


def project_file_options(what: str) -> Callable[[FC], FC]:
    """`--config FILE` (passed as `config_path`), else the project's own file, and `--project`."""
    config = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"The {what} config file; default: the project's (see --project).",
    )

    def both(function: FC) -> FC:
        return config(project_option(function))

    return both


def project_file(config_path: Path | None, project_dir: Path | None, attribute: str) -> Path:
    """`--config` if given, else the project's file named by a Project attribute."""
    if config_path is not None:
        return config_path
    path: Path = getattr(open_project(project_dir), attribute)
    return path


def config_option(help: str, default: Path | None = None) -> Callable[[FC], FC]:
    """`--config FILE`, passed as `config_path`; required unless there is a default."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=default is None,
        default=default,
        show_default=default is not None,
        help=help,
    )


def load_config(load: Callable[[Path], T], path: Path) -> T:
    """load(path); a config with problems is listed on stderr and exits 2."""
    try:
        return load(path)
    except ConfigError as exc:
        config_error(exc)


def config_error(exc: ConfigError) -> NoReturn:
    """Print a config's problems on stderr and exit 2 (the config, not obsctl, needs fixing)."""
    click.echo(str(exc), err=True)
    sys.exit(2)


log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)


# Libraries that log every request or job run at INFO: a line a second of noise, and httpx's
# request lines carry whole URLs (a robot's access token, an API key in a query string).
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "aiohttp.access")


def setup_logging(level: str) -> None:
    """One log line format for every obsctl server, on stderr; chatty libraries kept quiet."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def render_extra_missing(exc: ImportError) -> click.ClickException:
    """The error for a PNG command run without the `render` extra (matplotlib)."""
    return click.ClickException(
        f"drawing PNGs needs matplotlib ({exc}): pip install 'obsctl[render]'"
    )
