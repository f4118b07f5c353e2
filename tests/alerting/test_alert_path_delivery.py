"""The alert path watching itself on the real stack.

Prometheus scrapes the relay and no alert-path alert is raised while the stack is healthy; a
DingTalk robot that fails fills the real relay's backlog until RelayBacklogStale and
RelayDeliveriesFailing fire; and with the relay down, its alerts still reach on-call by email
through the real Alertmanager and the stack's SMTP sink.
"""

from __future__ import annotations

import datetime as dt
import mailbox
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from obsctl.config_types import parse_duration
from obsctl.drills.mailbox import email_message
from obsctl.metric_names import AlertmanagerMetric, RelayMetric
from obsctl.mixin import alertmanager, rules, signals
from obsctl.mixin.config import ABOUT_THE_RELAY, AlertName, Email, Endpoint, MixinConfig, Severity
from obsctl.mixin.promql import series
from obsctl.stack.fakes.launcher import free_port

from conftest import DEMO_PROJECT, RunningStack, demo_config, is_ready, wait_for

pytestmark = pytest.mark.needs_tools("prometheus", "prometheus-alertmanager")

CONFIG = demo_config()
ALERT_PATH = {
    alert.value
    for alert in (
        AlertName.PROMETHEUS_RULE_FAILURES,
        AlertName.PROMETHEUS_NOT_CONNECTED_TO_ALERTMANAGERS,
        AlertName.PROMETHEUS_ERROR_SENDING_ALERTS,
        AlertName.ALERTMANAGER_FAILED_TO_SEND_ALERTS,
        AlertName.RELAY_DOWN,
        AlertName.RELAY_DELIVERIES_FAILING,
        AlertName.RELAY_BACKLOG_STALE,
        AlertName.DEADMAN_DOWN,  # the demo's routing.deadman is set
    )
}
DELIVERY_SECONDS = parse_duration(rules.DELIVERY_WINDOW)


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's series; none while that Prometheus is still starting."""
    try:
        response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    except httpx.TransportError:
        return []
    if response.status_code == httpx.codes.SERVICE_UNAVAILABLE:  # not ready yet
        return []
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _active(prometheus: str) -> list[dict[str, Any]]:
    """Alerts pending or firing in a Prometheus."""
    try:
        response = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5)
    except httpx.TransportError:
        return []
    if response.status_code == httpx.codes.SERVICE_UNAVAILABLE:  # not ready yet
        return []
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["data"]["alerts"]
    return found


def _rules(prometheus: str) -> dict[str, list[dict[str, Any]]]:
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    found: dict[str, list[dict[str, Any]]] = {}
    for group in groups:
        for rule in group["rules"]:
            if rule["type"] == "alerting":
                found.setdefault(rule["name"], []).append(rule)
    return found


_RFC3339 = re.compile(r"^(?P<base>[^.Z+]+T[\d:]+)(?:\.\d+)?(?P<zone>Z|[+-]\d\d:\d\d)$")


def _evaluated_since(rule: dict[str, Any], since: float) -> bool:
    # Prometheus writes RFC 3339 with nanoseconds, which fromisoformat does not take.
    found = _RFC3339.match(rule["lastEvaluation"])
    assert found, rule["lastEvaluation"]
    zone = "+00:00" if found["zone"] == "Z" else found["zone"]
    stamp = dt.datetime.fromisoformat(found["base"] + zone)
    return stamp.timestamp() > since and rule["health"] == "ok"


def test_prometheus_scrapes_the_relay_and_a_healthy_stack_raises_no_alert_path_alert(
    stack: RunningStack,
) -> None:
    prometheus = stack.env["PROMETHEUS_URL"]
    relay, am = CONFIG.selectors.relay, CONFIG.selectors.alertmanager
    up = f"{series('up', relay)} == 1"
    wait_for("Prometheus to scrape the relay", lambda: _query(prometheus, up), timeout=30)

    # A DingTalk outage an earlier test injected stays in the delivery window for a while:
    # wait until no send and no notification failed within it, then judge the stack.
    window = rules.DELIVERY_WINDOW
    failed = series(RelayMetric.FAILED, relay, signals.NOT_RATE_LIMITED)
    notified = series(AlertmanagerMetric.NOTIFICATIONS_FAILED, am)
    failures = f"sum(increase({failed}[{window}])) > 0 or sum(increase({notified}[{window}])) > 0"
    wait_for("no failed delivery in the window", lambda: not _query(prometheus, failures),
             timeout=DELIVERY_SECONDS + 60)  # fmt: skip
    clear = time.time()

    # Every alert-path rule is loaded and has been evaluated since, without error: a quiet
    # stack is then quiet, not a stack whose rules did not run.
    def evaluated() -> dict[str, list[dict[str, Any]]] | None:
        loaded = {name: found for name, found in _rules(prometheus).items() if name in ALERT_PATH}
        ready = set(loaded) == ALERT_PATH and all(
            _evaluated_since(rule, clear + 1) for found in loaded.values() for rule in found
        )
        return loaded if ready else None

    loaded = wait_for("every alert-path rule to be evaluated", evaluated, timeout=30)
    assert len(loaded["RelayDeliveriesFailing"]) == 2

    raised = {
        a["labels"]["alertname"]: a["state"]
        for a in _active(prometheus)
        if a["labels"]["alertname"] in ALERT_PATH
    }
    deadman = CONFIG.selectors.deadman
    if _query(prometheus, series("up", deadman)):
        assert raised == {}
    else:
        # The demo's routing.deadman names a dead man's switch; a stack that does not scrape
        # one must say so (absent(up)), and nothing else may be raised.
        assert raised in ({"DeadmanDown": "pending"}, {"DeadmanDown": "firing"})


@pytest.fixture
def fault_off(stack: RunningStack) -> Iterator[str]:
    """The fake DingTalk's control URL; every robot answers normally again afterwards."""
    control = f"{stack.env['DINGTALK_SINK_URL']}/_control"
    try:
        yield control
    finally:
        httpx.put(control, json={"mode": "ok", "count": None}, timeout=5).raise_for_status()


def _prometheus(
    tmp_path: Path, config: MixinConfig, relay: str
) -> tuple[subprocess.Popen[bytes], str]:
    """A Prometheus of the test's own: the alert-path rules of `config`, the stack's relay."""
    keep = {AlertName.RELAY_BACKLOG_STALE.value, AlertName.RELAY_DELIVERIES_FAILING.value}
    built = rules.build(config)
    picked = [r for g in built["groups"] for r in g["rules"] if r.get("alert") in keep]
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "t", "rules": picked}]})
    )
    document = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [
            {"job_name": config.job_name("relay"), "static_configs": [{"targets": [relay]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(document))
    port = free_port()
    process = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def _alert(name: str, **labels: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} test", "description": "from the test suite"},
        "startsAt": now.isoformat(),
        "endsAt": (now + dt.timedelta(minutes=5)).isoformat(),
        "generatorURL": "http://127.0.0.1/test",
    }


def test_a_failing_robot_fills_the_relays_backlog_until_its_alerts_fire(
    stack: RunningStack, fault_off: str, tmp_path: Path
) -> None:
    # The demo pages after 15 minutes (above DingTalk's 10-minute throttle): the same rules,
    # generated with a 10 s threshold and `for`s of seconds, against the stack's real relay.
    alerts = dict(CONFIG.alerts)
    for name, seconds in ((AlertName.RELAY_BACKLOG_STALE, 2.0),
                          (AlertName.RELAY_DELIVERIES_FAILING, 5.0)):  # fmt: skip
        alerts[name] = alerts[name].model_copy(update={"for_": seconds})
    fast = CONFIG.model_copy(update={
        "thresholds": CONFIG.thresholds.model_copy(update={"relay_oldest_queued_seconds": 10.0}),
        "alerts": alerts,
    })  # fmt: skip
    process, prometheus = _prometheus(tmp_path, fast, urlsplit(stack.env["RELAY_URL"]).netloc)
    marker = f"backlog-{uuid.uuid4().hex[:8]}"

    def raised(name: str, state: str = "firing") -> list[dict[str, Any]]:
        return [
            a for a in _active(prometheus)
            if a["labels"]["alertname"] == name and a["labels"].get("target") == "oncall"
            and a["state"] == state
        ]  # fmt: skip

    try:
        wait_for("the test's Prometheus to scrape the relay",
                 lambda: _query(prometheus, "up == 1"), timeout=30)  # fmt: skip
        assert not raised("RelayBacklogStale", "pending") and not raised("RelayBacklogStale")
        httpx.put(fault_off, json={"mode": "http_500", "count": None}, timeout=5).raise_for_status()
        httpx.post(
            f"{stack.env['ALERTMANAGER_URL']}/api/v2/alerts",
            json=[_alert("QueueStalled", severity="critical", team="ai", queue=marker)],
            timeout=5,
        ).raise_for_status()
        [stale] = wait_for("RelayBacklogStale for the on-call robot",
                           lambda: raised("RelayBacklogStale"), timeout=60)  # fmt: skip
        assert float(stale["value"]) > 10
        [failing] = wait_for("RelayDeliveriesFailing for the on-call robot",
                             lambda: raised("RelayDeliveriesFailing"), timeout=30)  # fmt: skip
        assert failing["labels"]["reason"] == "send_errors"
        assert float(failing["value"]) == 1.0, "every send failed"

        httpx.put(fault_off, json={"mode": "ok", "count": None}, timeout=5).raise_for_status()

        # The next retry (at most 30 s away) delivers: the backlog empties and the alert ends.
        def over() -> bool:
            return not raised("RelayBacklogStale") and not raised("RelayBacklogStale", "pending")

        wait_for("RelayBacklogStale to resolve once the robot answers again", over, timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_relays_alerts_reach_on_call_by_email_while_the_relay_is_down(
    stack: RunningStack, tmp_path: Path
) -> None:
    # Every relay alert a warning, whose receiver is DingTalk only (the team's robot); the
    # relay's address has nothing listening.
    alerts = dict(CONFIG.alerts)
    for name in ABOUT_THE_RELAY:
        alerts[name] = alerts[name].model_copy(update={"severity": Severity.WARNING})
    token = tmp_path / "relay-token"
    token.write_text("unused")
    smtp = Email.model_validate(
        {"smarthost": stack.env["SMTP_SMARTHOST"], "from": "obsctl-test@localhost",
         "require_tls": False}
    )  # fmt: skip
    routing = CONFIG.routing.model_copy(
        update={
            "relay": Endpoint(url=f"http://127.0.0.1:{free_port()}", token_file=str(token)),
            "deadman": None,
            "email": smtp,
        }
    )
    config = CONFIG.model_copy(update={"alerts": alerts, "routing": routing})
    assert config.routing.receivers[Severity.WARNING].email == []
    (tmp_path / "alertmanager.yml").write_text(
        alertmanager.render(config, str(DEMO_PROJECT / "alertmanager" / "templates" / "*.tmpl"))
    )
    port = free_port()
    process = subprocess.Popen(
        ["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    marker = f"around-{uuid.uuid4().hex[:8]}"
    box = Path(stack.env["SMTP_SINK_DIR"])

    def mails() -> list[tuple[str, str, str]]:
        if not box.exists():
            return []
        found = []
        for message in mailbox.Maildir(box, create=False):
            decoded = email_message(message, 0.0)
            if marker in decoded.text:
                found.append((str(message["To"]), decoded.title, decoded.text))
        return found

    def webhook_failures() -> float:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        prefix = f'{AlertmanagerMetric.NOTIFICATIONS_FAILED}{{integration="webhook"}} '
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))

    try:
        wait_for("Alertmanager", lambda: is_ready(url), timeout=30)
        posted = [
            _alert("RelayDown", severity="warning", team="sre", run=marker),
            _alert("RelayBacklogStale", severity="warning", team="sre", target="oncall",
                   run=marker),
            # A warning that is not about the relay: DingTalk only, never mailed.
            _alert("QueueBacklogHigh", severity="warning", team="ai", queue=marker, run=marker),
        ]  # fmt: skip
        httpx.post(f"{url}/api/v2/alerts", json=posted, timeout=5).raise_for_status()
        wait_for("both relay alerts by email",
                 lambda: {t.split("]")[-1].split("(")[0].strip() for _, t, _ in mails()}
                 >= {"RelayDown", "RelayBacklogStale"}, timeout=60)  # fmt: skip
        # Every group has tried its DingTalk webhook by now, and failed: the relay is down.
        wait_for("the three webhook notifications to fail", lambda: webhook_failures() >= 3,
                 timeout=60)  # fmt: skip
        received = mails()
    finally:
        process.terminate()
        process.wait(timeout=10)
    for to, title, text in received:
        assert "QueueBacklogHigh" not in title and "QueueBacklogHigh" not in text
        assert to == "oncall@example.com, sre@example.com", to
        assert "(warning, team sre)" in title
