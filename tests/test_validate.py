"""`obsctl validate` passes on the repo and names each kind of breakage clearly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COPIED = [
    "alert-rules", "alertmanager", "dashboards", "runbooks", "drills", "exporters", "systemd",
    "prometheus",
    "compose.yaml", "obsctl.yaml", "obsctl/stack/demo_platform/package.json",
]  # fmt: skip

pytestmark = pytest.mark.needs_tools("promtool", "amtool")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the files validate looks at, safe to break."""
    for relative in COPIED:
        source, target = REPO / relative, tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    return tmp_path


def validate(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obsctl", "validate", "--project", str(repo)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_repository_is_valid(checkout: Path) -> None:
    result = validate(checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    checks = (
        "promtool",
        "alertmanager",
        "dashboards",
        "generated files",
        "compose",
        "drill targets",
    )
    for check in checks:
        assert f"ok  {check}" in result.stderr


def test_a_broken_rule_is_reported_with_its_file(checkout: Path) -> None:
    rules = checkout / "alert-rules" / "obsctl.rules.yml"
    rules.write_text(rules.read_text().replace("vector(1)", "vector(1", 1))
    result = validate(checkout)
    assert result.returncode == 1
    assert "alert-rules/obsctl.rules.yml: stale" in result.stdout
    assert "promtool check rules:" in result.stdout
    assert '"Watchdog": could not parse expression' in result.stdout


def test_a_stale_generated_file_is_reported(checkout: Path) -> None:
    dashboard = checkout / "dashboards" / "queues.json"
    dashboard.write_text(dashboard.read_text().replace('"Queues', '"Queue', 1))
    result = validate(checkout)
    assert result.returncode == 1
    assert "dashboards/queues.json: stale: run `obsctl generate` and commit it" in result.stdout


def test_a_missing_runbook_is_reported(checkout: Path) -> None:
    (checkout / "runbooks" / "QueueStalled.md").unlink()
    result = validate(checkout)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if "QueueStalled" in line]
    # Runbooks are generated: the freshness check misses it, and the rule lint names the rule.
    assert "runbooks/QueueStalled.md: stale: run `obsctl generate` and commit it" in lines
    assert any(
        line.startswith("alert-rules/obsctl.rules.yml:") and "runbook" in line for line in lines
    )


def test_a_bad_alertmanager_route_is_reported(checkout: Path) -> None:
    config = checkout / "alertmanager" / "alertmanager.yml"
    config.write_text(
        config.read_text().replace("receiver: critical-ai", "receiver: critical-a1", 1)
    )
    result = validate(checkout)
    assert result.returncode == 1
    assert "receiver 'critical-a1' is not defined" in result.stdout
    assert "QueueStalled (critical, team ai) routes to" in result.stdout
    assert "alertmanager/alertmanager.yml: stale" in result.stdout


def test_relay_alerts_without_a_way_around_the_relay_fail_validate_not_generate(
    checkout: Path,
) -> None:
    config = checkout / "obsctl.yaml"
    raw = yaml.safe_load(config.read_text())
    del raw["routing"]["email"]
    raw["routing"]["receivers"]["critical"].pop("email")
    config.write_text(yaml.safe_dump(raw, allow_unicode=True))
    generated = subprocess.run(
        [sys.executable, "-m", "obsctl", "generate", "--project", str(checkout)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "warning: obsctl.yaml: routing.email: not set: RelayDown" in generated.stderr
    result = validate(checkout)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "obsctl.yaml: routing.email: not set: RelayDown, RelayDeliveriesFailing,"
        " RelayBacklogStale would reach people only through the relay they are about, so a"
        " broken relay pages nobody; set routing.email (Alertmanager's SMTP server) and"
        " oncall.email"
    ]
    assert "FAIL  project config" in result.stderr and "ok  alertmanager" in result.stderr


def test_a_broken_drill_target_is_reported_with_its_key(checkout: Path) -> None:
    target = checkout / "drills" / "targets" / "staging.example.yaml"
    target.write_text(target.read_text().replace("  api-latency:", "  api-slowness:", 1))
    result = validate(checkout)
    assert result.returncode == 1
    assert (
        "drills/targets/staging.example.yaml: faults: Value error, unknown scenario api-slowness"
        in (result.stdout)
    )


def test_a_missing_tool_fails_its_check_unless_allowed_and_then_says_not_run(
    checkout: Path,
) -> None:
    command = [sys.executable, "-m", "obsctl", "validate", "--project", str(checkout)]
    bare = {"PATH": "/nonexistent", "HOME": str(checkout)}

    strict = subprocess.run(command, capture_output=True, text=True, timeout=300, env=bare)
    lenient = subprocess.run(
        [*command, "--allow-missing-tools"], capture_output=True, text=True, timeout=300, env=bare
    )

    assert strict.returncode == 1
    for tool, package in (("promtool", "prometheus"), ("amtool", "prometheus-alertmanager"),
                          ("docker-compose", "docker-compose")):  # fmt: skip
        assert f"{tool} is not installed (Debian: apt-get install {package}" in strict.stdout
    assert "FAIL  promtool" in strict.stderr and "FAIL  compose" in strict.stderr
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "skip  promtool: not run: promtool is not installed" in lenient.stderr
    assert "skip  alertmanager: not run: amtool is not installed" in lenient.stderr
    assert "ok  generated files" in lenient.stderr


RULES = """groups:
- name: t
  rules:
  - alert: TargetDown
    expr: up == 0
    for: 1m
    labels: {severity: warning}
"""
RULE_TEST = """rule_files: [../t.rules.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series: [{series: 'up{job="a"}', values: '0x5'}]
  alert_rule_test:
  - {eval_time: 3m, alertname: TargetDown, exp_alerts: [{exp_labels: {job: a, severity: warning}}]}
"""


def test_promtool_rule_tests_rerun_only_when_an_input_changes(
    checkout: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from obsctl.project import Project
    from obsctl.validate import Validation, check_promtool

    rules_dir = checkout / "alert-rules"
    shutil.rmtree(rules_dir)
    (rules_dir / "tests").mkdir(parents=True)
    (rules_dir / "t.rules.yml").write_text(RULES)
    (rules_dir / "tests" / "t.test.yml").write_text(RULE_TEST)
    tools = tmp_path_factory.mktemp("tools")
    calls = tools / "calls"
    wrapper = tools / "promtool"  # the real promtool, counting its runs
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {shutil.which("promtool")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setenv("OBSCTL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))

    def rule_test_runs() -> int:
        return sum("test rules" in line for line in calls.read_text().splitlines())

    def check() -> list[str]:
        return check_promtool(Validation(Project(checkout)))

    assert check() == [] and rule_test_runs() == 1
    assert check() == [] and rule_test_runs() == 1, "a pass with the same inputs is not rerun"
    (rules_dir / "t.rules.yml").write_text(RULES.replace("up == 0", "up == 2"))
    failed = check()
    assert any("t.test.yml" in line for line in failed), failed
    assert rule_test_runs() == 2, "a changed rule file is tested again"
    assert check() == failed and rule_test_runs() == 3, "a failure is never remembered"
