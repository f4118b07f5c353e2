"""The dead man's switch config: heartbeats to watch, and how to reach on-call without them.

It runs apart from Prometheus, Alertmanager and the relay (another host, by systemd or
compose), so it keeps its own robot URL, secret and SMTP server. Any value may be
``${ENV_VAR}`` or ``${file:/path}``; ``OBSCTL_DEADMAN_LISTEN``, ``OBSCTL_DEADMAN_TOKEN`` and
``OBSCTL_DEADMAN_STATE_DIR`` override the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, StringConstraints, field_validator, model_validator

from obsctl.config_types import Duration
from obsctl.configfile import ConfigError, StrictModel, host_port, load_model, set_path
from obsctl.httpserve import ServerLimits
from obsctl.mail import EMAIL_ADDRESS, SmtpConfig
from obsctl.relay.config import Language, Mobile, known_zone, unwritable

__all__ = ["ConfigError", "DeadmanConfig", "load"]

HeartbeatName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
_OVERRIDES = {
    "OBSCTL_DEADMAN_LISTEN": ("listen",),
    "OBSCTL_DEADMAN_TOKEN": ("webhook", "token"),
    "OBSCTL_DEADMAN_STATE_DIR": ("state_dir",),
}


class HeartbeatConfig(StrictModel):
    """One alert path whose Watchdog must keep arriving."""

    name: HeartbeatName
    # Alertmanager repeats the Watchdog every repeat_interval (1 m in the generated config).
    timeout: Duration = Field(default=180.0, ge=10, le=86_400)
    # While missing, say so again this often (0: only once per outage).
    reminder: Duration | Literal[0] = 1_800.0
    summary: str = Field(default="", max_length=200)


class RobotConfig(StrictModel):
    """The DingTalk robot that hears about a missing heartbeat, straight from here."""

    url: SecretStr
    secret: SecretStr | None = None
    keyword: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    mobiles: list[Mobile] = Field(default_factory=list)
    at_all: bool = False

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: SecretStr) -> SecretStr:
        if not re.match(r"^https?://[^\s/]+", value.get_secret_value()):
            raise ValueError("expected an http(s) robot URL such as https://oapi.dingtalk.com/...")
        return value

    @field_validator("secret")
    @classmethod
    def _empty_secret_is_unsigned(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None


class EmailConfig(SmtpConfig):
    """SMTP delivery of the same message."""

    to: list[Annotated[str, StringConstraints(pattern=EMAIL_ADDRESS)]] = Field(min_length=1)


class NotifyConfig(StrictModel):
    """Where a missing heartbeat is told; at least one channel."""

    dingtalk: RobotConfig | None = None
    email: EmailConfig | None = None
    # A failed send is retried with this backoff ceiling until it goes out.
    retry_max: Duration = 60.0
    send_timeout: Duration = 5.0
    # Recent notices a channel accepted, kept for GET /api/v1/deliveries (drills' proof).
    log_size: int = Field(default=200, ge=0, le=10_000)

    @model_validator(mode="after")
    def _one_channel(self) -> NotifyConfig:
        if self.dingtalk is None and self.email is None:
            raise ValueError("configure dingtalk, email or both: nobody would hear the alarm")
        return self


class WebhookConfig(StrictModel):
    """How Alertmanager posts the Watchdog here."""

    token: SecretStr | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=16 * 1_048_576)


class DeadmanConfig(StrictModel):
    """Everything the dead man's switch does."""

    listen: str = "127.0.0.1:18312"
    server: ServerLimits = Field(default_factory=ServerLimits)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    # Each heartbeat's last arrival and outage, so a restart neither forgets nor repeats one.
    state_dir: Path = Path("/var/lib/obsctl/deadman")
    heartbeats: list[HeartbeatConfig] = Field(min_length=1)
    notify: NotifyConfig
    language: Language = "zh-CN"
    timezone: str = "Asia/Shanghai"

    _listen_is_host_port = field_validator("listen")(host_port)
    _known_zone = field_validator("timezone")(known_zone)

    @field_validator("heartbeats")
    @classmethod
    def _unique(cls, value: list[HeartbeatConfig]) -> list[HeartbeatConfig]:
        names = [h.name for h in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"heartbeat names must be unique, repeated: {', '.join(repeated)}")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        """listen split into host and port."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


def load(path: Path, environ: Mapping[str, str] | None = None) -> DeadmanConfig:
    """Read, resolve and validate a config; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    config = load_model(path, DeadmanConfig, environ, _apply_env_overrides)
    if not config.state_dir.is_absolute():
        config.state_dir = (path.parent / config.state_dir).resolve()
    problem = unwritable(config.state_dir)
    if problem:
        raise ConfigError(str(path), [f"state_dir: {problem}"])
    return config


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for var, key_path in _OVERRIDES.items():
        if environ.get(var):
            set_path(raw, key_path, environ[var])
