"""`obsctl validate`: every config and generated file of a project checked, one line per problem.

A check never passes because its tool is missing: without promtool, amtool or docker-compose
the check fails naming the tool and the Debian package that brings it, unless the caller
allows missing tools, in which case it is listed as not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from obsctl.configfile import ConfigError
from obsctl.passed_cache import passed_before, remember_pass, run_key
from obsctl.project import Project

# Only against a hung tool: the rule tests take ~40 s here, and two to three times that on a
# machine also busy with a test suite.
TOOL_TIMEOUT = 600

# The tools validate runs, and the Debian package each comes from.
TOOL_PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "docker-compose": "docker-compose",
    "systemd-analyze": "systemd",
}
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
    "PROVIDER_ALPHA_KEY": "placeholder",
    "PROVIDER_BETA_KEY": "placeholder",
    "OBSCTL_RELAY_TOKEN": "placeholder",
    "OBSCTL_RELAY_CLAIM_KEY": "placeholder-claim-key",
    "OBSCTL_RELAY_SMS_SECRET_ID": "placeholder",
    "OBSCTL_RELAY_SMS_SECRET_KEY": "placeholder",
    "OBSCTL_RELAY_LINK_PREFIXES": "http://127.0.0.1:9090 http://127.0.0.1:9093",
    # The shipped spool path is the deployment's; here only its shape is checked.
    "OBSCTL_RELAY_SPOOL_DIR": tempfile.gettempdir(),
    "OBSCTL_DEADMAN_TOKEN": "placeholder",
    "OBSCTL_DEADMAN_STATE_DIR": tempfile.gettempdir(),
}
ROBOT_PLACEHOLDERS = {"URL": "https://oapi.dingtalk.com/robot/send?access_token=x",
                      "SECRET": "SECplaceholder"}  # fmt: skip


class ToolMissing(Exception):
    """A check's tool is not on PATH."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        package = TOOL_PACKAGES.get(tool, tool)
        super().__init__(
            f"{tool} is not installed (Debian: apt-get install {package}; or `obsctl stack "
            "install` in an obsctl checkout)"
        )


@dataclass
class Validation:
    """One run over one project: its problems by check, and the checks that could not run."""

    project: Project
    allow_missing_tools: bool = False
    results: dict[str, list[str]] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)

    def tool(self, command: list[str], where: str) -> list[str]:
        """Run a tool; its complaints as problems (ToolMissing if it is not installed)."""
        return self.problems(self.run(command), where)

    def run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a command in the project; ToolMissing if its program is not on PATH."""
        return self.run_many([command])[0]

    def run_many(self, commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
        """Run commands side by side (promtool uses one core per test file); results in order."""
        for command in commands:
            if shutil.which(command[0]) is None:
                raise ToolMissing(command[0])
        with ThreadPoolExecutor(
            max_workers=max(1, min(len(commands), os.cpu_count() or 1))
        ) as pool:
            return list(pool.map(self._run_one, commands))

    def _run_one(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=self.project.root, capture_output=True, text=True, timeout=TOOL_TIMEOUT
        )

    def problems(self, result: subprocess.CompletedProcess[str], where: str) -> list[str]:
        """A finished tool's complaints as problem lines, at most its last eight."""
        if result.returncode == 0:
            return []
        output = (result.stdout + result.stderr).strip().splitlines()
        lines = [line.strip() for line in output if line.strip() and "SUCCESS" not in line]
        return [f"{where}: {line}" for line in lines[-8:]] or [f"{where}: exit {result.returncode}"]

    def where(self, path: Path) -> str:
        """A path as the project names it."""
        return self.project.relative(path)


@dataclass(frozen=True)
class Check:
    """One named check: returns problem lines (empty when it passes)."""

    name: str
    run: Callable[[Validation], list[str]]


def _mixin(v: Validation) -> Any:
    from obsctl.mixin.config import load

    return load(v.project.config_file)


def _environ(v: Validation) -> dict[str, str]:
    """Stand-ins (a robot URL and secret per relay target of the routing), then the real env."""
    from obsctl.relay.config import target_env_prefix

    try:
        targets = _mixin(v).relay_targets()
    except ConfigError:
        targets = []
    robots = {
        f"{target_env_prefix(target)}_{key}": value
        for target in targets
        for key, value in ROBOT_PLACEHOLDERS.items()
    }
    return {**RUNTIME_PLACEHOLDERS, **robots, **os.environ}


def _config_errors(exc: ConfigError) -> list[str]:
    return [f"{exc.source}: {problem}" for problem in exc.problems]


def check_project_config(v: Validation) -> list[str]:
    """obsctl.yaml itself validates, and every alert has a way to people.

    The alerts about the relay need routing.email: through the relay alone, a broken relay
    would page nobody. The generated files are right without it, so `obsctl generate` only
    warns; this check fails before the project is deployed.
    """
    try:
        config = _mixin(v)
    except ConfigError as exc:
        return _config_errors(exc)
    where = v.where(v.project.config_file)
    return [f"{where}: {gap}" for gap in config.alert_path_gaps()]


def check_exporter_config(v: Validation) -> list[str]:
    """The exporter's config validates and calls results stale when the alerts do."""
    from obsctl.exporter.config import load

    path = v.project.exporter_config
    try:
        config = load(path, _environ(v))
        mixin = _mixin(v)
    except ConfigError as exc:
        return _config_errors(exc)
    stale, paged = config.health.stale_after_intervals, mixin.thresholds.exporter_stale_intervals
    if stale != paged:
        return [
            f"{v.where(path)}: health.stale_after_intervals is {stale}, but ExporterDown pages"
            f" at {paged} intervals (obsctl.yaml: thresholds.exporter_stale_intervals)"
        ]
    return []


class _AnyVariable(dict[str, str]):
    """An environment in which every ${VAR} is set: drill targets name their own variables."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return "placeholder"


def check_drill_targets(v: Validation) -> list[str]:
    """Every drill target config under drills/targets/ validates (secrets are stood in for)."""
    from obsctl.drills.remote import load_target

    problems = []
    for path in sorted(v.project.drill_targets.glob("*.yaml")):
        try:
            load_target(path, _AnyVariable())
        except ConfigError as exc:
            problems += _config_errors(exc)
    return problems


def check_relay_config(v: Validation) -> list[str]:
    """The relay's config validates."""
    from obsctl.relay.config import load

    try:
        load(v.project.relay_config, _environ(v))
    except ConfigError as exc:
        return _config_errors(exc)
    return []


def check_deadman_config(v: Validation) -> list[str]:
    """The dead man's switch's config validates, when the project has one."""
    from obsctl.deadman.config import load

    if not v.project.deadman_config.exists():
        return []
    try:
        load(v.project.deadman_config, _environ(v))
    except ConfigError as exc:
        return _config_errors(exc)
    return []


def check_generated(v: Validation) -> list[str]:
    """Every generated file is what obsctl.yaml generates."""
    from obsctl.mixin.generate import stale

    try:
        config = _mixin(v)
    except ConfigError:
        return []  # reported by check_project_config
    return [
        f"{path}: stale: run `obsctl generate` and commit it"
        for path in stale(config, v.project.root)
    ]


def _rule_files(v: Validation) -> list[Path]:
    return sorted(v.project.alert_rules.glob("*.rules.yml"))


def check_rule_lint(v: Validation) -> list[str]:
    """Alert naming, severities, teams, annotations, links, runbooks."""
    from obsctl.mixin.lint import lint

    try:
        config = _mixin(v)
    except ConfigError:
        return []
    problems = []
    for path in _rule_files(v):
        try:
            rules = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            problems.append(f"{v.where(path)}: not valid YAML: {exc}")
            continue
        problems += [f"{v.where(path)}: {p}" for p in lint(rules, config, v.project.root)]
    return problems


def check_promtool(v: Validation) -> list[str]:
    """promtool check rules and test rules."""
    rules = _rule_files(v)
    if not rules:
        return [f"{v.where(v.project.alert_rules)}: no *.rules.yml files"]
    problems = v.tool(["promtool", "check", "rules", *map(str, rules)], "promtool check rules")
    promtool = shutil.which("promtool")
    if promtool is None:
        raise ToolMissing("promtool")
    tests = sorted((v.project.alert_rules / "tests").glob("*.test.yml"))
    keys = {
        test: run_key(
            promtool, ["test", "rules", test.name], _promtool_test_inputs(test), test.parent
        )
        for test in tests
    }
    to_run = [test for test in tests if not passed_before(keys[test])]
    results = v.run_many([["promtool", "test", "rules", str(test)] for test in to_run])
    for test, result in zip(to_run, results, strict=True):
        if result.returncode == 0:
            remember_pass(keys[test])
        problems += v.problems(result, v.where(test))
    return problems


def _promtool_test_inputs(test: Path) -> list[Path]:
    """A promtool test file and the rule files it names (relative to it, globs allowed)."""
    try:
        spec = yaml.safe_load(test.read_text())
    except (OSError, yaml.YAMLError):
        return [test]
    names = spec.get("rule_files", []) if isinstance(spec, dict) else []
    found = [test]
    for name in names if isinstance(names, list) else []:
        matches = sorted(test.parent.glob(str(name))) if isinstance(name, str) else []
        # A rule file that does not exist makes the key unreadable, so promtool runs and says so.
        found += matches or [test.parent / str(name)]
    return found


def check_prometheus_config(v: Validation) -> list[str]:
    """promtool check config on the project's prometheus.yml, when it has one."""
    path = v.project.prometheus_dir / "prometheus.yml"
    if not path.exists():
        return []
    return v.tool(["promtool", "check", "config", str(path)], f"{v.where(path)}: promtool")


def _alertmanager_configs(v: Validation) -> list[Path]:
    return sorted(v.project.alertmanager_dir.glob("alertmanager*.yml"))


def check_alertmanager(v: Validation) -> list[str]:
    """amtool check-config, every receiver defined and reachable, and the routing contract."""
    configs = _alertmanager_configs(v)
    if not configs:
        return [f"{v.where(v.project.alertmanager_dir)}: no alertmanager*.yml"]
    problems: list[str] = []
    for path in configs:
        problems += v.tool(["amtool", "check-config", str(path)], f"{v.where(path)}: amtool")
        problems += _receivers(v, path)
    main = v.project.alertmanager_dir / "alertmanager.yml"
    problems += _routes(v, main if main.exists() else configs[0])
    return problems


def _receivers(v: Validation, path: Path) -> list[str]:
    config = yaml.safe_load(path.read_text())
    defined = {r["name"] for r in config.get("receivers", [])}
    problems = [
        f"{v.where(path)}: route {where}: receiver {name!r} is not defined"
        for where, name in _route_receivers(config.get("route", {}), "route")
        if name not in defined
    ]
    try:
        from obsctl.relay.config import load

        targets = set(load(v.project.relay_config, _environ(v)).targets)
    except ConfigError:
        return problems  # reported by check_relay_config
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            target = str(hook.get("url", "")).rstrip("/").rsplit("/dingtalk/", 1)
            if len(target) == 2 and target[1] not in targets:
                known = ", ".join(sorted(targets))
                problems.append(
                    f"{v.where(path)}: receiver {receiver['name']!r}: relay target "
                    f"{target[1]!r} is not in {v.where(v.project.relay_config)} (targets: {known})"
                )
    return problems


def _route_receivers(route: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    if "receiver" in route:
        yield where, route["receiver"]
    for index, child in enumerate(route.get("routes", [])):
        yield from _route_receivers(child, f"{where}.routes[{index}]")


def _routes(v: Validation, path: Path) -> list[str]:
    """Each alert of obsctl.yaml reaches the receiver its severity and team promise."""
    try:
        config = _mixin(v)
    except ConfigError:
        return []
    problems = []
    for alert in config.generated_alerts():
        policy = config.policy(alert)
        expected = config.receiver_name(alert)
        labels = [f"alertname={alert.value}", f"severity={policy.severity.value}",
                  f"team={policy.team}"]  # fmt: skip
        result = v.run(
            ["amtool", "config", "routes", "test", f"--config.file={path}",
             f"--verify.receivers={expected}", *labels],
        )  # fmt: skip
        if result.returncode != 0:
            got = result.stdout.strip().splitlines()[0] if result.stdout.strip() else "?"
            problems.append(
                f"{v.where(path)}: {alert.value} ({policy.severity.value}, team "
                f"{policy.team}) routes to {got!r}, expected {expected!r}"
            )
    return problems


def check_dashboards(v: Validation) -> list[str]:
    """Dashboard conventions and the Grafana schema."""
    from obsctl.mixin.dashboards import build_dashboards
    from obsctl.mixin.dashboards.lint import lint, recorded_metrics, schema_problems

    try:
        config = _mixin(v)
    except ConfigError:
        return []
    boards = build_dashboards(config)
    problems = lint(boards, config, recorded_metrics(v.project.alert_rules))
    for board in boards:
        problems += [f"{board.path}: schema: {p}" for p in schema_problems(board.json)]
    return problems


def check_systemd(v: Validation) -> list[str]:
    """Each generated unit passes `systemd-analyze verify` (with this machine's obsctl)."""
    units = sorted(v.project.systemd.glob("*.service"))
    if not units:
        return []
    here = shutil.which("obsctl") or str(Path(sys.executable).with_name("obsctl"))
    problems = []
    with tempfile.TemporaryDirectory(prefix="obsctl-units-") as scratch:
        for unit in units:
            # ExecStart names the deployment's obsctl, which need not exist on this machine.
            text = re.sub(r"^ExecStart=\S+", f"ExecStart={here}", unit.read_text(), flags=re.M)
            copy = Path(scratch) / unit.name
            copy.write_text(text)
            # It exits 0 on directives it ignores ("Failed to parse ..."): every line counts.
            result = v.run(["systemd-analyze", "verify", str(copy)])
            lines = (result.stdout + result.stderr).strip().splitlines()
            problems += [
                f"{v.where(unit)}: {line.replace(str(copy), unit.name).strip()}"
                for line in lines
                if line.strip()
            ]
            if result.returncode and not lines:
                problems.append(f"{v.where(unit)}: systemd-analyze verify exit {result.returncode}")
    return problems


def check_compose(v: Validation) -> list[str]:
    """compose.yaml, when the project has one, resolves with docker-compose."""
    compose = v.project.root / "compose.yaml"
    if not compose.exists():
        return []
    env = v.project.root / "exporters" / "compose" / "example.env"
    command = ["docker-compose", "-f", str(compose)]
    if env.exists():
        command += ["--env-file", str(env)]
    return v.tool([*command, "config", "-q"], "compose.yaml: docker-compose config")


CHECKS = [
    Check("project config", check_project_config),
    Check("exporter config", check_exporter_config),
    Check("relay config", check_relay_config),
    Check("deadman config", check_deadman_config),
    Check("drill targets", check_drill_targets),
    Check("generated files", check_generated),
    Check("rule lint and runbooks", check_rule_lint),
    Check("promtool", check_promtool),
    Check("prometheus config", check_prometheus_config),
    Check("alertmanager", check_alertmanager),
    Check("dashboards", check_dashboards),
    Check("systemd units", check_systemd),
    Check("compose", check_compose),
]


def check_live_database(v: Validation) -> list[str]:
    """`obsctl check db` against the exporter's real database: can the business reader run?"""
    from obsctl.checks.db import CannotCheck, check_database
    from obsctl.exporter.config import load
    from obsctl.exporter.probes.business_config import BusinessConfig

    path = v.project.exporter_config
    try:
        config = load(path, os.environ)  # the real secrets: this check connects
    except ConfigError as exc:
        return _config_errors(exc)
    if config.mysql is None:
        return [f"{v.where(path)}: no mysql section, so there is no database to check"]
    try:
        check = check_database(config.mysql.dsn, config.business or BusinessConfig())
    except CannotCheck as exc:
        return [f"{v.where(path)}: mysql.dsn: {exc}"]
    return [
        f"{v.where(path)}: database {check.address.database}: {finding.message}"
        + (f" (fix: {finding.fix})" if finding.fix else "")
        for finding in check.report.problems
    ]


# Checks that reach the platform's servers (`validate --live`), after the offline ones.
LIVE_CHECKS = [
    Check("live: database (check db)", check_live_database),
]


def run_all(project: Project, allow_missing_tools: bool = False, live: bool = False) -> Validation:
    """Run every check; the returned Validation holds the problems and what could not run."""
    validation = Validation(project, allow_missing_tools)
    for check in CHECKS + (LIVE_CHECKS if live else []):
        try:
            validation.results[check.name] = check.run(validation)
        except ToolMissing as exc:
            if allow_missing_tools:
                validation.not_run[check.name] = str(exc)
                validation.results[check.name] = []
            else:
                validation.results[check.name] = [f"{check.name}: {exc}"]
        except Exception as exc:  # one broken check must not hide the others' findings
            validation.results[check.name] = [
                f"{check.name}: could not run: {type(exc).__name__}: {exc}"
            ]
    return validation
