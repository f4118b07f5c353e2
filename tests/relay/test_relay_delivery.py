"""The relay in process, delivering to the DingTalk robot fake running as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from obsctl.relay.config import RelayConfig
from obsctl.relay.runner import running
from obsctl.relay.server import RelayState
from obsctl.stack.fakes.launcher import RunningFake, free_port, start_fake

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "alertmanager" / "templates"
SECRET = "SEC7c1f0e9d8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0"
TOKEN = "relay-token-5b2e"
ROBOTS = {
    "tok-signed": {"secret": SECRET},
    "tok-keyword": {"keywords": ["obsctl"]},
    "tok-burst": {"secret": SECRET, "rate_limit_per_minute": 20},
    "tok-flaky": {"secret": SECRET},
    "tok-big": {"secret": SECRET},
}


@pytest.fixture(scope="module")
def dingtalk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFake]:
    directory = tmp_path_factory.mktemp("dingtalk")
    robots = directory / "robots.json"
    robots.write_text(json.dumps(ROBOTS), encoding="utf-8")
    fake = start_fake(
        "obsctl.stack.fakes.dingtalk",
        ["--robots", str(robots), "--store", str(directory / "messages.jsonl")],
    )
    yield fake
    fake.close()


@pytest.fixture
async def robot(dingtalk: RunningFake) -> AsyncIterator[httpx.AsyncClient]:
    """The fake's control API, reset before each test."""
    async with httpx.AsyncClient(base_url=dingtalk.base_url, timeout=5) as client:
        (await client.put("/_control", json={"mode": "ok"})).raise_for_status()
        (await client.delete("/_messages")).raise_for_status()
        yield client
        await client.put("/_control", json={"mode": "ok"})


@dataclass
class Relay:
    """A relay serving in this event loop."""

    state: RelayState
    http: httpx.AsyncClient

    def sample(self, name: str, **labels: str) -> float:
        value = self.state.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    async def post(self, target: str, payload: Any) -> httpx.Response:
        return await self.http.post(f"/dingtalk/{target}", json=payload)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both_dicts else value
    return out


@contextlib.asynccontextmanager
async def relay(
    dingtalk: RunningFake, targets: dict[str, dict[str, Any]], **sections: Any
) -> AsyncIterator[Relay]:
    """Run a relay whose targets name fake robots by token (`"token": "tok-..."`)."""
    port = free_port()
    for target in targets.values():
        target["url"] = f"{dingtalk.base_url}/robot/send?access_token={target.pop('token')}"
    raw = _merge(
        {
            "listen": f"127.0.0.1:{port}",
            "webhook": {"token": TOKEN, "deliver_timeout": "2s"},
            "delivery": {"send_timeout": "1s", "retry": {"base": "0.2s", "max": "1s"}},
            "render": {"templates_dir": str(TEMPLATES)},
            "targets": targets,
        },
        sections,
    )
    config = RelayConfig.model_validate(raw)
    async with (
        running(config) as state,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
            limits=httpx.Limits(max_connections=250),
        ) as http,
    ):
        yield Relay(state, http)


def alert(
    name: str = "ApiHighErrorRate", severity: str = "critical", status: str = "firing", **extra: Any
) -> dict[str, Any]:
    labels = {"alertname": name, "severity": severity, "team": "platform"}
    labels.update(extra.pop("labels", {}))
    return {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": f"{name}: API 5xx above 1%",
            "description": extra.pop("description", "5xx share is 5.2% over the last 5m"),
            "runbook_url": f"https://runbooks.example/{name}",
            "dashboard_url": "https://grafana.example/d/api",
        },
        "startsAt": "2025-01-01T10:00:00Z",
        "endsAt": "2025-01-01T10:07:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": f"fp-{name}",
    }


def zh(label: str, value: str) -> str:
    """A line of the Chinese template: label, full-width colon, value."""
    return f"- **{label}**\N{FULLWIDTH COLON}{value}"


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "oncall",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


async def messages(robot: httpx.AsyncClient, token: str, accepted: bool | None = None) -> list[Any]:
    params = {"token": token} | ({} if accepted is None else {"accepted": str(accepted).lower()})
    found: list[Any] = (await robot.get("/_messages", params=params)).json()["messages"]
    return found


# --- delivery and content --------------------------------------------------------------------


async def test_signed_firing_then_resolved_message_in_chinese(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    oncall = {"token": "tok-signed", "secret": SECRET, "mentions": {"mobiles": ["13800000000"]}}
    async with relay(dingtalk, {"oncall": oncall}) as r:
        fired = await r.post("oncall", notification(alert(labels={"instance": "api:3000"})))
        resolved = await r.post("oncall", notification(alert(status="resolved")))

        assert (fired.status_code, fired.json()["status"]) == (200, "delivered")
        assert resolved.status_code == 200
        first, second = await messages(robot, "tok-signed")
        assert first["accepted"] and second["accepted"], "the fake verified both signatures"
        title, text = first["body"]["markdown"]["title"], first["body"]["markdown"]["text"]
        assert title == "[告警中:1] ApiHighErrorRate 严重"
        expected = [
            zh("摘要", "ApiHighErrorRate: API 5xx above 1%"),
            zh("详情", "5xx share is 5.2% over the last 5m"),
            zh("标签", "instance=`api:3000`"),
            zh("开始时间", "2025-01-01 18:00:00 UTC+08:00"),
            zh("已持续", ""),
            "[仪表盘](https://grafana.example/d/api)",
            "[处理手册](https://runbooks.example/ApiHighErrorRate)",
            "[静默](http://alertmanager.example:9093/#/silences/new?filter=%7Balertname",
            "@13800000000",
        ]
        for part in expected:
            assert part in text
        assert first["at"]["atMobiles"] == ["13800000000"]
        assert second["body"]["markdown"]["title"] == "[已恢复] ApiHighErrorRate 严重"
        assert zh("持续了", "7分\n") in second["body"]["markdown"]["text"]
        assert second["at"]["atMobiles"] == [], "nobody is paged for a resolved alert"

        assert r.sample("obsctl_relay_messages_sent_total", target="oncall") == 2
        assert r.sample("obsctl_relay_alerts_received_total", target="oncall", status="firing") == 1
        assert (
            r.sample("obsctl_relay_alerts_received_total", target="oncall", status="resolved") == 1
        )
        assert r.sample("obsctl_relay_send_duration_seconds_count", target="oncall") == 2
        assert (
            r.sample("obsctl_relay_notifications_total", target="oncall", outcome="delivered") == 2
        )
        health = (await r.http.get("/health")).json()
        assert health == {
            "status": "ok",
            "targets": {"oncall": {"state": "ok", "queue_depth": 0, "last_failure": None}},
        }


async def test_deliveries_api_lists_only_what_dingtalk_accepted(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    started = time.time()
    targets = {"oncall": {"token": "tok-signed", "secret": SECRET}, "bad": {"token": "tok-signed"}}
    async with relay(dingtalk, targets) as r:
        assert (await r.post("oncall", notification(alert()))).status_code == 200
        # An unsigned message to a signing robot is refused by DingTalk: not a delivery.
        assert (await r.post("bad", notification(alert("QueueStalled")))).status_code == 503

        listed = (await r.http.get("/api/v1/deliveries", params={"since": started})).json()
        [delivery] = listed["deliveries"]
        assert delivery["target"] == "oncall" and delivery["alerts"] == 1
        assert delivery["title"] == "[告警中:1] ApiHighErrorRate 严重"
        assert "ApiHighErrorRate: API 5xx above 1%" in delivery["text"]
        assert started <= delivery["sent_at"] <= time.time()
        later = {"since": delivery["sent_at"] + 0.001}
        assert (await r.http.get("/api/v1/deliveries", params=later)).json()["deliveries"] == []
        one = {"since": started, "target": "bad"}
        assert (await r.http.get("/api/v1/deliveries", params=one)).json()["deliveries"] == []

        anonymous = await r.http.get("/api/v1/deliveries", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        bad_since = await r.http.get("/api/v1/deliveries", params={"since": "yesterday"})
        assert bad_since.status_code == 400 and "unix time" in bad_since.json()["error"]
        unknown = await r.http.get("/api/v1/deliveries", params={"target": "nope"})
        assert unknown.status_code == 404


async def test_keyword_robot_in_english_with_a_mention_from_the_alert_label(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    team = {"token": "tok-keyword", "keyword": "obsctl", "language": "en-US"}
    async with relay(dingtalk, {"team": team}) as r:
        response = await r.post(
            "team",
            notification(alert("QueueBacklogHigh", "warning", labels={"mention": "13900000001"})),
        )

        assert response.status_code == 200, response.text
        [sent] = await messages(robot, "tok-keyword")
        assert sent["accepted"], "the fake checks the keyword"
        assert sent["body"]["markdown"]["title"] == "obsctl [FIRING:1] QueueBacklogHigh warning"
        text = sent["body"]["markdown"]["text"]
        assert "- **Summary**: QueueBacklogHigh: API 5xx above 1%" in text
        assert "- **Started**: 2025-01-01 18:00:00 UTC+08:00" in text
        assert "[Runbook](https://runbooks.example/QueueBacklogHigh)" in text
        assert "@13900000001" in text
        assert sent["at"]["atMobiles"] == ["13900000001"]


async def test_wrong_secret_is_a_failure_answered_503_without_leaking_it(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    wrong = "SECwrong0000000000000000000000000000000000000000000000000000000000"
    async with relay(dingtalk, {"oncall": {"token": "tok-signed", "secret": wrong}}) as r:
        response = await r.post("oncall", notification(alert()))

        assert response.status_code == 503
        error = response.json()["error"]
        assert (
            "DingTalk robot 'oncall' is failing (errcode: errcode 310000: sign not match)" in error
        )
        assert await messages(robot, "tok-signed", accepted=True) == []
        assert len(await messages(robot, "tok-signed", accepted=False)) >= 2, "retried"
        health = (await r.http.get("/health")).json()["targets"]["oncall"]
        assert health["state"] == "failing" and health["queue_depth"] == 0
        assert (
            r.sample("obsctl_relay_messages_failed_total", target="oncall", reason="errcode") >= 2
        )
        assert r.sample("obsctl_relay_retries_total", target="oncall") >= 1
        assert (
            r.sample("obsctl_relay_notifications_total", target="oncall", outcome="rejected") == 1
        )
        exposed = (await r.http.get("/metrics")).text + json.dumps(health) + response.text
        for secret in (wrong, "tok-signed", TOKEN):
            assert secret not in exposed


# --- failures and retries --------------------------------------------------------------------


async def test_outage_answers_503_and_alertmanagers_retry_delivers_exactly_once(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    payload = notification(alert("ProviderDown", labels={"provider": "alpha"}))
    async with relay(dingtalk, {"oncall": {"token": "tok-flaky", "secret": SECRET}}) as r:
        await robot.put("/_control", json={"mode": "http_500", "count": None})
        refused = await r.post("oncall", payload)

        assert refused.status_code == 503
        assert "http_status: HTTP 500" in refused.json()["error"]
        attempts = await messages(robot, "tok-flaky")
        assert len(attempts) >= 2 and all(m["fault"] == "http_500" for m in attempts)

        await robot.put("/_control", json={"mode": "ok"})
        await asyncio.sleep(1.5)  # longer than the backoff: a withdrawn alert must not reappear
        assert await messages(robot, "tok-flaky", accepted=True) == []
        assert (await r.http.get("/health")).json()["targets"]["oncall"]["queue_depth"] == 0

        retried = await r.post("oncall", payload)  # what Alertmanager does after a 5xx

        assert retried.status_code == 200
        await asyncio.sleep(0.5)
        [delivered] = await messages(robot, "tok-flaky", accepted=True)
        assert "ProviderDown" in delivered["body"]["markdown"]["title"]
        assert (
            r.sample("obsctl_relay_messages_failed_total", target="oncall", reason="http_status")
            >= 2
        )
        assert r.sample("obsctl_relay_messages_sent_total", target="oncall") == 1


@pytest.mark.parametrize("fault", ["http_500", "timeout"])
async def test_a_brief_fault_is_retried_within_the_deadline(
    dingtalk: RunningFake, robot: httpx.AsyncClient, fault: str
) -> None:
    async with relay(
        dingtalk,
        {"oncall": {"token": "tok-flaky", "secret": SECRET}},
        webhook={"deliver_timeout": "3s"},
    ) as r:
        await robot.put("/_control", json={"mode": fault, "count": 1})
        response = await r.post("oncall", notification(alert()))

        assert response.status_code == 200, response.text
        assert [m["accepted"] for m in await messages(robot, "tok-flaky")] == [False, True]
        assert r.sample("obsctl_relay_retries_total", target="oncall") == 1
        reason = "timeout" if fault == "timeout" else "http_status"
        assert r.sample("obsctl_relay_messages_failed_total", target="oncall", reason=reason) == 1


async def test_rate_limit_answer_backs_off_queues_and_delivers_once(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    async with relay(
        dingtalk,
        {"oncall": {"token": "tok-flaky", "secret": SECRET}},
        delivery={"rate_limited_backoff": "2.5s"},
    ) as r:
        await robot.put("/_control", json={"mode": "rate_limited", "count": 1})
        started = time.monotonic()
        response = await r.post("oncall", notification(alert()))

        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        assert r.sample("obsctl_relay_rate_limited_total", target="oncall") == 1
        assert (await r.http.get("/health")).json()["targets"]["oncall"]["state"] == "pacing"
        while not await messages(robot, "tok-flaky", accepted=True):
            assert time.monotonic() - started < 6, "the queued alert was never delivered"
            await asyncio.sleep(0.1)
        assert time.monotonic() - started >= 2.4, "it waited out the rate-limit backoff"
        records = await messages(robot, "tok-flaky")
        assert [(m["errcode"], m["accepted"]) for m in records] == [(410100, False), (0, True)]


# --- DingTalk's limits -----------------------------------------------------------------------


async def test_burst_of_200_alerts_is_merged_under_the_rate_limit_and_none_is_lost(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    async with relay(
        dingtalk,
        {"team": {"token": "tok-burst", "secret": SECRET}},
        webhook={"deliver_timeout": "8s"},
    ) as r:
        started = time.monotonic()
        names = [f"Burst{i:03d}" for i in range(200)]

        async def fire(i: int, name: str) -> httpx.Response:
            # Spread over 2 s like many groups flushing: sending each at once would exhaust
            # the budget in a second and leave the rest waiting a full minute.
            await asyncio.sleep(i * 0.01)
            return await r.post(
                "team", notification(alert(name, "warning", labels={"queue": name}))
            )

        answers = await asyncio.gather(*(fire(i, name) for i, name in enumerate(names)))

        # 200 when delivered within the deadline, 202 if a slow machine made it wait longer.
        assert {a.status_code for a in answers} <= {200, 202}, [a.text for a in answers][:3]
        missing = names
        while missing and time.monotonic() - started < 30:  # unpaced, most would wait 60 s
            records = await messages(robot, "tok-burst")
            texts = "".join(m["body"]["markdown"]["text"] for m in records)
            missing = [n for n in names if f"#### 🔴 {n} ·" not in texts]
            await asyncio.sleep(0.2)
        assert missing == []
        assert all(texts.count(f"#### 🔴 {n} ·") == 1 for n in names)
        assert all(m["accepted"] for m in records), "never hit DingTalk's limit"
        assert len(records) <= 20
        assert r.sample("obsctl_relay_alerts_received_total", target="team", status="firing") == 200


async def test_content_over_20000_bytes_is_split_with_an_n_more_line(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    many = [alert(f"Big{i:02d}", description="数据库连接池耗尽 " * 40) for i in range(60)]
    async with relay(dingtalk, {"oncall": {"token": "tok-big", "secret": SECRET}}) as r:
        response = await r.post("oncall", notification(*many))

        assert response.status_code == 200, response.text
        records = await messages(robot, "tok-big")
        assert len(records) >= 2 and all(m["accepted"] for m in records)
        sizes = [len(json.dumps(m["body"], ensure_ascii=False).encode()) for m in records]
        assert max(sizes) <= 20_000
        first = records[0]["body"]["markdown"]["text"]
        shown = first.count("#### 🔴")
        assert f"…… 还有 {60 - shown} 条告警将在后续消息中发送" in first
        texts = "".join(m["body"]["markdown"]["text"] for m in records)
        assert all(texts.count(f"#### 🔴 Big{i:02d} ·") == 1 for i in range(60))


# --- bad requests ----------------------------------------------------------------------------


async def test_bad_requests_get_a_clear_4xx_and_the_relay_keeps_serving(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    async with relay(dingtalk, {"oncall": {"token": "tok-signed", "secret": SECRET}}) as r:
        good = notification(alert())
        wrong_token = {"Authorization": "Bearer relay-token-wrong"}
        no_scheme = {"Authorization": TOKEN}
        cases = [
            (await r.http.post("/dingtalk/oncall", content=b'{"version": "4", "alerts": ['), 400,
             "body is not valid JSON"),
            (await r.post("oncall", {**good, "version": "3"}), 422,
             'version: expected "4" (the Alertmanager webhook format), found \'3\''),
            (await r.post("oncall", {**good, "alerts": [{"labels": {}}]}), 422,
             "alerts.0.status: Field required"),
            (await r.http.post("/dingtalk/oncall", content=b"x" * 10_000_000), 413,
             "body larger than the 1048576-byte limit (webhook.max_body_bytes)"),
            (await r.http.post("/dingtalk/oncall", json=good, headers=wrong_token), 401,
             "missing or wrong bearer token"),
            (await r.http.post("/dingtalk/oncall", json=good, headers=no_scheme), 401,
             "missing or wrong bearer token"),
            (await r.http.post("/dingtalk/oncall", json=good, headers={"Authorization": ""}), 401,
             "missing or wrong bearer token"),
            (await r.post("pager", good), 404,
             "unknown target 'pager'; configured targets: oncall"),
        ]  # fmt: skip
        for response, status, message in cases:
            assert response.status_code == status, response.text
            assert message in response.json()["error"]

        after = await r.post("oncall", good)

        assert after.status_code == 200
        assert len(await messages(robot, "tok-signed", accepted=True)) == 1
        errors = {
            reason: r.sample("obsctl_relay_webhook_errors_total", reason=reason)
            for reason in ("bad_json", "bad_payload", "too_large", "unauthorized", "unknown_target")
        }
        assert errors == {"bad_json": 1, "bad_payload": 2, "too_large": 1, "unauthorized": 3,
                          "unknown_target": 1}  # fmt: skip
        metrics = (await r.http.get("/metrics")).text
        assert 'obsctl_relay_messages_sent_total{target="oncall"} 1.0' in metrics
        assert 'obsctl_relay_queue_depth{target="oncall"} 0.0' in metrics
