"""Conventions every generated rule must hold (names, severities, owners, links, runbooks)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from obsctl.mixin.config import AlertName, MixinConfig, Severity

CAMEL_CASE = re.compile(r"^[A-Z][a-zA-Z0-9]*$")
RECORDING_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+$")  # level:metric:ops
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook")


def runbook_path(alert: str) -> str:
    """Where the runbook of one alert lives in the project."""
    return f"runbooks/{alert}.md"


def lint(rules: dict[str, Any], config: MixinConfig, repo_root: Path) -> list[str]:
    """Every convention the rule file breaks, one line each; empty when clean."""
    problems: list[str] = []
    severities = {s.value for s in Severity}
    boards = {config.dashboard_url(board) for board in config.links.dashboard_uids}
    # Link annotations each rule must carry once the project configures where they point.
    links = {
        "runbook_url": ("links.runbook_url", config.links.runbook_url),
        "dashboard_url": ("links.grafana_url", config.links.grafana_url),
    }
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                if not RECORDING_NAME.match(rule["record"]):
                    problems.append(
                        f"{rule['record']}: recording rule names are level:metric:operations"
                    )
                continue
            name = str(rule.get("alert", ""))
            where = f"{group.get('name')}/{name}"
            labels = rule.get("labels") or {}
            notes = rule.get("annotations") or {}
            if not CAMEL_CASE.match(name):
                problems.append(f"{where}: alert names are CamelCase")
            if labels.get("severity") not in severities:
                problems.append(
                    f"{where}: severity {labels.get('severity')!r} is not one of"
                    f" {', '.join(sorted(severities))}"
                )
            if labels.get("team") not in config.teams:
                problems.append(
                    f"{where}: team {labels.get('team')!r} is not in teams"
                    f" ({', '.join(config.teams)})"
                )
            problems += [
                f"{where}: annotation {key} is missing"
                for key in REQUIRED_ANNOTATIONS
                if not str(notes.get(key, "")).strip()
            ]
            problems += [
                f"{where}: annotation {key} is missing ({setting} is set)"
                for key, (setting, configured) in links.items()
                if configured and not notes.get(key)
            ]
            if name in AlertName.__members__.values():
                expected = config.runbook_url(AlertName(name))
                if notes.get("runbook_url") and notes["runbook_url"] != expected:
                    problems.append(f"{where}: runbook_url should be {expected}")
            if notes.get("dashboard_url") and notes["dashboard_url"] not in boards:
                problems.append(f"{where}: dashboard_url {notes['dashboard_url']} is no dashboard")
            if not (repo_root / runbook_path(name)).is_file():
                problems.append(f"{where}: runbook {runbook_path(name)} does not exist")
    return problems
