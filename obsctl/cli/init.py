"""`obsctl init DIR`: a new ops project for your platform."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="The platform's name (default: the directory's).")
def init(directory: Path, name: str | None) -> None:
    """Write a starter obsctl.yaml, exporter config and README into DIRECTORY, then generate.

    Refuses (exit 2) when DIRECTORY already holds a project or any file it would write.
    """
    from obsctl.mixin.config import load
    from obsctl.mixin.generate import generate
    from obsctl.project import Project
    from obsctl.starter import ProjectExists, write_starter

    root = directory.resolve()
    try:
        written = write_starter(root, name or root.name)
    except ProjectExists as exc:
        click.echo(f"obsctl init: {exc}", err=True)
        sys.exit(2)
    project = Project(root)
    generated = generate(load(project.config_file), root)
    for path in written:
        click.echo(f"wrote {project.relative(path)}")
    click.echo(f"generated {len(generated)} files (alert-rules/, alertmanager/, dashboards/, ...)")
    click.echo(
        f"next: edit {project.relative(project.config_file)} (selectors.api, teams, oncall, "
        f"links) and exporters/obsctl-exporter.yml, then `obsctl generate` and "
        f"`obsctl validate` in {root}"
    )
