"""The obsctl checkout the local stack runs from: the demo platform and its ops project.

`obsctl stack` runs the demo platform (Node, with its npm packages installed next to it), so it
needs a checkout of obsctl, not only the installed package: nothing writes into an installed
package. The checkout's root is also the demo platform's ops project (obsctl.yaml).
"""

from __future__ import annotations

from pathlib import Path

from obsctl.project import PROJECT_FILE, Project

ROOT = Path(__file__).resolve().parents[2]


class NotACheckout(Exception):
    """obsctl runs from an installed package, where the local stack cannot run."""


def demo_project() -> Project:
    """The checkout's root as the demo platform's project; NotACheckout from a wheel."""
    if not ((ROOT / PROJECT_FILE).is_file() and (ROOT / "pyproject.toml").is_file()):
        raise NotACheckout(
            f"`obsctl stack` runs the demo platform from a checkout of obsctl (git clone it and "
            f"run `make run` there); this obsctl is an installed package at {ROOT / 'obsctl'}"
        )
    return Project(ROOT)
