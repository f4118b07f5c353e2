"""`obsctl validate`: every config and generated artifact checked, one line per problem."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from obsctl.configfile import ConfigError
from obsctl.paths import (
    ALERT_RULES_DIR,
    EXPORTER_CONFIG,
    MIXIN_CONFIG,
    RELAY_CONFIG,
    RULE_TESTS_GLOB,
    RULES_GLOB,
)

ALERTMANAGER_CONFIGS = ("alertmanager/alertmanager.yml", "alertmanager/alertmanager.compose.yml")
DRILL_TARGETS_DIR = "drills/targets"
# Secrets and addresses the configs take from the environment at run time; stand-ins let the
# structure be checked on a machine that has none of them.
RUNTIME_PLACEHOLDERS = {
    "OBSCTL_MYSQL_DSN": "mysql://user:password@127.0.0.1:3306/platform",
    "OBSCTL_REDIS_URL": "redis://127.0.0.1:6379/0",
    "OBSCTL_COS_ENDPOINT": "http://127.0.0.1:9000",
    "OBSCTL_COS_BUCKET": "obsctl-canary-1250000000",
    "OBSCTL_COS_ACCESS_KEY": "placeholder",
    "OBSCTL_COS_SECRET_KEY": "placeholder",
    "OBSCTL_COS_REGION": "ap-guangzhou",
    "PROVIDER_ALPHA_URL": "http://127.0.0.1:18306",
    "PROVIDER_BETA_URL": "http://127.0.0.1:18307",
    "OBSCTL_RELAY_TOKEN": "placeholder",
    "OBSCTL_RELAY_LINK_PREFIXES": "http://127.0.0.1:9090 http://127.0.0.1:9093",
    # The shipped spool path is the deployment's; here only its shape is checked.
    "OBSCTL_RELAY_SPOOL_DIR": tempfile.gettempdir(),
}
ROBOT_PLACEHOLDERS = {"URL": "https://oapi.dingtalk.com/robot/send?access_token=x",
                      "SECRET": "SECplaceholder"}  # fmt: skip


@dataclass(frozen=True)
class Check:
    """One named check: returns problem lines (empty when it passes)."""

    name: str
    run: Callable[[Path], list[str]]


def _environ() -> dict[str, str]:
    """Stand-ins (a robot URL and secret per relay target of the routing), then the real env."""
    from obsctl.mixin.config import load
    from obsctl.relay.config import target_env_prefix

    robots = {
        f"{target_env_prefix(target)}_{key}": value
        for target in load().routing.relay_targets()
        for key, value in ROBOT_PLACEHOLDERS.items()
    }
    return {**RUNTIME_PLACEHOLDERS, **robots, **os.environ}


def _config_errors(exc: ConfigError) -> list[str]:
    return [f"{exc.source}: {problem}" for problem in exc.problems]


def check_exporter_config(repo: Path) -> list[str]:
    """The exporter's shipped config validates and calls results stale when the alerts do."""
    from obsctl.exporter.config import load

    try:
        config = load(repo / EXPORTER_CONFIG, _environ())
        mixin = _mixin(repo)
    except ConfigError as exc:
        return _config_errors(exc)
    stale, paged = config.health.stale_after_intervals, mixin.thresholds.exporter_stale_intervals
    if stale != paged:
        return [
            f"{EXPORTER_CONFIG}: health.stale_after_intervals is {stale}, but ExporterDown pages"
            f" at {paged} intervals ({MIXIN_CONFIG}: thresholds.exporter_stale_intervals)"
        ]
    return []


class _AnyVariable(dict[str, str]):
    """An environment in which every ${VAR} is set: drill targets name their own variables."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return "placeholder"


def check_drill_targets(repo: Path) -> list[str]:
    """Every drill target config under drills/targets/ validates (secrets are stood in for)."""
    from obsctl.drills.remote import load_target

    problems = []
    for path in sorted((repo / DRILL_TARGETS_DIR).glob("*.yaml")):
        try:
            load_target(path, _AnyVariable())
        except ConfigError as exc:
            problems += _config_errors(exc)
    return problems


def check_relay_config(repo: Path) -> list[str]:
    """The relay's shipped config validates and its templates render."""
    from obsctl.relay.config import load

    try:
        load(repo / RELAY_CONFIG, _environ())
    except ConfigError as exc:
        return _config_errors(exc)
    return []


def _mixin(repo: Path) -> Any:
    from obsctl.mixin.config import DEFAULT_CONFIG, load

    path = repo / MIXIN_CONFIG
    return load(path if path.exists() else DEFAULT_CONFIG)


def check_mixin_and_generated(repo: Path) -> list[str]:
    """The mixin config validates and every generated file is what it generates."""
    from obsctl.mixin.generate import stale

    try:
        config = _mixin(repo)
    except ConfigError as exc:
        return _config_errors(exc)
    return [f"{path}: stale: run `obsctl generate` and commit it" for path in stale(config, repo)]


def check_rule_lint(repo: Path) -> list[str]:
    """Alert naming, severities, teams, annotations, links, runbooks."""
    from obsctl.mixin.lint import lint

    try:
        config = _mixin(repo)
    except ConfigError:
        return []  # reported by check_mixin_and_generated
    problems = []
    for path in sorted(repo.glob(RULES_GLOB)):
        try:
            rules = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            problems.append(f"{path.relative_to(repo)}: not valid YAML: {exc}")
            continue
        problems += [f"{path.relative_to(repo)}: {p}" for p in lint(rules, config, repo)]
    return problems


def check_promtool(repo: Path) -> list[str]:
    """promtool check rules and test rules."""
    rules = sorted(repo.glob(RULES_GLOB))
    if not rules:
        return [f"{RULES_GLOB}: no rule files"]
    problems = _tool(["promtool", "check", "rules", *map(str, rules)], repo, "promtool check rules")
    for test in sorted(repo.glob(RULE_TESTS_GLOB)):
        problems += _tool(
            ["promtool", "test", "rules", str(test)], repo, f"{test.relative_to(repo)}"
        )
    return problems


def check_alertmanager(repo: Path) -> list[str]:
    """amtool check-config, every receiver defined and reachable, and the routing contract."""
    problems: list[str] = []
    for name in ALERTMANAGER_CONFIGS:
        path = repo / name
        if not path.exists():
            problems.append(f"{name}: missing")
            continue
        problems += _tool(["amtool", "check-config", str(path)], repo, f"{name}: amtool")
        problems += _receivers(path, repo)
    problems += _routes(repo / ALERTMANAGER_CONFIGS[0], repo)
    return problems


def _receivers(path: Path, repo: Path) -> list[str]:
    config = yaml.safe_load(path.read_text())
    defined = {r["name"] for r in config.get("receivers", [])}
    problems = [
        f"{path.relative_to(repo)}: route {where}: receiver {name!r} is not defined"
        for where, name in _route_receivers(config.get("route", {}), "route")
        if name not in defined
    ]
    try:
        from obsctl.relay.config import load

        targets = set(load(repo / RELAY_CONFIG, _environ()).targets)
    except ConfigError:
        return problems  # reported by check_relay_config
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            target = str(hook.get("url", "")).rstrip("/").rsplit("/dingtalk/", 1)
            if len(target) == 2 and target[1] not in targets:
                known = ", ".join(sorted(targets))
                problems.append(
                    f"{path.relative_to(repo)}: receiver {receiver['name']!r}: relay target "
                    f"{target[1]!r} is not in {RELAY_CONFIG} (targets: {known})"
                )
    return problems


def _route_receivers(route: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    if "receiver" in route:
        yield where, route["receiver"]
    for index, child in enumerate(route.get("routes", [])):
        yield from _route_receivers(child, f"{where}.routes[{index}]")


def _routes(path: Path, repo: Path) -> list[str]:
    """Each alert of the mixin reaches the receiver its severity and team promise."""
    try:
        config = _mixin(repo)
    except ConfigError:
        return []
    problems = []
    for alert, policy in config.alerts.items():
        expected = config.receiver_name(alert)
        labels = [f"alertname={alert.value}", f"severity={policy.severity.value}",
                  f"team={policy.team}"]  # fmt: skip
        result = _run(
            ["amtool", "config", "routes", "test", f"--config.file={path}",
             f"--verify.receivers={expected}", *labels],
            repo,
        )  # fmt: skip
        if result is not None and result.returncode != 0:
            got = result.stdout.strip().splitlines()[0] if result.stdout.strip() else "?"
            problems.append(
                f"{path.relative_to(repo)}: {alert.value} ({policy.severity.value}, team "
                f"{policy.team}) routes to {got!r}, expected {expected!r}"
            )
    return problems


def check_dashboards(repo: Path) -> list[str]:
    """Dashboard conventions and the Grafana schema."""
    from obsctl.mixin.dashboards import build_dashboards
    from obsctl.mixin.dashboards.lint import lint, recorded_metrics, schema_problems

    try:
        config = _mixin(repo)
    except ConfigError:
        return []
    boards = build_dashboards(config)
    problems = lint(boards, config, recorded_metrics(repo / ALERT_RULES_DIR))
    for board in boards:
        problems += [f"{board.path}: schema: {p}" for p in schema_problems(board.json)]
    return problems


def check_compose(repo: Path) -> list[str]:
    """compose.yaml resolves with docker-compose (when installed)."""
    compose = repo / "compose.yaml"
    if not compose.exists():
        return ["compose.yaml: missing"]
    env = repo / "exporters" / "compose" / "example.env"
    if shutil.which("docker-compose") is None:
        try:
            yaml.safe_load(compose.read_text())
        except yaml.YAMLError as exc:
            return [f"compose.yaml: not valid YAML: {exc}"]
        return []
    command = ["docker-compose", "-f", str(compose), "--env-file", str(env), "config", "-q"]
    return _tool(command, repo, "compose.yaml: docker-compose config")


CHECKS = [
    Check("exporter config", check_exporter_config),
    Check("relay config", check_relay_config),
    Check("drill targets", check_drill_targets),
    Check("generated files", check_mixin_and_generated),
    Check("rule lint and runbooks", check_rule_lint),
    Check("promtool", check_promtool),
    Check("alertmanager", check_alertmanager),
    Check("dashboards", check_dashboards),
    Check("compose", check_compose),
]


def run_all(repo: Path) -> dict[str, list[str]]:
    """Every check's problems, by check name."""
    results = {}
    for check in CHECKS:
        try:
            results[check.name] = check.run(repo)
        except Exception as exc:  # one broken check must not hide the others' findings
            results[check.name] = [f"{check.name}: could not run: {type(exc).__name__}: {exc}"]
    return results


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str] | None:
    if shutil.which(command[0]) is None:
        return None
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def _tool(command: list[str], cwd: Path, where: str) -> list[str]:
    result = _run(command, cwd)
    if result is None:
        return [f"{where}: {command[0]} is not installed (run `obsctl stack install`)"]
    if result.returncode == 0:
        return []
    output = (result.stdout + result.stderr).strip().splitlines()
    lines = [line.strip() for line in output if line.strip() and "SUCCESS" not in line]
    return [f"{where}: {line}" for line in lines[-8:]] or [f"{where}: exit {result.returncode}"]
