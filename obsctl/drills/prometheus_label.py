"""Mark a drill's own alerts with drill=<id> in any prometheus.yml, then reload Prometheus.

Only the alerts the drill expects from its fault are marked, by alert relabelling on their
name and labels (`alerting.alert_relabel_configs`): every other alert -- a real incident that
starts during the drill -- reaches on-call unmarked, as it would without the drill.

Meant to run where the Prometheus config lives (``ssh prom1 obsctl drill label set …``): a
remote target's ``drill_label`` actions call it. The original file is kept byte for byte next to
the config while a drill runs, and `clear` puts exactly those bytes back, comments and all.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from obsctl.drills.target import DrillError
from obsctl.reload import ReloadError, reload

BACKUP_SUFFIX = ".obsctl-drill-backup"
# An alert the drill expects: its name and the labels that pick it out.
DrillAlert = tuple[str, dict[str, str]]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def backup_of(config: Path) -> Path:
    """Where the original config waits while a drill label is set."""
    return config.with_name(config.name + BACKUP_SUFFIX)


def relabels(drill_id: str, alerts: Sequence[DrillAlert]) -> list[dict[str, Any]]:
    """One alert relabelling per expected alert: name and labels matched, drill=<id> set."""
    found = []
    for name, labels in alerts:
        keys = sorted(labels)
        found.append(
            {
                "source_labels": ["alertname", *keys],
                "separator": ";",
                "regex": ";".join(re.escape(v) for v in [name, *(labels[k] for k in keys)]),
                "target_label": "drill",
                "replacement": drill_id,
                "action": "replace",
            }
        )
    return found


def parse_alerts(text: str) -> list[DrillAlert]:
    """`Name/key=value,Other` (the label tool's --alerts) as (name, labels) pairs.

    Shell-safe on purpose: it travels as one argument through `ssh host obsctl ...`; values
    are percent-encoded.
    """
    alerts = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, *pairs = part.split("/")
        labels = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not _NAME.match(key):
                raise DrillError(f"--alerts: expected Name/key=value, found {part!r}")
            labels[key] = urllib.parse.unquote(value)
        if not _NAME.match(name):
            raise DrillError(f"--alerts: {name!r} is not an alert name")
        alerts.append((name, labels))
    if not alerts:
        raise DrillError("--alerts: name at least one alert the drill expects")
    return alerts


def format_alerts(alerts: Sequence[DrillAlert]) -> str:
    """The inverse of parse_alerts (what a remote target's {drill_alerts} becomes)."""
    return ",".join(
        "/".join(
            [name, *(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in sorted(labels.items()))]
        )
        for name, labels in alerts
    )


def set_label(config: Path, reload_url: str, drill_id: str, alerts: Sequence[DrillAlert]) -> str:
    """Write the config marking `alerts` with drill=<id> and reload; on failure the original."""
    backup = backup_of(config)
    if not backup.exists():
        shutil.copy2(config, backup)
    original = backup.read_text()
    try:
        parsed: Any = yaml.safe_load(original) or {}
    except yaml.YAMLError as exc:
        backup.unlink()
        raise DrillError(f"{config}: not valid YAML: {exc}") from None
    if not isinstance(parsed, dict):
        backup.unlink()
        raise DrillError(f"{config}: the top level must be a mapping")
    alerting = parsed.get("alerting") or {}
    existing = alerting.get("alert_relabel_configs") or []
    parsed["alerting"] = {
        **alerting,
        "alert_relabel_configs": [*relabels(drill_id, alerts), *existing],
    }
    _write(config, yaml.safe_dump(parsed, sort_keys=False, allow_unicode=True))
    try:
        _reload(reload_url)
    except DrillError:
        clear_label(config, reload_url)
        raise
    names = ", ".join(name for name, _ in alerts)
    return f"{config}: {names} marked drill={drill_id}, Prometheus reloaded"


def clear_label(config: Path, reload_url: str) -> str:
    """Put the original config back (if a drill label is set) and reload."""
    backup = backup_of(config)
    if not backup.exists():
        return f"{config}: no drill label set"
    _write(config, backup.read_text())
    backup.unlink()
    _reload(reload_url)
    return f"{config}: original restored, Prometheus reloaded"


def _write(config: Path, text: str) -> None:
    """Rewrite the file in place.

    Not write-and-rename: a Docker single-file bind mount (compose's prometheus.yml) keeps
    showing the old inode after a rename. Prometheus reads the file only on the reload that
    follows, so nobody sees it half written.
    """
    with open(config, "r+", encoding="utf-8") as handle:
        handle.write(text)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())


def _reload(url: str) -> None:
    try:
        reload(url, timeout=30)
    except ReloadError as exc:
        if not exc.answered:
            raise DrillError(f"cannot reload Prometheus at {url}: {exc}") from None
        raise DrillError(f"Prometheus refused the reload ({url}): {str(exc)[:300]}") from None
