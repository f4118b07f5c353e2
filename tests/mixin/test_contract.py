"""The API metric contract is exactly what the generated rules and dashboards read from the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from obsctl.metric_names import ALERT_PATH_FAMILIES, HOST_FAMILIES, exposed
from obsctl.mixin import rules
from obsctl.mixin.config import AlertName, MixinConfig, Thresholds, load
from obsctl.mixin.contract import (
    CONTRACT,
    LATENCY_THRESHOLDS,
    MetricType,
    required_buckets,
    sample_names,
)
from obsctl.mixin.dashboards import build_dashboards
from obsctl.mixin.dashboards.lint import metric_names, panels

# Series Prometheus makes itself (up, ALERTS) and labels it adds or histograms carry.
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "obsctl.yaml"
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})
# What obsctl's own servers, Prometheus, Alertmanager and node_exporter expose: not the API's.
OBSCTL_AND_ALERT_PATH = exposed() | exposed(ALERT_PATH_FAMILIES) | exposed(HOST_FAMILIES)
PROMETHEUS_LABELS = frozenset({"job", "instance", "le"})
_GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"(?<!\{)\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)")


@dataclass(frozen=True)
class Reader:
    """One generated expression: who it belongs to, its PromQL and its legend."""

    user: str  # an alert name or "dashboard:<key>"
    expr: str
    legend: str = ""
    label: str = ""  # the label a label_values() variable lists


@pytest.fixture(scope="module")
def config() -> MixinConfig:
    return load(DEMO_CONFIG)


def _readers(config: MixinConfig) -> Iterator[Reader]:
    for alert in rules.alerts(config):
        yield Reader(alert.name.value, alert.expr)
    for group in rules.groups(config):
        for rule in group.rules:
            if isinstance(rule, rules.Recording):
                yield Reader(f"record:{rule.record}", rule.expr)
    for board in build_dashboards(config):
        user = f"dashboard:{board.key}"
        for panel in panels(board.json):
            for target in panel.get("targets", []):
                yield Reader(user, target.get("expr", ""), target.get("legendFormat", ""))
        for variable in board.json.get("templating", {}).get("list", []):
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query)
            found = _LABEL_VALUES.match(text)
            if variable.get("type") == "query" and found:
                yield Reader(user, found.group("selector"), label=found.group("label"))


def _family(sample: str) -> str:
    for spec in CONTRACT:
        if sample in spec.samples():
            return spec.name.value
    return sample


def _api_usage(config: MixinConfig) -> dict[str, set[str]]:
    """API family -> the alerts and dashboards that read it, directly or via recording rules."""
    readers = list(_readers(config))
    recorded = {r.user.removeprefix("record:"): r.expr for r in readers if r.user[:7] == "record:"}

    def resolve(expr: str) -> set[str]:
        names: set[str] = set()
        for name in metric_names(expr):
            names |= resolve(recorded[name]) if name in recorded else {name}
        return names

    usage: dict[str, set[str]] = {}
    for reader in readers:
        if reader.user.startswith("record:"):
            continue
        for name in resolve(reader.expr) - OBSCTL_AND_ALERT_PATH - PROMETHEUS_SERIES:
            usage.setdefault(_family(name), set()).add(reader.user)
    return usage


def test_the_contract_lists_every_api_metric_the_rules_and_dashboards_read(
    config: MixinConfig,
) -> None:
    usage = _api_usage(config)
    declared = {
        spec.name.value: {
            *(a.value for a in spec.alerts),
            *(f"dashboard:{d}" for d in spec.dashboards),
        }
        for spec in CONTRACT
    }
    assert usage == declared


def _labels(reader: Reader) -> set[str]:
    found = {label.strip() for g in _GROUPING.findall(reader.expr) for label in g.split(",")}
    for inner in _MATCHERS.findall(reader.expr):
        found |= set(_MATCHER_LABEL.findall(inner))
    found |= set(_LEGEND.findall(reader.legend))
    if reader.label:
        found.add(reader.label)
    return found - {""}


def test_the_contract_asks_for_exactly_the_labels_the_readers_use(config: MixinConfig) -> None:
    """Labels grouped by, matched on or shown in a legend wherever a contract metric is read."""
    used: dict[str, set[str]] = {spec.name.value: set() for spec in CONTRACT}
    contract_samples = sample_names()
    for reader in _readers(config):
        read = metric_names(reader.expr)
        if read and read <= contract_samples:
            for name in read:
                used[_family(name)] |= _labels(reader) - PROMETHEUS_LABELS
    assert used == {spec.name.value: {label.value for label in spec.labels} for spec in CONTRACT}


def test_every_latency_threshold_is_a_config_threshold_its_alert_compares_with(
    config: MixinConfig,
) -> None:
    alerts = {a.name: a for a in rules.alerts(config)}
    for bucket in required_buckets(config):
        assert bucket.threshold in Thresholds.model_fields
        assert f"> {rules.number(bucket.seconds)}" in alerts[bucket.alert].expr
        spec = next(s for s in CONTRACT if s.name is bucket.metric)
        assert spec.type is MetricType.HISTOGRAM
    assert {t.alert for t in LATENCY_THRESHOLDS} == {AlertName.API_HIGH_LATENCY_P95}


def test_required_buckets_follow_the_config(config: MixinConfig) -> None:
    slower = config.thresholds.model_copy(update={"api_latency_p95_seconds": 0.35})
    changed = config.model_copy(update={"thresholds": slower})
    assert [b.seconds for b in required_buckets(config)] == [0.2]
    assert [b.seconds for b in required_buckets(changed)] == [0.35]
