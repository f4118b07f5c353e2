"""The alert path watching itself: its alerts, their config, their routing around the relay."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.configfile import ConfigError
from obsctl.deadman.metrics import DeadmanMetrics
from obsctl.metric_names import DeadmanMetric, HttpMetric, RelayMetric, exposed
from obsctl.mixin import alertmanager
from obsctl.mixin.config import (
    ABOUT_THE_RELAY,
    JOB_NAMES,
    RELAY_LONGEST_NORMAL_WAIT,
    RELAY_PACING_SECONDS,
    RELAY_RETRY_CAP_SECONDS,
    RELAY_THROTTLE_SECONDS,
    AlertName,
    MixinConfig,
    Selectors,
    load,
)
from obsctl.mixin.generate import render
from obsctl.mixin.prometheus_config import CONFIG_PATH as PROMETHEUS_PATH
from obsctl.mixin.rules import RULES_PATH, alerts
from obsctl.relay.config import DeliveryConfig
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.outbox import Health
from obsctl.relay.pacing import MARGIN_SECONDS, WINDOW_SECONDS

from conftest import DEMO_PROJECT, demo_config

ALERT_PATH = {
    AlertName.PROMETHEUS_RULE_FAILURES,
    AlertName.PROMETHEUS_NOT_CONNECTED_TO_ALERTMANAGERS,
    AlertName.PROMETHEUS_ERROR_SENDING_ALERTS,
    AlertName.ALERTMANAGER_FAILED_TO_SEND_ALERTS,
    AlertName.RELAY_DOWN,
    AlertName.RELAY_DELIVERIES_FAILING,
    AlertName.RELAY_BACKLOG_STALE,
    AlertName.DEADMAN_DOWN,
}


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((DEMO_PROJECT / "obsctl.yaml").read_text())
    return raw


def _load(tmp_path: Path, raw: dict[str, Any]) -> MixinConfig:
    path = tmp_path / "obsctl.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return load(path)


def _problems(tmp_path: Path, raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, raw)
    return "\n".join(caught.value.problems)


# --- the names: one place each ---


def _samples(registry: Any) -> set[str]:
    return {
        s.name for f in registry.collect() for s in f.samples if not s.name.endswith("_created")
    }


def test_the_relay_and_the_deadman_expose_exactly_the_declared_names() -> None:
    relay = RelayMetrics(["oncall"])
    relay.watch("oncall", lambda: 0, lambda: 0.0, lambda: Health.OK)
    # Per mail recipient, zero-filled by the mailer of a relay that mails.
    mailed = {RelayMetric.EMAILS}
    assert _samples(relay.registry) == exposed((RelayMetric, HttpMetric)) - mailed
    relay.emails.labels("critical-platform", "sent")
    assert _samples(relay.registry) == exposed((RelayMetric, HttpMetric))
    deadman = DeadmanMetrics(["alert-path"], ["dingtalk"])
    # Its gauges are per heartbeat and channel, set once a watcher is attached.
    lazy = {DeadmanMetric.HEARTBEAT_AGE, DeadmanMetric.HEARTBEAT_MISSING,
            DeadmanMetric.NOTICES_UNSENT}  # fmt: skip
    assert _samples(deadman.registry) == exposed((DeadmanMetric, HttpMetric)) - lazy


def test_selectors_default_to_the_job_names_and_a_project_renames_both_at_once(
    tmp_path: Path,
) -> None:
    defaults = Selectors()
    for job in ("prometheus", "alertmanager", "relay", "deadman"):
        assert getattr(defaults, job) == f'job="{JOB_NAMES[job]}"'
    raw = _raw()
    raw["selectors"]["relay"] = 'job="dingtalk-relay"'
    raw["selectors"]["alertmanager"] = 'job="am"'
    files = render(_load(tmp_path, raw))
    jobs = [job["job_name"] for job in yaml.safe_load(files[PROMETHEUS_PATH])["scrape_configs"]]
    assert "dingtalk-relay" in jobs and "am" in jobs and "obsctl-relay" not in jobs
    rules = files[RULES_PATH]
    assert 'up{job="dingtalk-relay"} == 0 or absent(up{job="dingtalk-relay"})' in rules
    assert 'alertmanager_notifications_failed_total{job="am"}' in rules


# --- which alerts a project gets, and what its config must say for them ---


def test_every_alert_path_alert_is_generated_for_the_demo() -> None:
    assert {rule.name for rule in alerts(demo_config())} >= ALERT_PATH


def test_without_a_deadman_there_is_no_deadman_down_nor_a_policy_for_it(tmp_path: Path) -> None:
    raw = _raw()
    del raw["routing"]["deadman"]
    del raw["prometheus"]["targets"]["deadman"]
    del raw["alerts"]["DeadmanDown"]
    del raw["alerts"]["DeadmanNoticesUnsent"]
    config = _load(tmp_path, raw)
    files = render(config)
    for name in ("DeadmanDown", "DeadmanNoticesUnsent"):
        assert name not in files[RULES_PATH]
        assert f"runbooks/{name}.md" not in files
        assert AlertName(name) not in config.generated_alerts()


def test_a_generated_prometheus_config_must_scrape_every_server_an_absent_alert_watches(
    tmp_path: Path,
) -> None:
    raw = _raw()
    del raw["prometheus"]["targets"]["relay"]
    del raw["prometheus"]["targets"]["deadman"]
    problems = _problems(tmp_path, raw)
    assert "prometheus.targets.relay: required key is missing: Alertmanager posts every" in (
        problems
    )
    assert "prometheus.targets.deadman: required key is missing: routing.deadman is set" in (
        problems
    )
    raw["prometheus"]["targets"] = {}  # the project runs a Prometheus config of its own
    _load(tmp_path, raw)


def test_the_backlog_threshold_must_be_above_what_the_relay_waits_on_purpose(
    tmp_path: Path,
) -> None:
    raw = _raw()
    raw["thresholds"]["relay_oldest_queued_seconds"] = RELAY_LONGEST_NORMAL_WAIT
    problems = _problems(tmp_path, raw)
    assert "thresholds.relay_oldest_queued_seconds: 691s is not above the 691s" in problems
    assert "RelayBacklogStale would page for a throttle the relay waits out" in problems
    raw["thresholds"]["relay_oldest_queued_seconds"] = RELAY_LONGEST_NORMAL_WAIT + 1
    _load(tmp_path, raw)


def test_what_the_relay_waits_on_purpose_is_the_relays_own_figures() -> None:
    delivery = DeliveryConfig()
    assert delivery.rate_limited_backoff == RELAY_THROTTLE_SECONDS
    assert delivery.retry.max == RELAY_RETRY_CAP_SECONDS
    assert WINDOW_SECONDS + MARGIN_SECONDS == RELAY_PACING_SECONDS
    # The relay.yaml obsctl generates leaves them at the relay's defaults.
    assert "rate_limited_backoff" not in render(demo_config())["alertmanager/relay.yaml"]


def test_a_new_alert_path_alert_without_a_policy_is_named(tmp_path: Path) -> None:
    raw = _raw()
    del raw["alerts"]["RelayBacklogStale"]
    assert "alerts.RelayBacklogStale: required key is missing" in _problems(tmp_path, raw)


# --- the relay's own alerts travel around it ---


def _routes(config: MixinConfig) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = alertmanager.build(config)["route"]["routes"]
    return routes


def _receiver(config: MixinConfig, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        r for r in alertmanager.build(config)["receivers"] if r["name"] == name
    )
    return found


def test_alerts_about_the_relay_are_mailed_even_when_their_severity_is_dingtalk_only(
    tmp_path: Path,
) -> None:
    raw = _raw()
    for alert in ABOUT_THE_RELAY:
        raw["alerts"][alert.value]["severity"] = "warning"  # warning: {dingtalk: [team]}
    config = _load(tmp_path, raw)
    bypass = _receiver(config, "relay-bypass-warning-sre")
    assert [e["to"] for e in bypass["email_configs"]] == ["oncall@example.com, sre@example.com"]
    # What warning-sre gets goes on too: the relay may still deliver to the team's robot.
    assert [h["url"] for h in bypass["webhook_configs"]] == [
        h["url"] for h in _receiver(config, "warning-sre")["webhook_configs"]
    ]
    assert "email_configs" not in _receiver(config, "warning-sre")
    for alert in ABOUT_THE_RELAY:
        assert config.receiver_name(alert) == "relay-bypass-warning-sre"
        assert "email" in config.channels(alert)


def test_a_critical_relay_alert_is_mailed_once_to_everyone_either_receiver_would_mail() -> None:
    config = demo_config()
    bypass = _receiver(config, "relay-bypass-critical-sre")
    assert [e["to"] for e in bypass["email_configs"]] == ["oncall@example.com, sre@example.com"]
    route = next(r for r in _routes(config) if r["receiver"] == "relay-bypass-critical-sre")
    assert route["repeat_interval"] == "1h" and "continue" not in route


def test_without_routing_email_relay_alerts_have_no_path_and_validate_says_so(
    tmp_path: Path,
) -> None:
    raw = _raw()
    del raw["routing"]["email"]
    raw["routing"]["receivers"]["critical"].pop("email")
    config = _load(tmp_path, raw)
    assert not any(r["receiver"].startswith("relay-bypass") for r in _routes(config))
    assert config.receiver_name(AlertName.RELAY_DOWN) == "critical-sre"
    [gap] = config.alert_path_gaps()
    assert gap.startswith("routing.email: not set: RelayDown, RelayDeliveriesFailing,")
    assert "a broken relay pages nobody" in gap
    assert "Also mailed" not in render(config)[RULES_PATH]
    raw = _raw()
    raw["oncall"]["email"] = []
    raw["teams"]["sre"]["email"] = []
    raw["routing"]["receivers"]["critical"]["email"] = ["team"]
    assert _load(tmp_path, raw).alert_path_gaps() == [
        "oncall.email: empty, and so is teams.sre.email: RelayDown, RelayDeliveriesFailing,"
        " RelayBacklogStale would reach people only through the relay they are about, so a"
        " broken relay pages nobody; add an address"
    ]


@pytest.mark.needs_tools("amtool")
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=RelayDown", "severity=critical", "team=sre"], "relay-bypass-critical-sre"),
        (["alertname=RelayDeliveriesFailing", "severity=critical", "team=sre",
          "reason=send_errors", "target=oncall"], "relay-bypass-critical-sre"),
        (["alertname=RelayBacklogStale", "severity=critical", "team=sre", "target=team-ai"],
         "relay-bypass-critical-sre"),
        # Alertmanager failing to post to the relay is about the relay too; email is not.
        (["alertname=AlertmanagerFailedToSendAlerts", "severity=warning", "team=sre",
          "integration=webhook"], "relay-bypass-warning-sre"),
        (["alertname=AlertmanagerFailedToSendAlerts", "severity=warning", "team=sre",
          "integration=email"], "warning-sre"),
        (["alertname=PrometheusRuleFailures", "severity=critical", "team=sre"], "critical-sre"),
        (["alertname=DeadmanDown", "severity=warning", "team=sre"], "warning-sre"),
    ],
)  # fmt: skip
def test_amtool_routes_the_alert_path(labels: list[str], receiver: str) -> None:
    config = DEMO_PROJECT / alertmanager.CONFIG_PATH
    result = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config}",
         f"--verify.receivers={receiver}", *labels],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
