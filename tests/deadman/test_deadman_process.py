"""`obsctl deadman` as a real process: Watchdogs in, a signed DingTalk page and an email out
when they stop, the recovery when they return, retries while SMTP is down."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from obsctl.stack.fakes.launcher import RunningFake, free_port, start_fake

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "alertmanager" / "deadman.yaml"
SECRET = "SECdeadman0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef012345678"
TOKEN = "deadman-token-4c1a"
WATCHDOG = {
    "version": "4",
    "status": "firing",
    "receiver": "heartbeat",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "Watchdog"},
            "startsAt": "2026-12-01T00:00:00Z",
        }
    ],
}


@pytest.fixture(scope="module")
def robot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFake]:
    directory = tmp_path_factory.mktemp("dingtalk-deadman")
    robots = directory / "robots.json"
    robots.write_text(json.dumps({"tok-deadman": {"secret": SECRET}}), encoding="utf-8")
    fake = start_fake(
        "obsctl.stack.fakes.dingtalk",
        ["--robots", str(robots), "--store", str(directory / "messages.jsonl")],
    )
    yield fake
    fake.close()


class SmtpSink:
    """aiosmtpd writing every mail into a maildir, startable and stoppable on one port."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: _listening(self.port))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def mails(self) -> list[email.message.Message]:
        new = self.maildir / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime) if new.exists() else []
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in files
        ]


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.1)
    return value


def robot_messages(robot: RunningFake) -> list[dict[str, Any]]:
    found = httpx.get(
        f"{robot.base_url}/_messages", params={"token": "tok-deadman", "accepted": "true"}
    ).json()["messages"]
    return list(found)


def start_deadman(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "obsctl", "deadman", "--config", str(config)],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=15)


def test_check_accepts_the_shipped_config(robot: RunningFake, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OBSCTL_DEADMAN_TOKEN": TOKEN,
        "OBSCTL_DEADMAN_STATE_DIR": str(tmp_path / "state"),
        "OBSCTL_DINGTALK_ONCALL_URL": f"{robot.base_url}/robot/send?access_token=tok-deadman",
        "OBSCTL_DINGTALK_ONCALL_SECRET": SECRET,
    }
    ok = subprocess.run(
        [sys.executable, "-m", "obsctl", "deadman", "--config", str(SHIPPED), "--check"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    del env["OBSCTL_DINGTALK_ONCALL_SECRET"]
    bad = subprocess.run(
        [sys.executable, "-m", "obsctl", "deadman", "--config", str(SHIPPED), "--check"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip

    assert ok.returncode == 0, ok.stderr
    assert "alert-path: missing after 180s -> dingtalk, email" in ok.stdout
    assert bad.returncode == 2
    assert (
        "notify.dingtalk.secret: environment variable OBSCTL_DINGTALK_ONCALL_SECRET is not set"
        in bad.stderr
    )
    assert SECRET not in ok.stdout + ok.stderr + bad.stderr


def test_a_silent_alert_path_pages_by_dingtalk_and_email_then_recovers(
    robot: RunningFake, tmp_path: Path
) -> None:
    smtp = SmtpSink(tmp_path / "maildir")
    port = free_port()
    config = tmp_path / "deadman.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "webhook": {"token": TOKEN},
                "state_dir": "state",
                "heartbeats": [{"name": "alert-path", "timeout": "10s", "reminder": 0}],
                "notify": {
                    "dingtalk": {
                        "url": f"{robot.base_url}/robot/send?access_token=tok-deadman",
                        "secret": SECRET,
                        "mobiles": ["13800000000"],
                    },
                    "email": {"smarthost": f"127.0.0.1:{smtp.port}",
                              "sender": "deadman@example.com", "to": ["oncall@example.com"]},
                    "retry_max": "1s",
                },
            }
        ),
        encoding="utf-8",
    )  # fmt: skip
    before = len(robot_messages(robot))
    base = f"http://127.0.0.1:{port}"
    process = start_deadman(config, dict(os.environ), tmp_path / "deadman.log")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        wait_until(lambda: _listening(port))
        beat = httpx.post(f"{base}/heartbeat/alert-path", json=WATCHDOG, headers=auth)
        assert beat.json() == {"status": "ok"}
        resolved = {**WATCHDOG, "alerts": [{**WATCHDOG["alerts"][0], "status": "resolved"}]}
        assert (
            httpx.post(f"{base}/heartbeat/alert-path", json=resolved, headers=auth).json()["status"]
            == "ignored"
        ), "a resolved Watchdog means Prometheus stopped: not a heartbeat"
        assert httpx.post(f"{base}/heartbeat/alert-path", json=WATCHDOG).status_code == 401
        assert httpx.post(f"{base}/heartbeat/other", json=WATCHDOG, headers=auth).status_code == 404

        # SMTP is down when the page is due: DingTalk goes at once, the email is retried.
        page = wait_until(lambda: robot_messages(robot)[before:], timeout=25)[0]
        assert page["body"]["markdown"]["title"] == "[告警中] WatchdogMissing alert-path"
        assert "告警链路心跳中断" in page["body"]["markdown"]["text"]
        assert "@13800000000" in page["body"]["markdown"]["text"]
        assert page["at"]["atMobiles"] == ["13800000000"]
        health = httpx.get(f"{base}/health").json()
        assert health["status"] == "alarm" and health["unsent"]["email"] == 1
        metrics = httpx.get(f"{base}/metrics").text
        assert 'obsctl_deadman_heartbeat_missing{heartbeat="alert-path"} 1.0' in metrics
        assert 'obsctl_deadman_notifications_failed_total{channel="email"}' in metrics

        smtp.start()
        [mail] = wait_until(smtp.mails, timeout=15)
        assert mail["Subject"] == "[告警中] WatchdogMissing alert-path"
        assert mail["To"] == "oncall@example.com"

        httpx.post(f"{base}/heartbeat/alert-path", json=WATCHDOG, headers=auth)
        back = wait_until(lambda: robot_messages(robot)[before + 1 :], timeout=15)[0]
        assert back["body"]["markdown"]["title"] == "[已恢复] WatchdogMissing alert-path"
        assert back["at"]["atMobiles"] == [], "nobody is paged for the recovery"
        mails = wait_until(lambda: smtp.mails()[1:], timeout=15)
        assert mails[0]["Subject"] == "[已恢复] WatchdogMissing alert-path"
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
    finally:
        code = stop(process)
        smtp.stop()
    assert code == 0
    assert len(robot_messages(robot)) == before + 2, "one page and one recovery, no flood"
    log = (tmp_path / "deadman.log").read_text()
    assert "Traceback" not in log and SECRET not in log and TOKEN not in log
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["heartbeats"]["alert-path"]["phase"] == "ok" and state["notices"] == []


def test_a_drill_mark_announces_the_outage_and_deliveries_prove_what_went_out(
    robot: RunningFake, tmp_path: Path
) -> None:
    smtp = SmtpSink(tmp_path / "maildir")
    smtp.start()
    port = free_port()
    config = tmp_path / "deadman.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "webhook": {"token": TOKEN},
                "state_dir": "state",
                "heartbeats": [{"name": "alert-path", "timeout": "10s", "reminder": 0}],
                "notify": {
                    "dingtalk": {
                        "url": f"{robot.base_url}/robot/send?access_token=tok-deadman",
                        "secret": SECRET,
                        "mobiles": ["13800000000"],
                    },
                    "email": {"smarthost": f"127.0.0.1:{smtp.port}",
                              "sender": "deadman@example.com", "to": ["oncall@example.com"]},
                },
            }
        ),
        encoding="utf-8",
    )  # fmt: skip
    before = len(robot_messages(robot))
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    drill = "alert-path-down-20261201T101500-1a2b"
    process = start_deadman(config, dict(os.environ), tmp_path / "deadman.log")
    try:
        wait_until(lambda: _listening(port))
        started = time.time()
        httpx.post(f"{base}/heartbeat/alert-path", json=WATCHDOG, headers=auth)
        assert (
            httpx.put(f"{base}/api/v1/drill", json={"id": drill, "ttl_seconds": 300}).status_code
            == 401
        )
        for bad in (
            {"id": drill},
            {"id": "a b", "ttl_seconds": 60},
            {"id": drill, "ttl_seconds": 7200},
        ):
            assert httpx.put(f"{base}/api/v1/drill", json=bad, headers=auth).status_code == 400, bad
        marked = httpx.put(
            f"{base}/api/v1/drill", json={"id": drill, "ttl_seconds": 300}, headers=auth
        )
        assert marked.status_code == 200 and marked.json()["drill"]["id"] == drill
        health = httpx.get(f"{base}/health").json()
        assert health["drill"]["id"] == drill
        assert health["heartbeats"]["alert-path"]["timeout_seconds"] == 10
        assert "obsctl_deadman_drill_marked 1.0" in httpx.get(f"{base}/metrics").text

        page = wait_until(lambda: robot_messages(robot)[before:], timeout=25)[0]
        assert page["body"]["markdown"]["title"] == "[演练] [告警中] WatchdogMissing alert-path"
        assert f"故障演练 {drill} 触发" in page["body"]["markdown"]["text"]
        assert page["at"]["atMobiles"] == ["13800000000"], "a drill's page still @-mentions"
        [mail] = wait_until(smtp.mails, timeout=15)
        assert mail["Subject"] == "[演练] [告警中] WatchdogMissing alert-path"
        assert drill in mail.get_content()

        assert httpx.get(f"{base}/api/v1/deliveries").status_code == 401
        sent = httpx.get(
            f"{base}/api/v1/deliveries", params={"since": started}, headers=auth
        ).json()["deliveries"]
        assert {(d["channel"], d["kind"], d["drill"]) for d in sent} == {
            ("dingtalk", "missing", drill),
            ("email", "missing", drill),
        }
        [dingtalk] = [d for d in sent if d["channel"] == "dingtalk"]
        assert dingtalk["title"] == page["body"]["markdown"]["title"]
        assert dingtalk["text"] == page["body"]["markdown"]["text"]
        assert dingtalk["mobiles"] == ["13800000000"]
        later = httpx.get(
            f"{base}/api/v1/deliveries",
            params={"since": time.time() + 1, "channel": "email"},
            headers=auth,
        )
        assert later.json() == {"deliveries": []}
        assert (
            httpx.get(
                f"{base}/api/v1/deliveries", params={"channel": "sms"}, headers=auth
            ).status_code
            == 404
        )

        httpx.post(f"{base}/heartbeat/alert-path", json=WATCHDOG, headers=auth)
        back = wait_until(lambda: robot_messages(robot)[before + 1 :], timeout=15)[0]
        assert back["body"]["markdown"]["title"] == "[演练] [已恢复] WatchdogMissing alert-path"
        cleared = httpx.delete(f"{base}/api/v1/drill/{drill}", headers=auth)
        assert cleared.json() == {"cleared": True}
        assert httpx.delete(f"{base}/api/v1/drill/{drill}", headers=auth).json() == {
            "cleared": False
        }
        assert httpx.get(f"{base}/health").json()["drill"] is None
    finally:
        code = stop(process)
        smtp.stop()
    assert code == 0
    log = (tmp_path / "deadman.log").read_text()
    assert "Traceback" not in log and TOKEN not in log
