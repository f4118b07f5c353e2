"""Grafana dashboards from the mixin config, built with the Grafana Foundation SDK.

The SDK release pinned by the project targets Grafana 11.6 (dashboard schemaVersion 41);
`lint.schema_problems` round-trips every dashboard through the SDK's models to prove the JSON
is what that schema describes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from obsctl.configfile import ConfigError
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.dashboards import (
    api,
    business,
    database,
    dependencies,
    host,
    overview,
    queues,
)
from obsctl.mixin.dashboards.panels import ALERTS_EXPR, ANNOTATION_EXTRAS, Board, Fault
from obsctl.mixin.dashboards.provisioning import render_provisioning

# Key in links.dashboard_uids -> the module building that dashboard; the order of the files.
BUILDERS: MappingProxyType[str, Callable[[MixinConfig], Board]] = MappingProxyType(
    {
        overview.KEY: overview.build,
        api.KEY: api.build,
        business.KEY: business.build,
        queues.KEY: queues.build,
        dependencies.KEY: dependencies.build,
        database.KEY: database.build,
        host.KEY: host.build,
    }
)
GRAFANA_VERSION = "11.6"
SCHEMA_VERSION = 41


@dataclass(frozen=True)
class Dashboard:
    """One generated dashboard: its key, JSON document and panels that are rightly empty."""

    key: str
    json: dict[str, Any]
    quiet: MappingProxyType[str, Fault]

    @property
    def path(self) -> str:
        """Where it is written, relative to the repo."""
        return f"dashboards/{self.key}.json"


def check_uids(config: MixinConfig) -> None:
    """Fail with a ConfigError naming every dashboard that has no UID in links.dashboard_uids."""
    missing = [key for key in BUILDERS if key not in config.links.dashboard_uids]
    if missing:
        raise ConfigError(
            "mixin config",
            [f"links.dashboard_uids: no UID for dashboard {key!r}" for key in missing],
        )


def to_json(board: Board) -> dict[str, Any]:
    """The dashboard's JSON document: the SDK's encoding plus the Prometheus annotation keys."""
    document: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for annotation in document["annotations"]["list"]:
        if annotation.get("expr") == ALERTS_EXPR:
            annotation.update(ANNOTATION_EXTRAS)
    return document


def build_dashboards(config: MixinConfig) -> list[Dashboard]:
    """Every dashboard, in BUILDERS order."""
    check_uids(config)
    built = []
    for key, build in BUILDERS.items():
        board = build(config)
        built.append(Dashboard(key, to_json(board), MappingProxyType(dict(board.quiet))))
    return built


def dump(document: dict[str, Any]) -> str:
    """Pretty JSON with sorted keys, so regenerating never reorders a committed file."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_dashboards(config: MixinConfig) -> dict[str, str]:
    """Renderer for `obsctl generate`: dashboards/*.json and Grafana's provisioning files."""
    files = {board.path: dump(board.json) for board in build_dashboards(config)}
    files.update(render_provisioning())
    return files


__all__ = ["BUILDERS", "Dashboard", "build_dashboards", "render_dashboards"]
