"""`obsctl generate`: render every generated file of a project from its obsctl.yaml."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from obsctl.mixin.alertmanager import render_alertmanager
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.dashboards import render_dashboards
from obsctl.mixin.prometheus_config import render_prometheus
from obsctl.mixin.relay_config import render_relay_configs
from obsctl.mixin.rule_tests import render_rule_tests
from obsctl.mixin.rules import render_rules
from obsctl.mixin.runbooks import render_runbooks
from obsctl.mixin.systemd import render_units

Renderer = Callable[[MixinConfig], dict[str, str]]
RENDERERS: list[Renderer] = [
    render_rules,
    render_rule_tests,
    render_alertmanager,
    render_relay_configs,
    render_dashboards,
    render_units,
    render_prometheus,
    render_runbooks,
]


def render(config: MixinConfig) -> dict[str, str]:
    """Every generated file's text by its path relative to the project root."""
    files: dict[str, str] = {}
    for renderer in RENDERERS:
        files.update(renderer(config))
    return dict(sorted(files.items()))


def generate(config: MixinConfig, root: Path) -> list[Path]:
    """Write every generated file under the project root `root`; returns the paths written."""
    written = []
    for relative, text in render(config).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _current(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def stale(config: MixinConfig, root: Path) -> list[str]:
    """Paths whose committed content is not what the config generates."""
    return [
        relative for relative, text in render(config).items() if _current(root / relative) != text
    ]


def diff(config: MixinConfig, root: Path) -> str:
    """A unified diff from the project's files to what this obsctl would generate."""
    chunks: list[str] = []
    for relative, text in render(config).items():
        current = _current(root / relative)
        if current == text:
            continue
        chunks.extend(
            difflib.unified_diff(
                (current or "").splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"a/{relative}" if current is not None else "/dev/null",
                tofile=f"b/{relative}",
            )
        )
    return "".join(chunks)
