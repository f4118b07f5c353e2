"""Passwords, keys and tokens of one stack: generated once, kept private under the stack dir."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field


def _token(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


def _hex(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)


class StackSecrets(BaseModel):
    """Everything secret a stack hands out; never printed, only written to 0600 files."""

    platform_mysql_password: str
    exporter_mysql_password: str
    cos_access_key: str
    cos_secret_key: str
    demo_admin_token: str
    dingtalk_oncall_token: str
    dingtalk_oncall_secret: str
    dingtalk_team_token: str
    dingtalk_team_secret: str
    # Added after the first stacks were created: defaults let an older secrets file load.
    dingtalk_heartbeat_token: str = Field(default_factory=lambda: _hex(32))
    dingtalk_heartbeat_secret: str = Field(default_factory=lambda: "SEC" + _hex(32))
    relay_token: str = Field(default_factory=_token)

    @classmethod
    def generate(cls) -> StackSecrets:
        """Fresh random values."""
        return cls(
            platform_mysql_password=_token(),
            exporter_mysql_password=_token(),
            cos_access_key="AKID" + _hex(8).upper(),
            cos_secret_key=_token(24),
            demo_admin_token=_token(),
            dingtalk_oncall_token=_hex(32),
            dingtalk_oncall_secret="SEC" + _hex(32),
            dingtalk_team_token=_hex(32),
            dingtalk_team_secret="SEC" + _hex(32),
        )


def load_or_create(path: Path) -> StackSecrets:
    """The stack's secrets, created on first use so a restarted stack keeps its accounts."""
    if path.exists():
        text = path.read_text()
        loaded = StackSecrets.model_validate_json(text)
        if loaded.model_dump_json(indent=2) != text:
            write_private(path, loaded.model_dump_json(indent=2))  # keep new defaults stable
        return loaded
    created = StackSecrets.generate()
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
