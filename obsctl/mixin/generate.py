"""`obsctl generate`: render every generated file from the mixin config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from obsctl.mixin.alertmanager import render_alertmanager
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.dashboards import render_dashboards
from obsctl.mixin.rule_tests import render_rule_tests
from obsctl.mixin.rules import render_rules
from obsctl.paths import REPO_ROOT

Renderer = Callable[[MixinConfig], dict[str, str]]
RENDERERS: list[Renderer] = [
    render_rules,
    render_rule_tests,
    render_alertmanager,
    render_dashboards,
]


def render(config: MixinConfig) -> dict[str, str]:
    """Every generated file's text by its path relative to the repo root."""
    files: dict[str, str] = {}
    for renderer in RENDERERS:
        files.update(renderer(config))
    return dict(sorted(files.items()))


def generate(config: MixinConfig, repo_root: Path = REPO_ROOT) -> list[Path]:
    """Write every generated file; returns the paths written."""
    written = []
    for relative, text in render(config).items():
        path = repo_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def stale(config: MixinConfig, repo_root: Path = REPO_ROOT) -> list[str]:
    """Paths whose committed content is not what the config generates."""
    return [
        relative
        for relative, text in render(config).items()
        if not (repo_root / relative).is_file() or (repo_root / relative).read_text() != text
    ]
