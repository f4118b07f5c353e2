"""Escalation by a real relay process against the stack's Alertmanager, robots and SMTP sink.

The relay runs the project's generated relay.yaml with the escalation delay cut to seconds.
Two critical alerts fire in Alertmanager and reach the relay as a webhook; one is claimed from
its link. The relay is restarted in between: the unclaimed one still escalates (louder, @all, to
the second robot and by email), once, and at the second level texts the on-call and team phones
through the stack's Tencent Cloud SMS fake, which checks the TC3 signature; the claimed one
never escalates.
"""

# ruff: noqa: RUF001 - the texts are Chinese, with its full-width commas
from __future__ import annotations

import datetime as dt
import mailbox
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from obsctl.drills.mailbox import email_message
from obsctl.stack.fakes.launcher import free_port

from conftest import DEMO_PROJECT, RunningStack, wait_for

pytestmark = pytest.mark.needs_tools("prometheus-alertmanager")

AFTER_SECONDS = 8
SECOND_LEVEL_SECONDS = AFTER_SECONDS + 6
CLAIM_LINK = re.compile(r"\[认领\]\((http[^)\s]+/claim/[^)\s]+)\)")


class Relay:
    """`obsctl relay` with a config of this test, restartable on the same spool."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://{env['OBSCTL_RELAY_LISTEN']}"

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "obsctl", "relay", "--config", str(self.config)],
                env=self.env, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/ready", timeout=1).is_success
            except httpx.TransportError:
                return False

        wait_for("the test's relay to be ready", ready, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def relay(stack: RunningStack, tmp_path: Path) -> Iterator[Relay]:
    document = yaml.safe_load((DEMO_PROJECT / "alertmanager" / "relay.yaml").read_text())
    document["render"]["templates_dir"] = str(DEMO_PROJECT / "alertmanager" / "templates")
    escalation = document["escalation"]
    escalation["check_interval"] = "1s"
    for levels in escalation["policies"].values():
        levels[0]["after"] = f"{AFTER_SECONDS}s"
        levels[1]["after"] = f"{SECOND_LEVEL_SECONDS}s"
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump(document, allow_unicode=True))
    address = f"127.0.0.1:{free_port()}"
    env = {**stack.env, "OBSCTL_RELAY_LISTEN": address,
           "OBSCTL_RELAY_SPOOL_DIR": str(tmp_path / "spool"),
           "OBSCTL_RELAY_CLAIM_URL": f"http://{address}"}  # fmt: skip
    process = Relay(config, env, tmp_path / "relay.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _am_alert(labels: dict[str, str], minutes: float) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "labels": labels,
        "annotations": {"summary": f"escalation test {labels['queue']}"},
        "startsAt": (now - dt.timedelta(seconds=20)).isoformat(),
        "endsAt": (now + dt.timedelta(minutes=minutes)).isoformat(),
    }


def _robot_messages(stack: RunningStack, robot: str, marker: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.env['DINGTALK_SINK_URL']}/_messages",
        params={"token": stack.env[f"DINGTALK_{robot}_TOKEN"], "accepted": "true"},
        timeout=5,
    )
    return [m["body"] for m in response.json()["messages"] if marker in str(m["body"])]


def _escalations(stack: RunningStack, robot: str, marker: str) -> list[dict[str, Any]]:
    return [
        body for body in _robot_messages(stack, robot, marker)
        if "[升级·第1级]" in body["markdown"]["title"]
    ]  # fmt: skip


def _texts(stack: RunningStack, since: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.env['SMS_SINK_URL']}/_messages", timeout=5)
    return [
        m for m in response.json()["messages"]
        if m["received_at"] >= since and "QueueStalled" in m.get("text", "")
    ]  # fmt: skip


def test_an_unclaimed_critical_alert_escalates_and_a_claimed_one_does_not(
    stack: RunningStack, relay: Relay
) -> None:
    am = stack.env["ALERTMANAGER_URL"]
    since = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    run = uuid.uuid4().hex[:8]
    unclaimed, claimed = f"esc-open-{run}", f"esc-claimed-{run}"
    labels = {
        queue: {
            "alertname": "QueueStalled",
            "severity": "critical",
            "team": "ai",
            "queue": queue,
            "run": run,
        }
        for queue in (unclaimed, claimed)
    }
    httpx.post(f"{am}/api/v2/alerts", json=[_am_alert(v, 10) for v in labels.values()],
               timeout=5).raise_for_status()  # fmt: skip
    held = wait_for(
        "both alerts in Alertmanager",
        lambda: (found := httpx.get(f"{am}/api/v2/alerts", params={"filter": f'run="{run}"'},
                                    timeout=5).json()) and len(found) == 2 and found,
        timeout=20,
    )  # fmt: skip
    webhook = {
        "version": "4", "status": "firing", "receiver": "test", "groupKey": f"test-{run}",
        "externalURL": am,
        "alerts": [
            {"status": "firing", "labels": a["labels"], "annotations": a["annotations"],
             "startsAt": a["startsAt"], "endsAt": "0001-01-01T00:00:00Z",
             "fingerprint": a["fingerprint"]}
            for a in held
        ],
    }  # fmt: skip
    try:
        sent = httpx.post(
            f"{relay.url}/dingtalk/oncall", json=webhook, timeout=10,
            headers={"Authorization": f"Bearer {stack.env['OBSCTL_RELAY_TOKEN']}"},
        )  # fmt: skip
        assert sent.status_code == 202, sent.text
        first = wait_for(
            "the relay's message with both alerts",
            lambda: [b for b in _robot_messages(stack, "ONCALL", claimed)
                     if unclaimed in b["markdown"]["text"] and relay.url in b["markdown"]["text"]],
            timeout=30,
        )  # fmt: skip
        delivered_at = time.monotonic()
        section = next(s for s in first[0]["markdown"]["text"].split("\n#### ") if claimed in s)
        link = CLAIM_LINK.search(section)
        assert link is not None, section
        answer = httpx.post(link.group(1), data={"who": "王五", "duration": "1800"}, timeout=10)
        assert answer.status_code == 200 and "已认领 by 王五" in answer.text

        relay.stop()  # what is tracked survives the restart
        state = (Path(relay.env["OBSCTL_RELAY_SPOOL_DIR"]) / "escalations.json").read_text()
        # The claimed one may be forgotten already: the relay sees the claim within a second.
        assert unclaimed in state
        relay.start()

        escalated = wait_for(
            "the unclaimed alert's escalation at the on-call robot",
            lambda: _escalations(stack, "ONCALL", unclaimed), timeout=AFTER_SECONDS + 30,
        )  # fmt: skip
        assert time.monotonic() - delivered_at >= AFTER_SECONDS - 1
        assert escalated[0]["at"]["isAtAll"] is True
        assert "13800000000" in escalated[0]["at"]["atMobiles"]
        assert "[认领](" in escalated[0]["markdown"]["text"]
        wait_for("the escalation at the team's robot, the second one",
                 lambda: _escalations(stack, "TEAM_AI", unclaimed), timeout=15)  # fmt: skip

        box = Path(stack.env["SMTP_SINK_DIR"])

        def mails() -> list[tuple[str, str]]:
            found = []
            for message in mailbox.Maildir(box, create=False) if box.exists() else []:
                decoded = email_message(message, 0.0)
                # The relay also mails the alert itself to its receivers: only escalations count.
                if unclaimed in decoded.text and "[升级·" in decoded.title:
                    found.append((str(message["To"]), decoded.title))
            return found

        mailed = wait_for("the escalation mail", mails, timeout=20)
        assert "[升级·第1级]" in mailed[0][1]
        assert "oncall@example.com" in mailed[0][0] and "ai@example.com" in mailed[0][0]

        time.sleep(4)  # several more checks: nothing twice, nothing for the claimed one
        assert len(_escalations(stack, "ONCALL", unclaimed)) == 1
        assert not _escalations(stack, "ONCALL", claimed)
        assert not _escalations(stack, "TEAM_AI", claimed)
        assert not _texts(stack, since), "the first level texts nobody"

        texted = wait_for("the second level's text message", lambda: _texts(stack, since),
                          timeout=SECOND_LEVEL_SECONDS + 30)  # fmt: skip
        assert time.monotonic() - delivered_at >= SECOND_LEVEL_SECONDS - 1
        # The on-call phone and team ai's, in E.164; the fake took the signature and template.
        assert texted[0]["accepted"] and texted[0]["phones"] == ["+8613800000000", "+8613800000002"]
        assert texted[0]["text"].startswith("【示例AI绘图】告警 QueueStalled，已 ")
        second = wait_for(
            "the second level at the on-call robot",
            lambda: [b for b in _robot_messages(stack, "ONCALL", unclaimed)
                     if "[升级·第2级]" in b["markdown"]["title"]],
            timeout=15,
        )  # fmt: skip
        assert second[0]["at"]["isAtAll"] is True
        time.sleep(3)
        assert len(_texts(stack, since)) == 1, "texted once, and never for the claimed alert"
        metrics = httpx.get(f"{relay.url}/metrics", timeout=5).text
        assert 'obsctl_relay_escalations_total{level="1"} 1.0' in metrics
        assert 'obsctl_relay_escalations_total{level="2"} 1.0' in metrics
        assert 'obsctl_relay_escalation_sms_total{outcome="sent"} 2.0' in metrics
    finally:
        httpx.post(f"{am}/api/v2/alerts", json=[_am_alert(v, -0.1) for v in labels.values()],
                   timeout=5)  # fmt: skip
        for silence in httpx.get(f"{am}/api/v2/silences", timeout=5).json():
            if silence["status"]["state"] == "active" and run in str(silence["matchers"]):
                httpx.delete(f"{am}/api/v2/silence/{silence['id']}", timeout=5)
