"""`obsctl relay` as a real process: --check, serving, a clean stop, the spool across a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

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
        json.dumps({"tok-oncall": {"secret": SECRET}, "tok-team": {"secret": SECRET}}),
        encoding="utf-8",
    )
    fake = start_fake(
        "obsctl.stack.fakes.dingtalk",
        ["--robots", str(robots), "--store", str(directory / "messages.jsonl")],
    )
    yield fake
    fake.close()


def shipped_env(dingtalk: RunningFake, port: int) -> dict[str, str]:
    """The variables the shipped config reads, pointing at the fake."""
    env = {**os.environ, "OBSCTL_RELAY_TOKEN": TOKEN, "OBSCTL_RELAY_LISTEN": f"127.0.0.1:{port}"}
    for target, token in (("ONCALL", "tok-oncall"), ("TEAM", "tok-team"), ("HEARTBEAT", "tok-x")):
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


def accepted(dingtalk: RunningFake, token: str) -> list[str]:
    found = httpx.get(
        f"{dingtalk.base_url}/_messages", params={"token": token, "accepted": "true"}
    ).json()["messages"]
    return [m["body"]["markdown"]["title"] for m in found]


def test_check_accepts_the_shipped_config_and_names_what_is_missing(dingtalk: RunningFake) -> None:
    env = shipped_env(dingtalk, 18311)
    ok = subprocess.run(
        [sys.executable, "-m", "obsctl", "relay", "--config", str(SHIPPED), "--check"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    env.pop("OBSCTL_DINGTALK_TEAM_URL")
    bad = subprocess.run(
        [sys.executable, "-m", "obsctl", "relay", "--config", str(SHIPPED), "--check"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip

    assert ok.returncode == 0, ok.stderr
    assert "valid; listen 127.0.0.1:18311" in ok.stdout
    assert "oncall: signed, zh-CN, @1 mobiles for critical" in ok.stdout
    assert bad.returncode == 2
    assert (
        "targets.team.url: environment variable OBSCTL_DINGTALK_TEAM_URL is not set" in bad.stderr
    )
    assert SECRET not in ok.stdout + bad.stdout + bad.stderr


def test_shipped_config_serves_signed_messages_and_stops_cleanly(
    dingtalk: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    relay = RelayProcess(SHIPPED, shipped_env(dingtalk, port), port, tmp_path / "relay.log")
    try:
        response = relay.post("oncall", notification("DependencyDown"))

        assert response.status_code == 200, response.text
        assert "[告警中:1] DependencyDown 严重" in accepted(dingtalk, "tok-oncall")
        assert httpx.get(f"{relay.base_url}/health").json()["targets"]["heartbeat"]["state"] == "ok"
    finally:
        code = relay.stop()
    assert code == 0
    log = relay.log.read_text()
    assert "relay listening on" in log and "delivered a message with 1 alerts" in log
    for secret in (SECRET, TOKEN, "tok-oncall"):
        assert secret not in log


def test_alerts_accepted_under_the_rate_limit_survive_a_crash(
    dingtalk: RunningFake, tmp_path: Path
) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    config = tmp_path / "relay.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "webhook": {"token": TOKEN, "deliver_timeout": "1.5s"},
                "delivery": {
                    "send_timeout": "0.5s",
                    "rate_limit_per_minute": 1,
                    "spool_dir": "spool",
                },
                "render": {"templates_dir": str(TEMPLATES), "language": "en-US"},
                "targets": {"team": {"secret": SECRET}},
            }
        ),
        encoding="utf-8",
    )
    robot_url = f"{dingtalk.base_url}/robot/send?access_token=tok-team"
    env = {**os.environ, "OBSCTL_DINGTALK_TEAM_URL": robot_url}
    before = len(accepted(dingtalk, "tok-team"))
    relay = RelayProcess(config, env, port, tmp_path / "relay.log")
    try:
        first = relay.post("team", notification("FirstAlert"))
        second = relay.post("team", notification("SecondAlert"))

        assert first.status_code == 200, first.text
        assert second.status_code == 202, second.text
        assert "to be sent merged within its rate limit" in second.json()["detail"]
        assert "SecondAlert" in (spool / "team.jsonl").read_text()
    finally:
        relay.stop(signal.SIGKILL)

    restarted = RelayProcess(config, env, port, tmp_path / "relay.log")
    try:
        deadline = time.monotonic() + 5
        while len(accepted(dingtalk, "tok-team")) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        titles = accepted(dingtalk, "tok-team")[before:]
        assert titles == ["[FIRING:1] FirstAlert critical", "[FIRING:1] SecondAlert critical"]
        assert (spool / "team.jsonl").read_text() == ""
    finally:
        assert restarted.stop() == 0
    assert "1 queued alerts restored from the spool" in relay.log.read_text()
