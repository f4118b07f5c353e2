"""The generated alert rules: promtool accepts them, their unit tests pass, lint holds."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from obsctl.mixin.config import AlertName
from obsctl.mixin.generate import generate
from obsctl.mixin.lint import lint
from obsctl.mixin.rule_tests import SLO_TESTS_PATH, TESTS_PATH
from obsctl.mixin.rules import RULES_PATH, alerts, render_rules

from conftest import demo_config

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs_tools("promtool")


def _promtool(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["promtool", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _mutated_suite(tmp: Path) -> Path:
    """A copy of the Watchdog test whose expected labels are wrong."""
    generate(demo_config(), tmp)
    suite = yaml.safe_load((tmp / TESTS_PATH).read_text())
    group = next(g for g in suite["tests"] if g["name"] == "Watchdog always fires")
    group["alert_rule_test"][0]["exp_alerts"][0]["exp_labels"]["team"] = "nobody"
    suite["tests"] = [group]
    path = tmp / "alert-rules/tests/wrong.test.yml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _moved_threshold(tmp: Path) -> Path:
    """Rules and tests generated with other thresholds, to show the tests follow the config."""
    config = demo_config()
    thresholds = config.thresholds.model_copy(
        update={"api_error_ratio": 0.05, "queue_backlog_jobs": 40, "cache_hit_ratio": 0.5}
    )
    generate(config.model_copy(update={"thresholds": thresholds}), tmp)
    return tmp / TESTS_PATH


@pytest.fixture(scope="module")
def promtool_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | int]]:
    """Every promtool run, started at once (each takes seconds); name -> (code, output)."""
    wrong = _mutated_suite(tmp_path_factory.mktemp("wrong"))
    moved = _moved_threshold(tmp_path_factory.mktemp("moved"))
    started = {
        "check": _promtool("check", "rules", REPO / RULES_PATH),
        "test": _promtool("test", "rules", REPO / TESTS_PATH),
        "slo": _promtool("test", "rules", REPO / SLO_TESTS_PATH),
        "wrong": _promtool("test", "rules", wrong),
        "moved": _promtool("test", "rules", moved),
    }
    results: dict[str, str | int] = {}
    for name, process in started.items():
        # A guard against a hung promtool only: five run at once, on two busy cores (about a
        # minute each when the machine is quiet, three times that when it is not).
        output, _ = process.communicate(timeout=600)
        results[name], results[f"{name}.out"] = process.returncode, output
    yield results


def test_promtool_check_rules_passes(promtool_runs: dict[str, str | int]) -> None:
    assert promtool_runs["check"] == 0, promtool_runs["check.out"]
    assert "SUCCESS" in str(promtool_runs["check.out"])


@pytest.mark.parametrize("suite", ["test", "slo"])
def test_promtool_unit_tests_pass(promtool_runs: dict[str, str | int], suite: str) -> None:
    assert promtool_runs[suite] == 0, promtool_runs[f"{suite}.out"]


def test_a_wrong_expectation_fails(promtool_runs: dict[str, str | int]) -> None:
    assert promtool_runs["wrong"] == 1
    assert 'team="nobody"' in str(promtool_runs["wrong.out"])


def test_tests_follow_the_thresholds(promtool_runs: dict[str, str | int]) -> None:
    assert promtool_runs["moved"] == 0, promtool_runs["moved.out"]


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    groups = []
    for path in (TESTS_PATH, SLO_TESTS_PATH):
        groups += yaml.safe_load((REPO / path).read_text())["tests"]
    cases = [
        (t["alertname"], bool(t["exp_alerts"]))
        for g in groups
        for t in g.get("alert_rule_test", [])
    ]
    for alert in AlertName:
        assert (alert.value, True) in cases, f"{alert} never fires in the tests"
        if alert is not AlertName.WATCHDOG:  # vector(1) cannot be quiet
            assert (alert.value, False) in cases, f"{alert} has no quiet case"
    recorded = {r["record"] for g in _rules()["groups"] for r in g["rules"] if "record" in r}
    checked = {
        p["expr"].removeprefix("round(").split(",")[0]
        for g in groups
        for p in g.get("promql_expr_test", [])
    }
    assert recorded - checked == set(), "recording rules without a promql_expr_test"


def test_every_alert_name_is_generated() -> None:
    assert {a.name for a in alerts(demo_config())} == set(AlertName)


def test_exporter_alerts_carry_source_and_exporter_down_does_not() -> None:
    by_name: dict[str, list[dict[str, str]]] = {}
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                by_name.setdefault(rule["alert"], []).append(rule["labels"])
    assert all("source" not in labels for labels in by_name["ExporterDown"])
    for name in ("QueueBacklogHigh", "QueueStalled", "DependencyDown", "ProviderDown",
                 "MySQLProbeSlow", "TaskPassRateLow"):  # fmt: skip
        assert all(labels.get("source") == "exporter" for labels in by_name[name]), name
    for name in ("MySQLProbeSlow", "DBPoolSaturated"):
        assert all(labels["dependency"] == "mysql" for labels in by_name[name])
    # The keyspace hit ratio is server-wide (BullMQ's polling included): a figure, not a page.
    assert "CacheHitRatioLow" not in by_name
    assert "drill" not in yaml.safe_dump(_rules())


def test_lint_is_clean_on_the_generated_rules() -> None:
    assert lint(_rules(), demo_config(), REPO) == []


def test_lint_catches_seeded_violations(tmp_path: Path) -> None:
    rules = copy.deepcopy(_rules())
    first = rules["groups"][0]["rules"][0]
    first["record"] = "http_requests_rate"
    alert = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "ApiDown")
    alert["alert"] = "api_down"
    alert["labels"].update(severity="page", team="nobody")
    del alert["annotations"]["runbook"]
    del alert["annotations"]["dashboard_url"]
    other = next(
        r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "ApiHighErrorRate"
    )
    other["annotations"]["dashboard_url"] = "http://example.com/d/nope"
    problems = "\n".join(lint(rules, demo_config(), REPO))
    for expected in (
        "http_requests_rate: recording rule names are level:metric:operations",
        "api_down: alert names are CamelCase",
        "severity 'page' is not one of",
        "team 'nobody' is not in teams",
        "api_down: annotation runbook is missing",
        "api_down: annotation dashboard_url is missing (links.grafana_url is set)",
        "dashboard_url http://example.com/d/nope is no dashboard",
        "runbook runbooks/api_down.md does not exist",
    ):
        assert expected in problems
    assert "runbooks/ApiHighErrorRate.md" in "\n".join(lint(_rules(), demo_config(), tmp_path))


def _rules() -> dict[str, object]:
    rules: dict[str, object] = yaml.safe_load(render_rules(demo_config())[RULES_PATH])
    return rules
