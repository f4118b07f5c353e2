"""The relay's alert emails: Alertmanager's layout, a claim link per claimable alert, 503s."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from email import policy
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from test_relay_units import ENV, SHIPPED, raw_alert

from obsctl.relay import alertmanager
from obsctl.relay.claim_links import ClaimLinks
from obsctl.relay.config import load
from obsctl.relay.mailer import AlertMailer, subject
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.runner import build_state
from obsctl.relay.server import build_app

KEY = ENV["OBSCTL_RELAY_CLAIM_KEY"].encode()


def _notification(*alerts: dict[str, Any], **fields: Any) -> alertmanager.Notification:
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "critical-ai",
        "alerts": list(alerts),
        "externalURL": "http://alertmanager.example:9093",
        **fields,
    }
    return alertmanager.parse(json.dumps(body).encode())


def _alert(name: str = "QueueStalled", severity: str = "critical", **extra: Any) -> dict[str, Any]:
    labels = {"alertname": name, "severity": severity, "team": "ai", "queue": "image"}
    return raw_alert(labels={**labels, **extra.pop("labels", {})}, fingerprint="f00d", **extra)


def _mailer(smarthost: str = "127.0.0.1:1") -> AlertMailer:
    config = load(SHIPPED, {**ENV, "OBSCTL_RELAY_SMARTHOST": smarthost})
    links = ClaimLinks("http://relay.example", KEY, 3600)
    mailer = AlertMailer.from_config(config, links, RelayMetrics(config.targets))
    assert mailer is not None, "the shipped relay config mails"
    return mailer


def test_the_subject_is_alertmanagers() -> None:
    common = {"alertname": "QueueStalled", "severity": "critical", "team": "ai"}
    firing = _notification(_alert(), _alert(), commonLabels=common)
    assert subject(firing) == "[FIRING:2] QueueStalled (critical, team ai)"
    drill = _notification(_alert(), status="resolved", commonLabels={**common, "drill": "d-1"})
    assert subject(drill) == "[DRILL] [RESOLVED] QueueStalled (critical, team ai)"
    hostile = _notification(_alert(), commonLabels={**common, "alertname": "A\r\nBcc: x@evil"})
    assert "\n" not in subject(hostile) and "\r" not in subject(hostile)


def test_firing_claimable_alerts_get_a_signed_link_for_the_announced_robot() -> None:
    mailer = _mailer()
    resolved = _alert(status="resolved", endsAt="2025-01-01T10:03:00Z")
    info = _alert("Heads-up", severity="info")
    mail = mailer.render("critical-ai", _notification(_alert(), resolved, info))
    rows = mail.html.split("<tr>")[1:]
    assert [("FIRING" in r, "RESOLVED" in r) for r in rows] == [(1, 0), (1, 0), (0, 1)]
    claims = [r for r in rows if ">Claim</a>" in r]
    assert len(claims) == 1 and "QueueStalled" in claims[0], "firing, critical or warning only"
    token = claims[0].split('href="http://relay.example/claim/')[1].split('"')[0]
    ticket = ClaimLinks("http://relay.example", KEY, 3600).check(token)
    assert (ticket.target, ticket.fingerprint) == ("oncall", "f00d")
    assert "queue=image" in rows[0] and "team=ai" not in rows[0], "labels, heading ones once"


def test_alert_text_is_escaped_and_untrusted_links_are_dropped() -> None:
    hostile = _alert(
        labels={"queue": "<script>alert(1)</script>"},
        annotations={
            "summary": '"><img src=x onerror=alert(1)>',
            "runbook_url": "https://evil.example/phish",
            "dashboard_url": "javascript:alert(1)",
        },
        generatorURL="http://prometheus.example:9090/graph?g0.expr=up",
    )
    html = _mailer().render("critical-ai", _notification(hostile)).html
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert "evil.example" not in html and "javascript:" not in html
    assert 'href="http://prometheus.example:9090/graph?g0.expr=up"' in html, "trusted: kept"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[str, _Inbox]]:
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"127.0.0.1:{port}", inbox
    finally:
        controller.stop()


async def _post(smarthost: str, path: str, body: dict[str, Any], tmp: Any) -> tuple[int, Any]:
    env = {**ENV, "OBSCTL_RELAY_SMARTHOST": smarthost, "OBSCTL_RELAY_SPOOL_DIR": str(tmp)}
    config = load(SHIPPED, env)
    async with httpx.AsyncClient() as http:
        state = build_state(config, http)
        async with TestClient(TestServer(build_app(state))) as client:
            answer = await client.post(
                path, json=body, headers={"Authorization": f"Bearer {ENV['OBSCTL_RELAY_TOKEN']}"}
            )
            return answer.status, await answer.json()


async def test_the_webhook_is_answered_once_the_smtp_server_took_the_mail(
    smtp: tuple[str, _Inbox], tmp_path: Any
) -> None:
    smarthost, inbox = smtp
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "critical-ai",
        "alerts": [_alert()],
        "commonLabels": {"alertname": "QueueStalled", "severity": "critical", "team": "ai"},
    }
    status, answer = await _post(smarthost, "/email/critical-ai", body, tmp_path)
    assert (status, answer["status"]) == (200, "mailed")
    (mail,) = inbox.messages
    assert mail["To"] == "oncall@example.com, ai@example.com"
    assert mail["Subject"] == "[FIRING:1] QueueStalled (critical, team ai)"
    assert mail.get_content_type() == "text/html" and ">Claim</a>" in mail.get_content()


async def test_an_smtp_server_that_is_down_gets_a_503_so_alertmanager_retries(
    tmp_path: Any,
) -> None:
    body = {"version": "4", "status": "firing", "alerts": [_alert()]}
    status, answer = await _post("127.0.0.1:1", "/email/critical-ai", body, tmp_path)
    assert status == 503 and "not sent" in answer["error"]
    status, answer = await _post("127.0.0.1:1", "/email/nobody", body, tmp_path)
    assert status == 404 and "critical-ai" in answer["error"], "the known recipients are named"
