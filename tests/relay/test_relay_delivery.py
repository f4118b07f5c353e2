"""The relay in process, delivering to the DingTalk robot fake running as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
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
    "tok-fast": {"secret": SECRET, "rate_limit_per_minute": 1_000},
    "tok-slow": {"secret": SECRET},
}
TRUSTED = [
    "https://runbooks.example/",
    "https://grafana.example/",
    "http://alertmanager.example:9093",
]


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

    async def health(self) -> dict[str, Any]:
        found: dict[str, Any] = (await self.http.get("/health")).json()
        return found


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
    spool = tempfile.mkdtemp(prefix="obsctl-relay-spool-")
    raw = _merge(
        {
            "listen": f"127.0.0.1:{port}",
            "webhook": {"token": TOKEN},
            "delivery": {
                "send_timeout": "1s",
                "retry": {"base": "0.2s", "max": "1s"},
                "spool_dir": spool,
            },
            "render": {"templates_dir": str(TEMPLATES), "link_prefixes": TRUSTED},
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


async def delivered(
    robot: httpx.AsyncClient, token: str, count: int, timeout: float = 10.0
) -> list[Any]:
    """The accepted messages of a robot once there are at least `count` of them."""
    deadline = time.monotonic() + timeout
    found = await messages(robot, token, accepted=True)
    while len(found) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} messages after {timeout}s"
        await asyncio.sleep(0.05)
        found = await messages(robot, token, accepted=True)
    return found


def accepted_202(response: httpx.Response, alerts: int = 1) -> None:
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued" and response.json()["alerts"] == alerts


# --- delivery and content --------------------------------------------------------------------


async def test_signed_firing_then_resolved_message_in_chinese(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    oncall = {"token": "tok-signed", "secret": SECRET, "mentions": {"mobiles": ["13800000000"]}}
    async with relay(dingtalk, {"oncall": oncall}) as r:
        fired = await r.post("oncall", notification(alert(labels={"instance": "api:3000"})))
        accepted_202(fired)
        await delivered(robot, "tok-signed", 1)
        resolved = await r.post("oncall", notification(alert(status="resolved")))
        accepted_202(resolved)

        first, second = await delivered(robot, "tok-signed", 2)
        assert len(await messages(robot, "tok-signed")) == 2, "the fake verified both signatures"
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
        assert "[查询]" not in text, "http://prometheus.example is not a trusted link prefix"
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
        assert r.sample("obsctl_relay_notifications_total", target="oncall", outcome="queued") == 2
        assert r.sample("obsctl_relay_spool_open_alerts") == 0
        health = await r.health()
        assert health == {
            "status": "ok",
            "spool": "disk",
            "targets": {
                "oncall": {
                    "state": "ok",
                    "queue_depth": 0,
                    "oldest_queued_seconds": 0.0,
                    "last_failure": None,
                    "last_failure_seconds_ago": None,
                }
            },
        }


async def test_deliveries_api_lists_only_what_dingtalk_accepted(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    started = time.time()
    targets = {"oncall": {"token": "tok-signed", "secret": SECRET}, "bad": {"token": "tok-signed"}}
    async with relay(dingtalk, targets) as r:
        accepted_202(await r.post("oncall", notification(alert())))
        # An unsigned message to a signing robot is refused by DingTalk: not a delivery.
        accepted_202(await r.post("bad", notification(alert("QueueStalled"))))
        await delivered(robot, "tok-signed", 1)
        while (await r.health())["targets"]["bad"]["state"] != "failing":
            await asyncio.sleep(0.05)

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
    team = {
        "token": "tok-keyword",
        "keyword": "obsctl",
        "language": "en-US",
        "mentionable": ["13900000001"],
    }
    async with relay(dingtalk, {"team": team}) as r:
        mention = {"mention": "13900000001,13900000009"}
        accepted_202(
            await r.post("team", notification(alert("QueueBacklogHigh", "warning", labels=mention)))
        )

        [sent] = await delivered(robot, "tok-keyword", 1)
        assert sent["body"]["markdown"]["title"] == "obsctl [FIRING:1] QueueBacklogHigh warning"
        text = sent["body"]["markdown"]["text"]
        assert "- **Summary**: QueueBacklogHigh: API 5xx above 1%" in text
        assert "- **Started**: 2025-01-01 18:00:00 UTC+08:00" in text
        assert "[Runbook](https://runbooks.example/QueueBacklogHigh)" in text
        assert "@13900000001" in text and "@13900000009" not in text
        assert sent["at"]["atMobiles"] == ["13900000001"], "only a mentionable mobile is paged"


async def test_wrong_secret_is_retried_reported_failing_and_never_leaked(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    wrong = "SECwrong0000000000000000000000000000000000000000000000000000000000"
    async with relay(dingtalk, {"oncall": {"token": "tok-signed", "secret": wrong}}) as r:
        accepted_202(await r.post("oncall", notification(alert())))
        while len(await messages(robot, "tok-signed", accepted=False)) < 2:
            await asyncio.sleep(0.05)

        answer = await r.http.get("/health")
        health = answer.json()
        assert answer.status_code == 503 and health["status"] == "degraded"
        oncall = health["targets"]["oncall"]
        assert oncall["state"] == "failing" and oncall["queue_depth"] == 1
        assert oncall["last_failure"] == "errcode: errcode 310000: sign not match"
        assert 0 <= oncall["last_failure_seconds_ago"] < 5
        assert await messages(robot, "tok-signed", accepted=True) == []
        assert (
            r.sample("obsctl_relay_messages_failed_total", target="oncall", reason="errcode") >= 2
        )
        assert r.sample("obsctl_relay_retries_total", target="oncall") >= 1
        assert r.sample("obsctl_relay_target_state", target="oncall", state="failing") == 1
        assert r.sample("obsctl_relay_oldest_queued_seconds", target="oncall") > 0
        exposed = (await r.http.get("/metrics")).text + json.dumps(health)
        for secret in (wrong, "tok-signed", TOKEN):
            assert secret not in exposed


# --- failures and retries --------------------------------------------------------------------


async def test_an_outage_is_retried_by_the_relay_and_delivers_exactly_once(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    payload = notification(alert("ProviderDown", labels={"provider": "alpha"}))
    async with relay(dingtalk, {"oncall": {"token": "tok-flaky", "secret": SECRET}}) as r:
        await robot.put("/_control", json={"mode": "http_500", "count": None})
        accepted_202(await r.post("oncall", payload))
        while len(await messages(robot, "tok-flaky")) < 3:
            await asyncio.sleep(0.05)
        health = await r.health()
        assert health["targets"]["oncall"]["state"] == "failing"
        assert "http_status: HTTP 500" in health["targets"]["oncall"]["last_failure"]
        accepted_202(await r.post("oncall", payload))  # Alertmanager's next group update
        assert (await r.health())["targets"]["oncall"]["queue_depth"] == 1, "merged, not doubled"

        await robot.put("/_control", json={"mode": "ok"})

        [message] = await delivered(robot, "tok-flaky", 1)
        assert "ProviderDown" in message["body"]["markdown"]["title"]
        await asyncio.sleep(1.5)  # longer than the backoff: a second copy would have gone out
        assert len(await messages(robot, "tok-flaky", accepted=True)) == 1
        assert (
            r.sample("obsctl_relay_messages_failed_total", target="oncall", reason="http_status")
            >= 3
        )
        assert r.sample("obsctl_relay_messages_sent_total", target="oncall") == 1
        assert r.sample("obsctl_relay_alerts_merged_total", target="oncall") == 1
        assert (await r.health())["status"] == "ok"


@pytest.mark.parametrize("fault", ["http_500", "timeout"])
async def test_a_brief_fault_is_retried(
    dingtalk: RunningFake, robot: httpx.AsyncClient, fault: str
) -> None:
    async with relay(dingtalk, {"oncall": {"token": "tok-flaky", "secret": SECRET}}) as r:
        await robot.put("/_control", json={"mode": fault, "count": 1})
        accepted_202(await r.post("oncall", notification(alert())))

        await delivered(robot, "tok-flaky", 1)
        assert [m["accepted"] for m in await messages(robot, "tok-flaky")] == [False, True]
        assert r.sample("obsctl_relay_retries_total", target="oncall") == 1
        reason = "timeout" if fault == "timeout" else "http_status"
        assert r.sample("obsctl_relay_messages_failed_total", target="oncall", reason=reason) == 1


async def test_rate_limit_answer_blocks_the_robot_then_delivers_once(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    async with relay(
        dingtalk,
        {"oncall": {"token": "tok-flaky", "secret": SECRET}},
        delivery={"rate_limited_backoff": "2.5s"},
    ) as r:
        await robot.put("/_control", json={"mode": "rate_limited", "count": 1})
        started = time.monotonic()
        accepted_202(await r.post("oncall", notification(alert())))
        while not await messages(robot, "tok-flaky"):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)

        assert r.sample("obsctl_relay_rate_limited_total", target="oncall") == 1
        health = await r.health()
        assert health["status"] == "degraded"
        assert health["targets"]["oncall"]["state"] == "throttled"
        await delivered(robot, "tok-flaky", 1, timeout=6)
        assert time.monotonic() - started >= 2.4, "it waited out the rate-limit backoff"
        records = await messages(robot, "tok-flaky")
        assert [(m["errcode"], m["accepted"]) for m in records] == [(410100, False), (0, True)]


# --- queueing by identity and priority -----------------------------------------------------


def group(size: int, revision: int, severity: str = "warning") -> dict[str, Any]:
    """One Alertmanager group of `size` alerts as re-sent on its `revision`-th change."""
    alerts = []
    for i in range(size):
        a = alert(f"Disk{i:03d}", severity, labels={"instance": f"host-{i}"})
        a["annotations"]["description"] = f"revision {revision}"
        alerts.append(a)
    return notification(*alerts)


async def test_group_updates_replace_queued_copies_instead_of_piling_up(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    async with relay(
        dingtalk,
        {"team": {"token": "tok-slow", "secret": SECRET}},
        delivery={"rate_limit_per_minute": 1},
    ) as r:
        accepted_202(await r.post("team", group(109, 0)), alerts=109)
        await delivered(robot, "tok-slow", 1)  # the one send this minute allows
        first = (await messages(robot, "tok-slow", accepted=True))[0]["body"]["markdown"]["text"]
        sent_first = first.count("#### 🔴")
        for revision in range(1, 10):
            response = await r.post("team", group(109, revision))
            accepted_202(response, alerts=109)

        depth = (await r.health())["targets"]["team"]["queue_depth"]
        assert depth == 109 - sent_first + sent_first, "updates of sent alerts queue once"
        assert r.sample("obsctl_relay_alerts_merged_total", target="team") == 109 * 9 - sent_first
        assert (
            r.sample("obsctl_relay_alerts_received_total", target="team", status="firing") == 1090
        )


async def test_criticals_go_first_and_a_resolved_never_overtakes_its_firing(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    async with relay(
        dingtalk,
        {"team": {"token": "tok-fast", "secret": SECRET, "language": "en-US"}},
        delivery={"rate_limited_backoff": "1s", "rate_limit_per_minute": 1_000},
    ) as r:
        await robot.put("/_control", json={"mode": "rate_limited", "count": 1})
        accepted_202(await r.post("team", notification(alert("Opener", "info"))))
        while (await r.health())["targets"]["team"]["state"] != "throttled":
            await asyncio.sleep(0.02)
        long = "x" * 3_000  # a handful of alerts per message, so order across messages shows
        warnings = [alert(f"Warn{i:02d}", "warning", description=long) for i in range(12)]
        accepted_202(await r.post("team", notification(*warnings)), alerts=12)
        flapping = alert("Flap", "warning", description=long)
        accepted_202(await r.post("team", notification(flapping)))
        accepted_202(await r.post("team", notification(alert("Flap", "warning", "resolved"))))
        accepted_202(await r.post("team", notification(alert("Urgent", "critical"))))

        records = await delivered(robot, "tok-fast", 2)
        while (await r.health())["targets"]["team"]["queue_depth"]:
            await asyncio.sleep(0.05)
        records = await messages(robot, "tok-fast", accepted=True)
        texts = [m["body"]["markdown"]["text"] for m in records]
        everything = "".join(texts)
        assert "Urgent · critical · firing" in texts[0], "the critical left first"
        assert everything.index("Flap · warning · firing") < everything.index(
            "Flap · warning · resolved"
        )
        for name in [f"Warn{i:02d}" for i in range(12)] + ["Opener", "Urgent"]:
            assert everything.count(f"#### 🔴 {name} ·") == 1


# --- DingTalk's limits -----------------------------------------------------------------------


async def test_burst_of_200_alerts_is_merged_under_the_rate_limit_and_none_is_lost(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    # A send that times out may still have been delivered (delivery is at least once), so the
    # exactly-once count below needs every answer in time, also on a loaded machine.
    patient = {"send_timeout": "10s"}
    async with relay(
        dingtalk, {"team": {"token": "tok-burst", "secret": SECRET}}, delivery=patient
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

        assert {a.status_code for a in answers} == {202}, [a.text for a in answers][:3]
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
        accepted_202(await r.post("oncall", notification(*many)), alerts=60)

        records = await delivered(robot, "tok-big", 2)
        while "Big59" not in "".join(m["body"]["markdown"]["text"] for m in records):
            await asyncio.sleep(0.05)
            records = await messages(robot, "tok-big", accepted=True)
        sizes = [len(json.dumps(m["body"], ensure_ascii=False).encode()) for m in records]
        assert max(sizes) <= 20_000
        first = records[0]["body"]["markdown"]["text"]
        shown = first.count("#### 🔴")
        assert f"…… 还有 {60 - shown} 条告警将在后续消息中发送" in first
        texts = "".join(m["body"]["markdown"]["text"] for m in records)
        assert all(texts.count(f"#### 🔴 Big{i:02d} ·") == 1 for i in range(60))


async def test_a_group_of_1500_alerts_is_accepted_and_every_alert_delivered_once(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    alerts = [
        alert(
            f"Host{i:04d}",
            "warning",
            labels={"instance": f"10.0.{i // 250}.{i % 250}:9100"},
            description="node filesystem almost full " * 20,
        )
        for i in range(1_500)
    ]
    body = notification(*alerts)
    assert len(json.dumps(body)) > 1_048_576, "more than the old 1 MiB limit"
    async with relay(
        dingtalk,
        {"team": {"token": "tok-fast", "secret": SECRET}},
        delivery={"rate_limit_per_minute": 1_000},
    ) as r:
        accepted_202(await r.post("team", body), alerts=1_500)

        deadline = time.monotonic() + 60
        texts = ""
        while time.monotonic() < deadline:
            records = await messages(robot, "tok-fast", accepted=True)
            texts = "".join(m["body"]["markdown"]["text"] for m in records)
            if "Host1499" in texts and (await r.health())["targets"]["team"]["queue_depth"] == 0:
                break
            await asyncio.sleep(0.2)
        assert all(texts.count(f"#### 🔴 Host{i:04d} ·") == 1 for i in range(1_500))


async def test_a_full_queue_answers_503_so_alertmanager_keeps_the_notification(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    async with relay(
        dingtalk,
        {"team": {"token": "tok-slow", "secret": SECRET}},
        delivery={"rate_limit_per_minute": 1, "max_queue": 10},
    ) as r:
        accepted_202(await r.post("team", group(10, 0)), alerts=10)
        await delivered(robot, "tok-slow", 1)  # and now the budget is spent for a minute
        accepted_202(await r.post("team", group(10, 1)), alerts=10)
        same_again = await r.post("team", group(10, 2))  # only newer copies: always fits
        one_more = await r.post("team", notification(alert("Eleventh")))

        accepted_202(same_again, alerts=10)
        assert one_more.status_code == 503
        assert "delivery.max_queue 10" in one_more.json()["error"]
        assert r.sample("obsctl_relay_notifications_total", target="team", outcome="rejected") == 1


# --- bad requests ----------------------------------------------------------------------------


async def test_bad_requests_get_a_clear_4xx_and_the_relay_keeps_serving(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    async with relay(dingtalk, {"oncall": {"token": "tok-signed", "secret": SECRET}}) as r:
        good = notification(alert())
        wrong_token = {"Authorization": "Bearer relay-token-wrong"}
        no_scheme = {"Authorization": TOKEN}
        nested = b'{"version": "4", "alerts": ' + b"[" * 990 + b"]" * 990 + b"}"
        cases = [
            (await r.http.post("/dingtalk/oncall", content=b'{"version": "4", "alerts": ['), 400,
             "body is not valid JSON"),
            (await r.post("oncall", {**good, "version": "3"}), 422,
             'version: expected "4" (the Alertmanager webhook format), found \'3\''),
            (await r.post("oncall", {**good, "alerts": [{"labels": {}}]}), 422,
             "alerts.0.status: Field required"),
            (await r.http.post("/dingtalk/oncall", content=b"x" * 10_000_000), 413,
             "body larger than the 8388608-byte limit (webhook.max_body_bytes)"),
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
        deep = await r.http.post("/dingtalk/oncall", content=nested)
        assert deep.status_code in (400, 422) and "error" in deep.json()

        accepted_202(await r.post("oncall", good))

        await delivered(robot, "tok-signed", 1)
        errors = {
            reason: r.sample("obsctl_relay_webhook_errors_total", reason=reason)
            for reason in ("bad_json", "bad_payload", "too_large", "unauthorized", "unknown_target")
        }
        assert errors["bad_json"] + errors["bad_payload"] == 4
        assert {k: v for k, v in errors.items() if k not in ("bad_json", "bad_payload")} == {
            "too_large": 1, "unauthorized": 3, "unknown_target": 1,
        }  # fmt: skip
        metrics = (await r.http.get("/metrics")).text
        assert 'obsctl_relay_messages_sent_total{target="oncall"} 1.0' in metrics
        assert 'obsctl_relay_queue_depth{target="oncall"} 0.0' in metrics


async def test_a_poison_alert_is_delivered_and_never_blocks_the_ones_behind_it(
    dingtalk: RunningFake, robot: httpx.AsyncClient
) -> None:
    poison = [
        alert("FarFuture", labels={"instance": "a"}) | {"startsAt": "9999-12-31T23:59:59Z"},
        alert("NoZone", labels={"instance": "b"}) | {"startsAt": "2026-12-01T10:00:00"},
        alert("FarEnd", status="resolved") | {"endsAt": "9999-12-31T23:59:59Z"},
        alert("Nul\x00Name", labels={"instance": "x\x00y"}),
    ]
    async with relay(dingtalk, {"oncall": {"token": "tok-signed", "secret": SECRET}}) as r:
        for bad in poison:
            accepted_202(await r.post("oncall", notification(bad)))
        accepted_202(await r.post("oncall", notification(alert("AfterThePoison"))))

        records = await delivered(robot, "tok-signed", 1)
        while "AfterThePoison" not in "".join(m["body"]["markdown"]["text"] for m in records):
            await asyncio.sleep(0.05)
            records = await messages(robot, "tok-signed", accepted=True)
        texts = "".join(m["body"]["markdown"]["text"] for m in records)
        for name in ("FarFuture", "NoZone", "FarEnd", "NulName", "AfterThePoison"):
            assert name in texts
        assert "\x00" not in json.dumps([m["body"] for m in records], ensure_ascii=False)
        assert (await r.health())["status"] == "ok"
        assert await messages(robot, "tok-signed", accepted=False) == []
