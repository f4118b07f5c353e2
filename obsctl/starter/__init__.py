"""The files `obsctl init` writes into a new ops project, before it generates the rest."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from obsctl.project import PROJECT_FILE, Project

# Package file -> where it goes in the project.
FILES = {
    "obsctl.yaml": PROJECT_FILE,
    "obsctl-exporter.yml": "exporters/obsctl-exporter.yml",
    "README.md": "README.md",
}


class ProjectExists(Exception):
    """The directory already holds an obsctl project (or a file init would write)."""


def write_starter(root: Path, name: str) -> list[Path]:
    """Write the hand-edited files of a new project under `root`; ProjectExists if any is there."""
    project = Project(root)
    targets = {source: root / relative for source, relative in FILES.items()}
    taken = [path for path in targets.values() if path.exists()]
    if project.config_file.exists():
        raise ProjectExists(f"{root} already holds an obsctl project ({PROJECT_FILE})")
    if taken:
        shown = ", ".join(project.relative(path) for path in taken)
        raise ProjectExists(f"{root} already has {shown}: init writes nothing over a file")
    written = []
    package = resources.files(__package__)
    for source, path in targets.items():
        text = (package / source).read_text(encoding="utf-8")
        if source == "README.md":
            text = text.replace("{name}", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    (root / "drills" / "targets").mkdir(parents=True, exist_ok=True)
    return written
