"""The generated Alertmanager config: valid for amtool, routes as on-call expects, email renders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from obsctl.mixin.alertmanager import CONFIG_PATH, build, render
from obsctl.mixin.config import load
from obsctl.mixin.relay_config import relay_document

from conftest import demo_config

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "obsctl.yaml"
CONFIG = REPO / CONFIG_PATH
pytestmark = pytest.mark.needs_tools("amtool")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=30)


def test_committed_config_is_what_the_mixin_generates() -> None:
    assert CONFIG.read_text() == render(load(DEMO_CONFIG)), (
        "run `obsctl generate` and commit the result"
    )


def test_amtool_check_config_passes() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 inhibit rules" in result.stdout


@pytest.mark.parametrize("interval", [20.0, 60.0, 300.0])
def test_the_watchdog_goes_out_at_every_flush_of_its_group(interval: float) -> None:
    # Alertmanager logs a notification just after its flush, so a repeat_interval equal to
    # the group_interval would skip every other flush (a Watchdog every 2 minutes for 1m).
    config = demo_config()
    routing = config.routing.model_copy(update={"watchdog_repeat_interval": interval})
    route = build(config.model_copy(update={"routing": routing}))["route"]["routes"][0]
    assert route["matchers"] == ['alertname="Watchdog"']
    group, repeat = (_seconds(route[key]) for key in ("group_interval", "repeat_interval"))
    assert group == interval
    assert interval - 10 <= repeat < group, route


def _seconds(value: str) -> float:
    return float(value[:-1]) * {"s": 1, "m": 60, "h": 3600}[value[-1]]


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=ApiHighErrorRate", "severity=critical", "team=platform"],
         "critical-platform"),
        (["alertname=DependencyDown", "severity=critical", "team=sre", "dependency=mysql"],
         "critical-sre"),
        (["alertname=QueueBacklogHigh", "severity=warning", "team=ai"], "warning-ai"),
        (["alertname=ApiHighLatencyP95", "severity=warning", "team=platform"],
         "warning-platform"),
        (["alertname=MySQLProbeSlow", "severity=warning", "team=sre"], "warning-sre"),
        (["alertname=Watchdog", "severity=info", "team=sre"], "heartbeat"),
        (["alertname=Something", "severity=info", "team=sre"], "blackhole"),
        (["alertname=Something", "severity=warning", "team=unknown"], "warning-unowned"),
        (["alertname=Something", "severity=critical", "team=unknown"], "critical-unowned"),
    ],
)  # fmt: skip
def test_routes(labels: list[str], receiver: str) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}",
        *labels,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_route_expectation_fails() -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}",
        "--verify.receivers=critical-ai", "alertname=QueueBacklogHigh", "severity=warning",
        "team=ai",
    )  # fmt: skip
    assert result.returncode != 0


def test_each_team_has_its_robot_its_mobiles_and_its_mail() -> None:
    receivers = {r["name"]: r for r in build(demo_config())["receivers"]}

    recipients = relay_document(demo_config())["mail"]["recipients"]

    def hooks(name: str, kind: str) -> list[str]:
        urls = [h["url"] for h in receivers[name].get("webhook_configs", [])]
        return [u.rsplit("/", 1)[1] for u in urls if u.rsplit("/", 2)[1] == kind]

    def robots(name: str) -> list[str]:
        return hooks(name, "dingtalk")

    def mail(name: str) -> list[str]:
        """Who the relay mails for this receiver (it is posted to /email/<name>)."""
        assert "email_configs" not in receivers[name], "the relay mails, with claim links"
        return recipients[name]["to"] if hooks(name, "email") == [name] else []

    assert robots("warning-ai") == ["team-ai"] and mail("warning-ai") == []
    assert "warning-ai" not in recipients
    assert robots("warning-platform") == ["team-platform"]
    assert robots("critical-ai") == ["oncall"]
    assert mail("critical-ai") == ["oncall@example.com", "ai@example.com"]
    assert recipients["critical-ai"]["announce"] == "oncall", "claims are told where it paged"
    assert mail("critical-unowned") == ["oncall@example.com"]
    assert robots("warning-unowned") == [], "an unowned warning goes to no team's robot"
    assert hooks("heartbeat", "heartbeat") == ["alert-path"], "the deadman hears it"
    assert robots("heartbeat") == ["heartbeat"]


def test_inhibition_rules_as_specified() -> None:
    rules = build(demo_config())["inhibit_rules"]
    by_source = {r["source_matchers"][0]: r for r in rules}
    mysql_down = by_source['alertname="DependencyDown"']
    assert "MySQLProbeSlow" in mysql_down["target_matchers"][0]
    assert "DBPoolSaturated" in mysql_down["target_matchers"][0]
    assert mysql_down["equal"] == ["dependency"]
    provider_down = by_source['alertname="ProviderDown"']
    assert provider_down["target_matchers"] == ['alertname="CircuitBreakerOpen"']
    assert provider_down["equal"] == ["provider"]
    assert by_source['alertname="ExporterDown"']["target_matchers"] == ['source="exporter"']
    assert by_source['severity="critical"']["equal"] == ["alertname", "team"]


def test_no_secret_is_inlined() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            auth = hook["http_config"]["authorization"]
            assert "credentials" not in auth and auth["credentials_file"]


def test_email_template_renders_with_amtool() -> None:
    result = amtool(
        "template", "render", f"--template.glob={REPO / 'alertmanager/templates/*.tmpl'}",
        '--template.text={{ template "obsctl.email.html" . }}',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.lstrip().startswith("<!DOCTYPE html>")
    assert "Open in Alertmanager" in result.stdout and "</html>" in result.stdout
    subject = amtool(
        "template", "render", f"--template.glob={REPO / 'alertmanager/templates/*.tmpl'}",
        '--template.text={{ template "obsctl.email.subject" . }}',
    )  # fmt: skip
    assert subject.returncode == 0 and subject.stdout.startswith("[")
