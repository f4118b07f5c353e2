"""A stack's secrets file: one DingTalk robot per relay target, older files read as they were."""

from __future__ import annotations

import json
from pathlib import Path

from obsctl.stack.secrets import load_or_create

OLDER_FILE = {
    "platform_mysql_password": "p",
    "exporter_mysql_password": "e",
    "cos_access_key": "AKID",
    "cos_secret_key": "s",
    "demo_admin_token": "d",
    "dingtalk_oncall_token": "tok-oncall",
    "dingtalk_oncall_secret": "SEC-oncall",
    "dingtalk_team_token": "tok-team",
    "dingtalk_team_secret": "SEC-team",
    "relay_token": "r",
}


def test_an_older_file_keeps_its_robots_and_gains_the_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(OLDER_FILE))

    secrets = load_or_create(path, ["oncall", "team", "heartbeat"])

    assert (secrets.robot("oncall").token, secrets.robot("oncall").secret) == (
        "tok-oncall",
        "SEC-oncall",
    )
    assert secrets.robot("team").token == "tok-team"
    assert secrets.robot("heartbeat").secret.startswith("SEC")
    again = load_or_create(path, ["oncall", "team", "heartbeat"])
    assert again == secrets, "the robot created for the new target is kept in the file"
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_new_stack_gets_a_distinct_robot_per_target(tmp_path: Path) -> None:
    secrets = load_or_create(tmp_path / "secrets.json", ["oncall", "team"])
    tokens = {secrets.robot(t).token for t in ("oncall", "team")}
    assert len(tokens) == 2


def test_each_provider_gets_its_own_key_kept_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(OLDER_FILE))

    secrets = load_or_create(path, ["oncall"], ["alpha", "beta"])
    again = load_or_create(path, ["oncall"], ["alpha", "beta"])

    keys = secrets.provider_keys
    assert set(keys) == {"alpha", "beta"} and keys["alpha"] != keys["beta"]
    assert all(key.startswith("sk-") and len(key) >= 32 for key in keys.values())
    assert again.provider_keys == keys, "an older file gains the keys and keeps them"
    assert (path.stat().st_mode & 0o777) == 0o600
