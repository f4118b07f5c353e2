"""Claiming an alert from its DingTalk message, in a real headless Chromium, on the real stack.

The alert goes into the stack's Alertmanager, the relay sends it to the fake robot with a
signed claim link, the browser opens that link, claims, and the claim is then a silence in
Alertmanager's API and a "已认领 by NAME until HH:MM" message at the robot.
"""

from __future__ import annotations

import datetime as dt
import html
import mailbox
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import RunningStack, wait_for

pytestmark = pytest.mark.needs_tools("prometheus-alertmanager", "chromium", "chromedriver")

# Set to a directory (docs/img) to keep what the phone shows, for the README.
SCREENSHOTS = os.environ.get("OBSCTL_SCREENSHOT_DIR")
CLAIM_LINK = re.compile(r"\[认领\]\((http[^)\s]+/claim/[^)\s]+)\)")
EMAIL_CLAIM_LINK = re.compile(r'<a href="(http[^"]+/claim/[^"]+)"[^>]*>Claim</a>')


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's) at a phone's size, driven by chromium-driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=390,844"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(shutil.which("chromedriver"))))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _post_alert(stack: RunningStack, labels: dict[str, str], minutes: float = 10) -> None:
    now = dt.datetime.now(dt.UTC)
    alert = {
        "labels": labels,
        "annotations": {"summary": "claim test", "description": "from the test suite"},
        "startsAt": (now - dt.timedelta(seconds=30)).isoformat(),
        "endsAt": (now + dt.timedelta(minutes=minutes)).isoformat(),
    }
    url = f"{stack.env['ALERTMANAGER_URL']}/api/v2/alerts"
    httpx.post(url, json=[alert], timeout=5).raise_for_status()


def _robot_texts(stack: RunningStack, marker: str) -> list[str]:
    response = httpx.get(
        f"{stack.env['DINGTALK_SINK_URL']}/_messages",
        params={"token": stack.env["DINGTALK_ONCALL_TOKEN"], "accepted": "true"},
        timeout=5,
    )
    texts = [str(m["body"]["markdown"]["text"]) for m in response.json()["messages"]]
    return [text for text in texts if marker in text]


def _claim_link(stack: RunningStack, marker: str) -> str:
    def link() -> str | None:
        for text in _robot_texts(stack, marker):
            # A message may hold other alerts of the same group: take this alert's own link.
            for section in text.split("\n#### "):
                found = CLAIM_LINK.search(section)
                if found and marker in section:
                    return found.group(1)
        return None

    return wait_for("the alert's DingTalk message with a claim link", link, timeout=60)


def _claim_silences(stack: RunningStack, run: str) -> list[dict[str, Any]]:
    silences = httpx.get(f"{stack.env['ALERTMANAGER_URL']}/api/v2/silences", timeout=5).json()
    return [
        s for s in silences
        if s["status"]["state"] == "active"
        and any(m["name"] == "run" and m["value"] == run for m in s["matchers"])
    ]  # fmt: skip


def _expire(stack: RunningStack, silences: list[dict[str, Any]]) -> None:
    for silence in silences:
        url = f"{stack.env['ALERTMANAGER_URL']}/api/v2/silence/{silence['id']}"
        httpx.delete(url, timeout=5)


def test_claim_from_the_message_in_chromium_silences_exactly_that_alert_and_tells_the_group(
    stack: RunningStack, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    run = f"claim-{uuid.uuid4().hex[:8]}"
    labels = {"alertname": "QueueStalled", "severity": "critical", "team": "ai",
              "queue": run, "run": run}  # fmt: skip
    _post_alert(stack, labels)
    link = _claim_link(stack, run)
    try:
        browser.get(link)
        assert browser.find_element(By.ID, "alertname").text == "QueueStalled"
        assert run in browser.page_source  # the queue label is shown
        browser.find_element(By.ID, "who").send_keys("张三")
        Select(browser.find_element(By.ID, "duration")).select_by_value("1800")
        browser.find_element(By.ID, "note").send_keys("looking at the workers *now*")
        if SCREENSHOTS:
            browser.save_screenshot(f"{SCREENSHOTS}/claim-page.png")
        browser.find_element(By.ID, "submit").click()
        result = wait_for("the claim's result page",
                          lambda: browser.find_elements(By.ID, "result"), timeout=15)  # fmt: skip
        assert "已认领 by 张三 until" in result[0].text
        if SCREENSHOTS:
            browser.save_screenshot(f"{SCREENSHOTS}/claim-done.png")

        silences = _claim_silences(stack, run)
        assert len(silences) == 1, silences
        silence = silences[0]
        assert silence["createdBy"] == "张三"
        assert "looking at the workers *now*" in silence["comment"], "kept as typed"
        matchers = {m["name"]: m["value"] for m in silence["matchers"]}
        assert matchers == labels, "exactly that alert's labels, each matched for equality"
        assert all(m["isEqual"] and not m["isRegex"] for m in silence["matchers"])
        ends = dt.datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
        left = (ends - dt.datetime.now(dt.UTC)).total_seconds()
        assert 1700 < left <= 1800

        notice = wait_for(
            "the 已认领 message at the robot",
            lambda: [t for t in _robot_texts(stack, run) if "已认领 by **张三** until" in t],
            timeout=30,
        )
        assert (
            "\N{ASTERISK OPERATOR}now\N{ASTERISK OPERATOR}" in notice[0]
            and "*now*" not in notice[0]
        ), "inert in the group"
        hhmm = ends.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%H:%M")
        assert f"until **{hhmm}**" in notice[0], "the end shown in the relay's zone"

        # The same link again: who holds it, no form, and no second silence.
        browser.get(link)
        assert "已认领 by 张三 until" in browser.find_element(By.ID, "result").text
        assert not browser.find_elements(By.ID, "claim")
        again = httpx.post(link, data={"who": "李四", "duration": "1800"}, timeout=10)
        assert again.status_code == 200 and "张三" in again.text
        assert len(_claim_silences(stack, run)) == 1
    finally:
        _expire(stack, _claim_silences(stack, run))
        _post_alert(stack, labels, minutes=-0.1)


def test_a_changed_link_is_refused_and_a_resolved_alert_has_nothing_to_claim(
    stack: RunningStack, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    run = f"claim-{uuid.uuid4().hex[:8]}"
    labels = {"alertname": "QueueStalled", "severity": "critical", "team": "ai",
              "queue": run, "run": run}  # fmt: skip
    _post_alert(stack, labels)
    link = _claim_link(stack, run)
    head, payload_and_signature = link.rsplit("/", 1)
    tampered = f"{head}/{payload_and_signature[:-2]}{'AA' if not link.endswith('AA') else 'BB'}"

    forged = httpx.get(tampered, timeout=10)
    assert forged.status_code == 403 and "签名" in forged.text
    browser.get(tampered)
    assert "链接无效" in browser.find_element(By.ID, "result").text
    assert not browser.find_elements(By.ID, "claim")

    _post_alert(stack, labels, minutes=-0.1)  # Alertmanager sees it end

    def over() -> httpx.Response | None:
        page = httpx.get(link, timeout=10)
        return page if page.status_code == 410 else None

    page = wait_for("the link of a resolved alert to say it is over", over, timeout=30)
    assert "已恢复" in page.text and 'id="claim"' not in page.text
    refused = httpx.post(link, data={"who": "王五", "duration": "3600"}, timeout=10)
    assert refused.status_code == 410 and not _claim_silences(stack, run)


def _emails(stack: RunningStack, marker: str) -> list[tuple[str, str, str]]:
    """(subject, to, html) of the mails in the stack's SMTP sink that mention `marker`."""
    found = []
    for message in mailbox.Maildir(stack.env["SMTP_SINK_DIR"], create=False):
        body = message.get_payload(decode=True)
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
        if marker in text:
            found.append((str(message["Subject"]), str(message["To"]), text))
    return found


def test_the_alert_email_comes_from_the_relay_with_a_claim_link_that_claims(
    stack: RunningStack,
) -> None:
    run = f"mail-{uuid.uuid4().hex[:8]}"
    labels = {"alertname": "QueueStalled", "severity": "critical", "team": "platform",
              "queue": run, "run": run}  # fmt: skip
    _post_alert(stack, labels)
    try:
        mails = wait_for("the alert's email", lambda: _emails(stack, run), timeout=60)
        subject, to, text = mails[0]
        assert subject.startswith("[FIRING:") and "] QueueStalled (critical, team platform)" in (
            subject
        ), "Alertmanager's subject line"
        assert to == "oncall@example.com, platform@example.com", "the receiver's addresses"
        rows = [row for row in text.split("<tr>")[1:] if run in row]
        assert len(rows) == 1 and "FIRING" in rows[0]
        found = EMAIL_CLAIM_LINK.search(rows[0])
        assert found, rows[0]
        link = html.unescape(found.group(1))

        answer = httpx.post(link, data={"who": "王五", "duration": "3600"}, timeout=10)
        assert answer.status_code == 200 and "已认领 by 王五 until" in answer.text
        silences = _claim_silences(stack, run)
        assert len(silences) == 1 and silences[0]["createdBy"] == "王五"
        assert {m["name"]: m["value"] for m in silences[0]["matchers"]} == labels
        wait_for(
            "the 已认领 message in the group that was paged (on-call)",
            lambda: [t for t in _robot_texts(stack, run) if "已认领 by **王五** until" in t],
            timeout=30,
        )
    finally:
        _expire(stack, _claim_silences(stack, run))
        _post_alert(stack, labels, minutes=-0.1)
