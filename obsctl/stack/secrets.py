"""Passwords, keys and tokens of one stack: generated once, kept private under the stack dir."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator


def _token(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


def _hex(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)


def _provider_key() -> str:
    return "sk-" + _token(24)


def robot_env(target: str) -> str:
    """The stack.env prefix of one robot's token and secret: `oncall` -> `DINGTALK_ONCALL`."""
    return "DINGTALK_" + target.upper().replace("-", "_")


class RobotSecret(BaseModel):
    """The access token and signing secret of one DingTalk robot of the fake endpoint."""

    token: str = Field(default_factory=lambda: _hex(32))
    secret: str = Field(default_factory=lambda: "SEC" + _hex(32))


class StackSecrets(BaseModel):
    """Everything secret a stack hands out; never printed, only written to 0600 files."""

    platform_mysql_password: str
    exporter_mysql_password: str
    cos_access_key: str
    cos_secret_key: str
    demo_admin_token: str
    # One robot per relay target of the routing (mixin config), keyed by the target's name.
    dingtalk_robots: dict[str, RobotSecret] = Field(default_factory=dict)
    relay_token: str = Field(default_factory=_token)
    # Signs the relay's claim links.
    claim_key: str = Field(default_factory=_token)
    # Alertmanager's (and the drills') bearer token for the dead man's switch.
    deadman_token: str = Field(default_factory=_token)
    # The Tencent Cloud API key the relay texts with, as the SMS fake knows it.
    sms_secret_id: str = Field(default_factory=lambda: "AKID" + _hex(16))
    sms_secret_key: str = Field(default_factory=_token)
    # The API key each fake AI provider requires, keyed by the provider's name.
    provider_keys: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _robots_of_older_stacks(cls, data: Any) -> Any:
        """Read the per-robot keys older secrets files hold (dingtalk_<target>_token/_secret)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        robots = dict(data.get("dingtalk_robots") or {})
        for key in [k for k in data if k.startswith("dingtalk_") and k.endswith("_token")]:
            target = key.removeprefix("dingtalk_").removesuffix("_token")
            secret = data.pop(f"dingtalk_{target}_secret", None)
            token = data.pop(key)
            robots.setdefault(target, {"token": token, **({"secret": secret} if secret else {})})
        data["dingtalk_robots"] = robots
        return data

    def with_robots(self, targets: list[str]) -> StackSecrets:
        """These secrets with a robot for every target (new ones get fresh values)."""
        robots = {t: self.dingtalk_robots.get(t) or RobotSecret() for t in targets}
        return self.model_copy(update={"dingtalk_robots": {**self.dingtalk_robots, **robots}})

    def with_provider_keys(self, providers: Sequence[str]) -> StackSecrets:
        """These secrets with an API key for every provider (new ones get fresh values)."""
        keys = {name: self.provider_keys.get(name) or _provider_key() for name in providers}
        return self.model_copy(update={"provider_keys": {**self.provider_keys, **keys}})

    def robot(self, target: str) -> RobotSecret:
        """The robot of one relay target."""
        return self.dingtalk_robots[target]

    @classmethod
    def generate(cls) -> StackSecrets:
        """Fresh random values."""
        return cls(
            platform_mysql_password=_token(),
            exporter_mysql_password=_token(),
            cos_access_key="AKID" + _hex(8).upper(),
            cos_secret_key=_token(24),
            demo_admin_token=_token(),
        )


def load_or_create(path: Path, robots: list[str], providers: Sequence[str] = ()) -> StackSecrets:
    """The stack's secrets, created on first use so a restarted stack keeps its accounts.

    `robots` are the relay targets that need a DingTalk robot, `providers` the fake providers
    that need an API key; one missing from an existing file (a target added to the routing, a
    file older than the keys) is created and kept.
    """
    if path.exists():
        text = path.read_text()
        loaded = (
            StackSecrets.model_validate_json(text).with_robots(robots).with_provider_keys(providers)
        )
        if loaded.model_dump_json(indent=2) != text:
            write_private(path, loaded.model_dump_json(indent=2))  # keep new defaults stable
        return loaded
    created = StackSecrets.generate().with_robots(robots).with_provider_keys(providers)
    write_private(path, created.model_dump_json(indent=2))
    return created


def write_private(path: Path, text: str) -> None:
    """Write text readable by the owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def dump_json_private(path: Path, data: object) -> None:
    """JSON variant of write_private."""
    write_private(path, json.dumps(data, indent=2))
