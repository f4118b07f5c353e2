"""The stack's DingTalk robot endpoint checks signatures made with the secrets in stack.env."""

from __future__ import annotations

import time

import httpx

from obsctl.relay.signing import signature

from conftest import RunningStack

MESSAGE = {"msgtype": "markdown", "markdown": {"title": "obsctl", "text": "### obsctl test"}}


def _send(stack: RunningStack, secret: str, timestamp_ms: int) -> dict[str, object]:
    params = {
        "access_token": stack.env["DINGTALK_ONCALL_TOKEN"],
        "timestamp": str(timestamp_ms),
        "sign": signature(secret, timestamp_ms),
    }
    response = httpx.post(
        f"{stack.env['DINGTALK_SINK_URL']}/robot/send", params=params, json=MESSAGE, timeout=5
    )
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def _accepted(stack: RunningStack) -> int:
    response = httpx.get(
        f"{stack.env['DINGTALK_SINK_URL']}/_messages",
        params={"token": stack.env["DINGTALK_ONCALL_TOKEN"], "accepted": "true"},
        timeout=5,
    )
    return len(response.json()["messages"])


def test_signed_with_the_stack_secret_is_accepted_and_kept(stack: RunningStack) -> None:
    before = _accepted(stack)
    now = int(time.time() * 1000)
    assert _send(stack, stack.env["DINGTALK_ONCALL_SECRET"], now) == {"errcode": 0, "errmsg": "ok"}
    assert _accepted(stack) == before + 1


def test_wrong_secret_and_stale_timestamp_are_refused(stack: RunningStack) -> None:
    before = _accepted(stack)
    now = int(time.time() * 1000)
    wrong = _send(stack, stack.env["DINGTALK_TEAM_SRE_SECRET"], now)
    assert wrong["errcode"] == 310000 and "sign" in str(wrong["errmsg"])
    stale_ms = now - 3_601_000
    stale = _send(stack, stack.env["DINGTALK_ONCALL_SECRET"], stale_ms)
    assert stale["errcode"] == 310000 and "timestamp" in str(stale["errmsg"])
    assert _accepted(stack) == before
