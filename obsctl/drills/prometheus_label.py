"""Add or remove the external label drill=<id> in any prometheus.yml, then reload Prometheus.

Meant to run where the Prometheus config lives (``ssh prom1 obsctl drill label set …``): a
remote target's ``drill_label`` actions call it. The original file is kept byte for byte next to
the config while a drill runs, and `clear` puts exactly those bytes back, comments and all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from obsctl.drills.target import DrillError
from obsctl.reload import ReloadError, reload

BACKUP_SUFFIX = ".obsctl-drill-backup"


def backup_of(config: Path) -> Path:
    """Where the original config waits while a drill label is set."""
    return config.with_name(config.name + BACKUP_SUFFIX)


def set_label(config: Path, reload_url: str, drill_id: str) -> str:
    """Write the config with drill=<id> and reload; on any failure the original is back."""
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
    global_section = parsed.get("global") or {}
    labels = {**(global_section.get("external_labels") or {}), "drill": drill_id}
    parsed["global"] = {**global_section, "external_labels": labels}
    _write(config, yaml.safe_dump(parsed, sort_keys=False, allow_unicode=True))
    try:
        _reload(reload_url)
    except DrillError:
        clear_label(config, reload_url)
        raise
    return f"{config}: external label drill={drill_id}, Prometheus reloaded"


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
