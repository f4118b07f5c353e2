"""Alert delivery on the real stack: inhibition, an HA pair, retries through a DingTalk outage."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from obsctl.stack.fakes.launcher import free_port

from conftest import RunningStack, wait_for

pytestmark = pytest.mark.needs_tools("prometheus-alertmanager")


def _alert(name: str, **labels: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} test", "description": "from the test suite"},
        "startsAt": now.isoformat(),
        "endsAt": (now + dt.timedelta(minutes=5)).isoformat(),
        "generatorURL": "http://127.0.0.1/test",
    }


def _post(alertmanager: str, *alerts: dict[str, Any]) -> None:
    httpx.post(f"{alertmanager}/api/v2/alerts", json=list(alerts), timeout=5).raise_for_status()


def _messages_about(stack: RunningStack, marker: str, token_key: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.env['DINGTALK_SINK_URL']}/_messages",
        params={"token": stack.env[token_key], "accepted": "true"},
        timeout=5,
    )
    return [m for m in response.json()["messages"] if marker in str(m.get("body"))]


def test_dependency_down_inhibits_the_alerts_that_depend_on_it(stack: RunningStack) -> None:
    am = stack.env["ALERTMANAGER_URL"]
    run = uuid.uuid4().hex[:8]
    slow = _alert("MySQLProbeSlow", severity="warning", team="sre", dependency="mysql", run=run)

    # A Redis outage does not silence a MySQL alert; a MySQL outage does.
    def down(dependency: str) -> dict[str, Any]:
        return _alert("DependencyDown", severity="critical", team="sre", dependency=dependency,
                      run=run)  # fmt: skip

    _post(am, down("redis"), slow)

    def states(expected: int, inhibited: bool) -> dict[str, list[str]] | None:
        alerts = httpx.get(f"{am}/api/v2/alerts", params={"filter": f'run="{run}"'}).json()
        found = {
            f"{a['labels']['alertname']}/{a['labels']['dependency']}": a["status"]["inhibitedBy"]
            for a in alerts
        }
        if len(found) != expected or bool(found["MySQLProbeSlow/mysql"]) != inhibited:
            return None
        return found

    wait_for("MySQLProbeSlow shown, not inhibited", lambda: states(2, False), timeout=20)
    _post(am, down("mysql"), slow)
    found = wait_for("MySQLProbeSlow inhibited", lambda: states(3, True), timeout=20)
    assert not found["DependencyDown/mysql"] and not found["DependencyDown/redis"]


@pytest.fixture
def ha_pair(stack: RunningStack, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two clustered Alertmanagers with the stack's generated config, sending to its relay."""
    config = stack.root / "alertmanager" / "alertmanager.yml"
    ports = [free_port() for _ in range(4)]
    procs = []
    for index in range(2):
        web, cluster = ports[index], ports[2 + index]
        peer = ports[2 + (1 - index)]
        argv = [
            "prometheus-alertmanager", f"--config.file={config}",
            f"--storage.path={tmp_path / f'am{index}'}",
            f"--web.listen-address=127.0.0.1:{web}",
            f"--cluster.listen-address=127.0.0.1:{cluster}",
            f"--cluster.peer=127.0.0.1:{peer}", "--cluster.settle-timeout=5s",
            "--cluster.gossip-interval=200ms", "--cluster.pushpull-interval=2s",
        ]  # fmt: skip
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    urls = [f"http://127.0.0.1:{p}" for p in ports[:2]]
    try:
        for url in urls:

            def clustered(url: str = url) -> bool:
                try:
                    status = httpx.get(f"{url}/api/v2/status", timeout=1).json()
                except httpx.HTTPError:
                    return False
                # "ready" once settled: the pair must agree before the first notification.
                cluster = status["cluster"]
                return len(cluster.get("peers", [])) == 2 and cluster.get("status") == "ready"

            wait_for("the two Alertmanagers to see each other and settle", clustered, timeout=30)
        yield urls[0], urls[1]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def test_an_ha_pair_delivers_one_dingtalk_message_per_notification(
    stack: RunningStack, ha_pair: tuple[str, str]
) -> None:
    marker = f"ha-{uuid.uuid4().hex[:8]}"
    alert = _alert("QueueBacklogHigh", severity="critical", team="ai", queue=marker)
    for url in ha_pair:
        _post(url, alert)
    wait_for(
        "the DingTalk message",
        lambda: _messages_about(stack, marker, "DINGTALK_ONCALL_TOKEN"),
        timeout=60,
    )
    time.sleep(15)  # long enough for a duplicate from the second peer to arrive
    assert len(_messages_about(stack, marker, "DINGTALK_ONCALL_TOKEN")) == 1


def test_the_relay_retries_through_a_dingtalk_outage_and_delivers_once(
    stack: RunningStack,
) -> None:
    sink = stack.env["DINGTALK_SINK_URL"]
    marker = f"outage-{uuid.uuid4().hex[:8]}"
    httpx.put(f"{sink}/_control", json={"mode": "http_500", "count": None}).raise_for_status()
    try:
        _post(
            stack.env["ALERTMANAGER_URL"],
            _alert("QueueStalled", severity="critical", team="ai", queue=marker),
        )

        def failed_attempts() -> int:
            records = httpx.get(f"{sink}/_messages", params={"accepted": "false"}).json()
            return sum(1 for m in records["messages"] if marker in str(m.get("body")))

        wait_for("the relay to try and fail", failed_attempts, timeout=60)
        assert not _messages_about(stack, marker, "DINGTALK_ONCALL_TOKEN")
    finally:
        httpx.put(f"{sink}/_control", json={"mode": "ok", "count": None}).raise_for_status()
    wait_for(
        "the relay's retry to deliver once the endpoint is back",
        lambda: _messages_about(stack, marker, "DINGTALK_ONCALL_TOKEN"),
        timeout=120,
    )
    time.sleep(10)
    assert len(_messages_about(stack, marker, "DINGTALK_ONCALL_TOKEN")) == 1


def test_a_group_of_1500_alerts_reaches_dingtalk_with_what_alertmanager_left_out(
    stack: RunningStack,
) -> None:
    name = f"DiskAlmostFull{uuid.uuid4().hex[:6]}"
    alerts = [
        _alert(name, severity="warning", team="sre", instance=f"10.1.{i // 250}.{i % 250}:9100")
        for i in range(1_500)
    ]
    for start in range(0, len(alerts), 500):  # Alertmanager's API takes them in any batches
        _post(stack.env["ALERTMANAGER_URL"], *alerts[start : start + 500])

    first = wait_for(
        "the group's first DingTalk message",
        lambda: _messages_about(stack, name, "DINGTALK_TEAM_SRE_TOKEN"),
        timeout=60,
    )[0]

    text = first["body"]["markdown"]["text"]
    assert "Alertmanager 未随通知发送本组另外 1400 条告警" in text
    assert text.count(f"#### 🔴 {name} ·") >= 1
