"""`obsctl relay` as a real process: --check, serving, a clean stop, the spool across a crash,
slow and bad clients, and random webhooks (no 5xx, no traceback, every accepted alert arrives)."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsctl.stack.fakes.launcher import RunningFake, free_port, start_fake

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "alertmanager" / "relay.yaml"
TEMPLATES = REPO / "alertmanager" / "templates"
SECRET = "SEC0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef0123456789abcdef"
TOKEN = "relay-token-process-77"


@pytest.fixture(scope="module")
def dingtalk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFake]:
    directory = tmp_path_factory.mktemp("dingtalk-process")
    robots = directory / "robots.json"
    robots.write_text(
        json.dumps(
            {
                "tok-oncall": {"secret": SECRET},
                "tok-team": {"secret": SECRET},
                "tok-limited6": {"secret": SECRET, "rate_limit_per_minute": 6},
            }
        ),
        encoding="utf-8",
    )
    fake = start_fake(
        "obsctl.stack.fakes.dingtalk",
        ["--robots", str(robots), "--store", str(directory / "messages.jsonl")],
    )
    yield fake
    fake.close()


def shipped_env(dingtalk: RunningFake, port: int, spool: Path) -> dict[str, str]:
    """The variables the shipped config reads, pointing at the fake."""
    env = {
        **os.environ,
        "OBSCTL_RELAY_TOKEN": TOKEN,
        "OBSCTL_RELAY_CLAIM_KEY": "claim-key-of-the-process-tests",
        "OBSCTL_RELAY_SMS_SECRET_ID": "AKIDunittests",
        "OBSCTL_RELAY_SMS_SECRET_KEY": "sms-key-of-the-tests",
        "OBSCTL_RELAY_LISTEN": f"127.0.0.1:{port}",
        "OBSCTL_RELAY_SPOOL_DIR": str(spool),
        "OBSCTL_RELAY_LINK_PREFIXES": "http://alertmanager.example:9093",
    }
    robots = [("ONCALL", "tok-oncall"), ("HEARTBEAT", "tok-x")]
    robots += [(f"TEAM_{team}", "tok-team") for team in ("PLATFORM", "AI", "SRE")]
    for target, token in robots:
        env[f"OBSCTL_DINGTALK_{target}_URL"] = (
            f"{dingtalk.base_url}/robot/send?access_token={token}"
        )
        env[f"OBSCTL_DINGTALK_{target}_SECRET"] = SECRET
    return env


class RelayProcess:
    """`python -m obsctl relay` started by a test, always stopped by it."""

    def __init__(self, config: Path, env: dict[str, str], port: int, log: Path) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "obsctl", "relay", "--config", str(config)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text()
            try:
                httpx.get(f"{self.base_url}/health", timeout=0.5)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"relay did not answer:\n{log.read_text()}")

    def post(self, target: str, payload: Any) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}/dingtalk/{target}",
            json=payload,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=15,
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def notification(name: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "oncall",
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": name, "severity": "critical", "team": "sre"},
                "annotations": {"summary": f"{name} summary", "description": "d"},
                "startsAt": "2025-01-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    """Poll `condition` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


def accepted(dingtalk: RunningFake, token: str, part: str = "title") -> list[str]:
    found = httpx.get(
        f"{dingtalk.base_url}/_messages", params={"token": token, "accepted": "true"}
    ).json()["messages"]
    return [m["body"]["markdown"][part] for m in found]


def test_check_accepts_the_shipped_config_and_names_what_is_missing(
    dingtalk: RunningFake, tmp_path: Path
) -> None:
    env = shipped_env(dingtalk, 18311, tmp_path / "spool")
    ok = subprocess.run(
        [sys.executable, "-m", "obsctl", "relay", "--config", str(SHIPPED), "--check"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    env.pop("OBSCTL_DINGTALK_TEAM_AI_URL")
    bad = subprocess.run(
        [sys.executable, "-m", "obsctl", "relay", "--config", str(SHIPPED), "--check"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip

    assert ok.returncode == 0, ok.stderr
    assert "valid; listen 127.0.0.1:18311" in ok.stdout
    assert "oncall: signed, zh-CN, @1 mobiles for critical" in ok.stdout
    assert f"spool: {tmp_path / 'spool'}" in ok.stdout
    assert "links under: http://127.0.0.1:3000, http://alertmanager.example:9093" in ok.stdout
    assert bad.returncode == 2
    assert (
        "targets.team-ai.url: environment variable OBSCTL_DINGTALK_TEAM_AI_URL is not set"
        in bad.stderr
    )
    assert SECRET not in ok.stdout + bad.stdout + bad.stderr


def test_shipped_config_serves_signed_messages_and_stops_cleanly(
    dingtalk: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    env = shipped_env(dingtalk, port, tmp_path / "spool")
    relay = RelayProcess(SHIPPED, env, port, tmp_path / "relay.log")
    try:
        response = relay.post("oncall", notification("DependencyDown"))

        assert response.status_code == 202, response.text
        wait_until(lambda: "[告警中:1] DependencyDown 严重" in accepted(dingtalk, "tok-oncall"))
        assert httpx.get(f"{relay.base_url}/health").json()["targets"]["heartbeat"]["state"] == "ok"
        assert (tmp_path / "spool" / "journal.jsonl").exists()
    finally:
        code = relay.stop()
    assert code == 0
    log = relay.log.read_text()
    assert "relay listening on" in log and "delivered a message with 1 alerts" in log
    for secret in (SECRET, TOKEN, "tok-oncall"):
        assert secret not in log


def write_config(path: Path, port: int, **delivery: Any) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "server": {"idle_timeout": "1s", "body_timeout": "1s", "max_connections": 20},
                "webhook": {"token": TOKEN},
                "delivery": {"send_timeout": "0.5s", "spool_dir": "spool", **delivery},
                "render": {"templates_dir": str(TEMPLATES), "language": "en-US"},
                "targets": {"team": {"secret": SECRET}},
            }
        ),
        encoding="utf-8",
    )


def team_env(dingtalk: RunningFake, token: str = "tok-team") -> dict[str, str]:
    robot_url = f"{dingtalk.base_url}/robot/send?access_token={token}"
    return {**os.environ, "OBSCTL_DINGTALK_TEAM_URL": robot_url}


def test_alerts_queued_under_the_rate_limit_survive_kill_9_and_none_is_sent_twice(
    dingtalk: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "relay.yaml"
    write_config(config, port, rate_limit_per_minute=1)
    env = team_env(dingtalk)
    before = len(accepted(dingtalk, "tok-team"))
    names = [f"Queued{i}" for i in range(5)]
    relay = RelayProcess(config, env, port, tmp_path / "relay.log")
    try:
        answers = [relay.post("team", notification(name)) for name in names]

        assert [a.status_code for a in answers] == [202] * 5, answers[0].text
        wait_until(lambda: len(accepted(dingtalk, "tok-team")) == before + 1)
        journal = (tmp_path / "spool" / "journal.jsonl").read_text()
        assert all(name in journal for name in names[1:])
    finally:
        relay.stop(signal.SIGKILL)

    write_config(config, port, rate_limit_per_minute=100)  # the operator raises the budget
    restarted = RelayProcess(config, env, port, tmp_path / "relay.log")
    try:
        wait_until(lambda: len(accepted(dingtalk, "tok-team")) >= before + 2)
        texts = accepted(dingtalk, "tok-team", part="text")[before:]
        text = " ".join(texts)
        assert all(text.count(f"#### 🔴 {name} ·") == 1 for name in names), texts
        wait_until(
            lambda: (
                httpx.get(f"{restarted.base_url}/health").json()["targets"]["team"]["queue_depth"]
                == 0
            )
        )
    finally:
        assert restarted.stop() == 0
    log = relay.log.read_text()
    assert "team: 4 queued alerts restored from the spool" in log


def test_a_restart_keeps_the_send_budget_so_dingtalk_never_throttles(
    dingtalk: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "relay.yaml"
    # Half the budget goes at once (see pacing): 3 sends now, then one every 15 s.
    write_config(config, port, rate_limit_per_minute=6)
    env = team_env(dingtalk, "tok-limited6")
    relay = RelayProcess(config, env, port, tmp_path / "relay.log")
    try:
        for i in range(3):
            assert relay.post("team", notification(f"Budget{i}")).status_code == 202
            wait_until(lambda i=i: len(accepted(dingtalk, "tok-limited6")) == i + 1)
    finally:
        assert relay.stop() == 0

    restarted = RelayProcess(config, env, port, tmp_path / "relay.log")
    try:
        assert restarted.post("team", notification("AfterRestart")).status_code == 202
        time.sleep(2)  # a relay that forgot its budget would send at once and be throttled
        health = httpx.get(f"{restarted.base_url}/health").json()["targets"]["team"]
        assert (health["state"], health["queue_depth"]) == ("pacing", 1)
        refused = httpx.get(
            f"{dingtalk.base_url}/_messages", params={"token": "tok-limited6", "accepted": "false"}
        ).json()["messages"]
        assert refused == []
        assert len(accepted(dingtalk, "tok-limited6")) == 3, "nothing went out at once"
    finally:
        assert restarted.stop() == 0


def test_a_second_relay_on_the_same_spool_refuses_to_start(
    dingtalk: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "relay.yaml"
    write_config(config, port)
    env = team_env(dingtalk)
    relay = RelayProcess(config, env, port, tmp_path / "relay.log")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "obsctl", "relay", "--config", str(config)],
            env={**env, "OBSCTL_RELAY_LISTEN": f"127.0.0.1:{free_port()}"},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        assert relay.stop() == 0
    assert second.returncode == 2
    assert f"spool directory {tmp_path / 'spool'} is in use by another relay (pid " in second.stderr
    assert "Traceback" not in second.stderr


def test_slow_idle_and_excess_connections_are_closed_and_bad_requests_log_one_line(
    dingtalk: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "relay.yaml"
    write_config(config, port)
    relay = RelayProcess(config, team_env(dingtalk), port, tmp_path / "relay.log")
    try:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        trickling = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        for sock in trickling:
            sock.sendall(b"POST /dingtalk/team HTTP/1.1\r\nHost: x\r\n")
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(
            b"POST /dingtalk/team HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Length: 1000\r\n\r\n{"
        )
        crowd = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        time.sleep(2.5)  # past idle_timeout and body_timeout (1 s each)
        for sock in idle + trickling + crowd:
            sock.settimeout(2)
            assert sock.recv(1024) == b"", "closed by the relay"
        slow_body.settimeout(2)
        assert b"408" in slow_body.recv(4096)
        garbage = socket.create_connection(("127.0.0.1", port))
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
        garbage.settimeout(2)
        assert b"400" in garbage.recv(4096)
        for sock in [*idle, *trickling, *crowd, slow_body, garbage]:
            sock.close()
        metrics = httpx.get(f"{relay.base_url}/metrics").text
        assert "obsctl_http_bad_requests_total 1.0" in metrics
        assert "obsctl_http_connections_refused_total 0.0" not in metrics, "the crowd hit the cap"
        assert relay.post("team", notification("StillServing")).status_code == 202
    finally:
        assert relay.stop() == 0
    log = relay.log.read_text()
    assert log.count("bad HTTP request from") == 1
    assert "Traceback" not in log


# --- random webhooks ---------------------------------------------------------------------

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "[click](http://evil.example)", "![i](http://evil.example/i.png)", "\n#### 🔴 x 告警中",
            "`", "@all @13900000000", "<font color=red>x</font>", "\x00\x1b[31m", "\u202eabc",
            "a" * 5_000, "http://evil.example/" + "x" * 3_000, "{{ 7*7 }}", "%s%n", "\\",
        ]
    ),
)  # fmt: skip
times = st.one_of(
    st.sampled_from(
        [
            "2025-01-01T10:00:00Z", "2026-12-01T10:00:00", "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "not a time", "",
            "2025-13-45T99:99:99Z",
        ]
    ),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.none(),
)  # fmt: skip
label_maps = st.dictionaries(
    st.one_of(
        st.sampled_from(["severity", "queue", "instance", "mention", "drill"]), st.text(max_size=10)
    ),
    hostile_text,
    max_size=6,
)


json_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def alerts(draw: st.DrawFn, marker: str) -> dict[str, Any]:
    labels = draw(label_maps)
    labels["alertname"] = marker + draw(hostile_text)[:30]
    labels["severity"] = draw(st.sampled_from(["critical", "warning", "info", "", "x" * 50]))
    body: dict[str, Any] = {
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "labels": labels,
        "annotations": draw(label_maps),
        "startsAt": draw(times),
        "endsAt": draw(times),
        "generatorURL": draw(hostile_text),
        "fingerprint": marker,
    }
    if draw(st.booleans()):
        body["extra"] = draw(hostile_text)
    return body


@pytest.fixture(scope="module")
def fast_robot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFake]:
    directory = tmp_path_factory.mktemp("dingtalk-fuzz")
    robots = directory / "robots.json"
    robots.write_text(json.dumps({"tok-fuzz": {"secret": SECRET, "rate_limit_per_minute": 10_000}}))
    fake = start_fake(
        "obsctl.stack.fakes.dingtalk",
        ["--robots", str(robots), "--store", str(directory / "messages.jsonl")],
    )
    yield fake
    fake.close()


def test_random_webhooks_never_get_a_5xx_and_every_accepted_alert_arrives(
    fast_robot: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "relay.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "webhook": {"token": TOKEN},
                "delivery": {"rate_limit_per_minute": 1_000, "spool_dir": "spool"},
                "render": {
                    "templates_dir": str(TEMPLATES),
                    "link_prefixes": ["https://ok.example/"],
                },
                "targets": {"team": {"secret": SECRET, "mentionable": ["13800000000"]}},
            }
        )
    )
    env = {
        **os.environ,
        "OBSCTL_DINGTALK_TEAM_URL": f"{fast_robot.base_url}/robot/send?access_token=tok-fuzz",
    }
    relay = RelayProcess(config, env, port, tmp_path / "relay.log")
    counter = itertools.count()
    accepted: list[str] = []
    statuses: list[int] = []
    http = httpx.Client(
        base_url=relay.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def post_one(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["notification", "notification", "raw", "json"]))
        if kind == "raw":
            response = http.post("/dingtalk/team", content=data.draw(st.binary(max_size=2_000)))
            markers: list[str] = []
        elif kind == "json":
            junk = data.draw(json_values)
            response = http.post("/dingtalk/team", json=junk)
            markers = []
        else:
            markers = [f"FZ{next(counter):05d}Q" for _ in range(data.draw(st.integers(0, 4)))]
            notification = {
                "version": "4",
                "status": data.draw(st.sampled_from(["firing", "resolved"])),
                "truncatedAlerts": data.draw(st.integers(-(10**30), 10**30)),
                "groupKey": data.draw(hostile_text),
                "externalURL": data.draw(hostile_text),
                "alerts": [data.draw(alerts(marker)) for marker in markers],
            }
            response = http.post("/dingtalk/team", json=notification)
        statuses.append(response.status_code)
        assert response.status_code < 500, response.text
        if response.status_code == 202:
            accepted.extend(markers)

    try:
        post_one()
        deadline = time.monotonic() + 60
        while http.get("/health").json()["targets"]["team"]["queue_depth"]:
            assert time.monotonic() < deadline, "the queue never drained"
            time.sleep(0.2)
    finally:
        http.close()
        assert relay.stop() == 0
    sent = httpx.get(f"{fast_robot.base_url}/_messages", params={"accepted": "true"}).json()
    texts = "".join(m["body"]["markdown"]["text"] for m in sent["messages"])
    delivered = set(re.findall(r"FZ\d{5}Q", texts))
    assert accepted, f"no webhook was accepted (answers: {sorted(set(statuses))})"
    assert set(accepted) <= delivered, sorted(set(accepted) - delivered)[:5]
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
    log = relay.log.read_text()
    assert "Traceback" not in log
    assert TOKEN not in log and SECRET not in log
