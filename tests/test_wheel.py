"""obsctl as a team uses it: built as a wheel, installed in a fresh venv outside this checkout,
pointed at a project of its own, and run against the local stack's servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from obsctl.stack.fakes.launcher import RunningFake, free_port, start_fake

from conftest import DEMO_PROJECT, RunningStack, wait_for

pytestmark = pytest.mark.needs_tools("promtool", "amtool", "prometheus-alertmanager")
SECRET = "SECwheel0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef0123456789"
RUNBOOKS = "https://git.payments.example/ops/monitoring/-/blob/main/runbooks"
# What the demo project holds and a user's project must never inherit.
DEMO_ONLY = ("demo-app", "13800000000", "github.com/obsctl")


@dataclass(frozen=True)
class Installed:
    """A fresh venv with the wheel installed, and a directory outside the checkout."""

    bin: Path
    home: Path

    def obsctl(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "obsctl"), *args],
            cwd=cwd,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # No checkout on the path: PYTHONPATH and the test's own venv are left out.
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        base["PATH"] = f"{self.bin}:{base.get('PATH', '')}"
        return {**base, **(extra or {})}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
         str(DEMO_PROJECT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = (work / "dist").glob("obsctl-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-c", str(DEMO_PROJECT / "constraints.txt"),
         str(wheel)],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    home = work / "home"
    home.mkdir()
    return Installed(venv / "bin", home)


TEAMS = {"payments": "13900000001", "growth": "13900000002", "infra": "13900000003"}
OWNERS = {"platform": "payments", "ai": "growth", "sre": "infra"}


def make_project(installed: Installed, name: str) -> Path:
    """`obsctl init`, then the project made the team's own: job, teams, robots, mobiles, links."""
    result = installed.obsctl("init", name, cwd=installed.home)
    assert result.returncode == 0, result.stdout + result.stderr
    project = installed.home / name
    config = yaml.safe_load((project / "obsctl.yaml").read_text())
    config["selectors"]["api"] = 'job="payments-api"'
    config["teams"] = {
        team: {
            "dingtalk": {
                "url": f"${{OBSCTL_DINGTALK_TEAM_{team.upper()}_URL}}",
                "secret": f"${{OBSCTL_DINGTALK_TEAM_{team.upper()}_SECRET}}",
            },
            "mobiles": [mobile],
            "email": [f"{team}@payments.example"],
        }
        for team, mobile in TEAMS.items()
    }
    config["oncall"]["mobiles"] = ["13700000000"]
    # Alerts about the relay are mailed around it: validate fails without an SMTP server.
    config["oncall"]["email"] = ["oncall@payments.example"]
    config["routing"]["email"] = {"smarthost": "smtp.payments.example:587",
                                  "from": "alertmanager@payments.example"}  # fmt: skip
    config["alerts"] = {
        alert: {**policy, "team": OWNERS[policy["team"]]}
        for alert, policy in yaml.safe_load((DEMO_PROJECT / "obsctl.yaml").read_text())[
            "alerts"
        ].items()
    }
    config["links"] = {"runbook_url": RUNBOOKS}
    config["routing"]["receivers"]["warning"] = {"dingtalk": ["team"], "mention": ["team"]}
    (project / "obsctl.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    generated = installed.obsctl("generate", cwd=project)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    return project


def test_a_project_of_its_own_generates_and_validates_from_the_wheel(
    installed: Installed,
) -> None:
    project = make_project(installed, "payments-ops")

    valid = installed.obsctl("validate", cwd=project / "alert-rules")  # found from a subdir
    assert valid.returncode == 0, valid.stdout + valid.stderr
    for check in ("promtool", "alertmanager", "dashboards", "systemd units", "generated files"):
        assert f"ok  {check}" in valid.stderr
    for path in project.rglob("*"):
        if path.is_file() and path.name != "README.md":
            text = path.read_text(encoding="utf-8")
            for demo in DEMO_ONLY:
                assert demo not in text, f"{path.relative_to(project)} holds {demo!r}"
    rules = (project / "alert-rules" / "obsctl.rules.yml").read_text()
    assert 'job="payments-api"' in rules and f"{RUNBOOKS}/ApiDown.md" in rules

    broken = project / "alert-rules" / "obsctl.rules.yml"
    broken.write_text(rules.replace("vector(1)", "vector(1", 1))
    failed = installed.obsctl("validate", cwd=project)
    assert failed.returncode == 1
    assert "alert-rules/obsctl.rules.yml: stale" in failed.stdout
    assert "promtool check rules:" in failed.stdout

    stack = installed.obsctl("stack", "up", "--dir", str(installed.home / "stack"), cwd=project)
    assert stack.returncode != 0
    assert "runs the demo platform from a checkout of obsctl" in stack.stderr


@pytest.fixture
def robots(tmp_path: Path) -> Iterator[RunningFake]:
    tokens = {f"tok-{team}": {"secret": SECRET} for team in [*TEAMS, "oncall", "heartbeat"]}
    (tmp_path / "robots.json").write_text(json.dumps(tokens))
    fake = start_fake(
        "obsctl.stack.fakes.dingtalk",
        ["--robots", str(tmp_path / "robots.json"), "--store", str(tmp_path / "messages.jsonl")],
    )
    yield fake
    fake.close()


class Process:
    """A long-running obsctl (or Alertmanager) process of this test, always stopped."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code in (200, 503)
    except httpx.TransportError:
        return False


def test_team_b_is_paged_on_its_own_robot_through_alertmanager_and_the_relay(
    installed: Installed, stack: RunningStack, robots: RunningFake, tmp_path: Path
) -> None:
    project = make_project(installed, "payments-live")
    relay_port, am_port, exporter_port = free_port(), free_port(), free_port()
    token = "wheel-relay-token"
    env = {
        **stack.env,
        "OBSCTL_RELAY_LISTEN": f"127.0.0.1:{relay_port}",
        "OBSCTL_RELAY_TOKEN": token,
        "OBSCTL_RELAY_SPOOL_DIR": str(tmp_path / "spool"),
        "OBSCTL_LISTEN": f"127.0.0.1:{exporter_port}",
    }
    for target in [*(f"TEAM_{t.upper()}" for t in TEAMS), "ONCALL", "HEARTBEAT"]:
        name = target.removeprefix("TEAM_").lower()
        env[f"OBSCTL_DINGTALK_{target}_URL"] = (
            f"{robots.base_url}/robot/send?access_token=tok-{name}"
        )
        env[f"OBSCTL_DINGTALK_{target}_SECRET"] = SECRET
    # Alertmanager with the project's generated routing, pointed at this relay.
    am_config = yaml.safe_load((project / "alertmanager" / "alertmanager.yml").read_text())
    (tmp_path / "relay-token").write_text(token)
    for receiver in am_config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = hook["url"].replace(
                "http://127.0.0.1:18311", f"http://127.0.0.1:{relay_port}"
            )
            hook["http_config"]["authorization"]["credentials_file"] = str(tmp_path / "relay-token")
        receiver.pop("email_configs", None)
    am_config["templates"] = [str(project / "alertmanager" / "templates" / "*.tmpl")]
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    processes = [
        Process([str(installed.bin / "obsctl"), "relay"], installed.env(env), project,
                tmp_path / "relay.log"),
        Process([str(installed.bin / "obsctl"), "exporter"], installed.env(env), project,
                tmp_path / "exporter.log"),
        Process(["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
                 f"--storage.path={tmp_path / 'am-data'}",
                 f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                os.environ.copy(), tmp_path, tmp_path / "am.log"),
    ]  # fmt: skip
    try:
        wait_for("the relay", lambda: _answers(f"http://127.0.0.1:{relay_port}/ready"))
        wait_for("Alertmanager", lambda: _answers(f"http://127.0.0.1:{am_port}/-/ready"))
        health = wait_for(
            "the exporter's MySQL and Redis probes to succeed",
            lambda: _exporter_ok(f"http://127.0.0.1:{exporter_port}/health"),
            timeout=60,
        )
        assert health["deps"]["db"]["ok"] and health["deps"]["redis"]["ok"]
        alert = {
            "labels": {"alertname": "QueueBacklogHigh", "severity": "warning", "team": "growth",
                       "queue": "payouts"},
            "annotations": {"summary": "backlog", "description": "payouts waits",
                            "runbook": "runbooks/QueueBacklogHigh.md",
                            "runbook_url": f"{RUNBOOKS}/QueueBacklogHigh.md"},
        }  # fmt: skip
        httpx.post(f"http://127.0.0.1:{am_port}/api/v2/alerts", json=[alert]).raise_for_status()
        [message] = wait_for("team growth's message", lambda: _accepted(robots, "tok-growth"),
                             timeout=60)  # fmt: skip
    finally:
        for process in processes:
            process.stop()
    text = message["body"]["markdown"]["text"]
    assert "QueueBacklogHigh" in text
    assert f"[处理手册]({RUNBOOKS}/QueueBacklogHigh.md)" in text, "the project's runbook link"
    assert message["at"]["atMobiles"] == [TEAMS["growth"]]
    for other in ("tok-payments", "tok-infra", "tok-oncall"):
        assert _accepted(robots, other) == [], f"{other} got team growth's alert"
    logs = "".join(p.log.read_text() for p in processes[:2])
    assert SECRET not in logs and token not in logs


def _exporter_ok(url: str) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = httpx.get(url, timeout=1).json()
    except (httpx.TransportError, ValueError):
        return None
    deps = body.get("deps", {})
    return body if all(deps.get(name, {}).get("ok") for name in ("db", "redis")) else None


def _accepted(robots: RunningFake, token: str) -> list[dict[str, Any]]:
    found = httpx.get(
        f"{robots.base_url}/_messages", params={"token": token, "accepted": "true"}
    ).json()["messages"]
    return list(found)


def test_init_refuses_to_overwrite_a_project(installed: Installed) -> None:
    first = installed.obsctl("init", "twice", cwd=installed.home)
    again = installed.obsctl("init", "twice", cwd=installed.home)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 2
    assert "already holds an obsctl project (obsctl.yaml)" in again.stderr
    nowhere = installed.obsctl("generate", cwd=installed.home)
    assert nowhere.returncode == 2
    assert f"no obsctl.yaml in {installed.home} or any directory above it" in nowhere.stderr


# What PyMySQL does for MySQL 8's caching_sha2_password full login over plain TCP: the password,
# XORed with the server's nonce, RSA-encrypted to the server's key. It needs `cryptography`.
MYSQL8_FULL_LOGIN = """
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pymysql import _auth
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
public = key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
nonce = b"0123456789abcdefghij"
sent = _auth.sha2_rsa_encrypt(b"s3cret", nonce, public)
oaep = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
print(_auth._xor_password(key.decrypt(sent, oaep), nonce)[:6].decode())
"""


def test_the_wheel_logs_in_to_mysql_8_without_tls(installed: Installed) -> None:
    result = subprocess.run(
        [str(installed.bin / "python"), "-c", MYSQL8_FULL_LOGIN],
        env=installed.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "s3cret"
