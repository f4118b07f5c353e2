"""The relay's YAML config: validated strictly, secrets from env or files, errors for people.

Loading follows the exporter's config (``obsctl.exporter.config``): any value may be
``${ENV_VAR}`` or ``${file:/path}``, and these environment variables override the file:

- ``OBSCTL_RELAY_LISTEN`` -> ``listen``, ``OBSCTL_RELAY_TOKEN`` -> ``webhook.token``,
  ``OBSCTL_RELAY_SPOOL_DIR`` -> ``delivery.spool_dir``;
- for every target ``<name>`` of the file, ``OBSCTL_DINGTALK_<NAME>_URL`` -> its ``url`` and
  ``OBSCTL_DINGTALK_<NAME>_SECRET`` -> its ``secret`` (``-`` in the name becomes ``_``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from obsctl.config_types import Duration
from obsctl.configfile import (
    ConfigError,
    StrictModel,
    describe_validation_error,
    host_port,
    load_model,
)

__all__ = ["ConfigError", "RelayConfig", "TargetConfig", "load"]

Language = Literal["zh-CN", "en-US"]
Severity = Literal["critical", "warning", "info"]
# Target names become URL path segments, metric label values and env var names.
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
# A mobile number as DingTalk matches it in the text: digits, optionally with a +86- prefix.
Mobile = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9-]{4,19}$")]

_GLOBAL_OVERRIDES: dict[str, tuple[str, ...]] = {
    "OBSCTL_RELAY_LISTEN": ("listen",),
    "OBSCTL_RELAY_TOKEN": ("webhook", "token"),
    "OBSCTL_RELAY_SPOOL_DIR": ("delivery", "spool_dir"),
}


class WebhookConfig(StrictModel):
    """The Alertmanager side: auth, body limit and how long a webhook may wait for delivery."""

    token: SecretStr | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=64 * 1_048_576)
    # Below Alertmanager's own webhook timeout, so the 503 arrives before it gives up.
    deliver_timeout: Duration = 8.0


class RetryConfig(StrictModel):
    """Exponential backoff with jitter after a failed send."""

    base: Duration = 0.5
    max: Duration = 30.0


class DeliveryConfig(StrictModel):
    """How the relay talks to DingTalk robots."""

    send_timeout: Duration = 3.0
    # DingTalk's documented limit for a custom robot is 20 messages per minute.
    rate_limit_per_minute: int = Field(default=20, ge=1, le=1_000)
    # DingTalk refuses bodies over 20,000 bytes (errcode 460101).
    max_message_bytes: int = Field(default=20_000, ge=2_000, le=20_000)
    # After a rate-limit errcode the robot is left alone for DingTalk's window.
    rate_limited_backoff: Duration = 60.0
    retry: RetryConfig = Field(default_factory=RetryConfig)
    spool_dir: Path | None = None
    # Recent accepted messages kept for GET /api/v1/deliveries (drills' proof of delivery).
    log_size: int = Field(default=200, ge=0, le=10_000)


_PAGING_SEVERITIES: tuple[Severity, ...] = ("critical",)


class MentionConfig(StrictModel):
    """Who is @-mentioned, for firing alerts of the listed severities."""

    mobiles: list[Mobile] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=lambda: list(_PAGING_SEVERITIES))
    at_all: bool = False


class TargetConfig(StrictModel):
    """One DingTalk custom robot."""

    url: SecretStr
    secret: SecretStr | None = None
    keyword: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    language: Language | None = None
    mentions: MentionConfig = Field(default_factory=MentionConfig)
    # Whether mobiles from the alerts' mention label are honoured on this robot.
    label_mentions: bool = True

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not re.match(r"^https?://[^\s/]+", raw):
            raise ValueError("expected an http(s) robot URL such as https://oapi.dingtalk.com/...")
        return value

    @field_validator("secret")
    @classmethod
    def _empty_secret_is_unsigned(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @property
    def signed(self) -> bool:
        """Whether requests to this robot carry timestamp and sign."""
        return self.secret is not None


class RenderConfig(StrictModel):
    """How messages look."""

    language: Language = "zh-CN"
    timezone: str = "Asia/Shanghai"
    templates_dir: Path = Path("templates")
    # Labels shown with each alert; the others are left to the silence link and Alertmanager.
    key_labels: list[str] = Field(
        default_factory=lambda: [
            "instance", "job", "queue", "provider", "feature", "target", "route", "dependency",
        ]
    )  # fmt: skip
    # Comma-separated mobiles in this alert label are @-mentioned while the alert fires.
    mention_label: str = "mention"
    # Used for links when an alert arrives without externalURL.
    external_url: str | None = Field(default=None, pattern=r"^https?://")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; try Asia/Shanghai or UTC") from None
        return value


class RelayConfig(StrictModel):
    """Everything the relay does."""

    listen: str = "127.0.0.1:18311"
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    targets: dict[TargetName, TargetConfig] = Field(min_length=1)

    _listen_is_host_port = field_validator("listen")(host_port)

    @model_validator(mode="after")
    def _deadline_leaves_room_for_a_send(self) -> RelayConfig:
        if self.webhook.deliver_timeout < self.delivery.send_timeout + 0.5:
            raise ValueError(
                "webhook.deliver_timeout must exceed delivery.send_timeout by at least 0.5s "
                f"(found {self.webhook.deliver_timeout:g}s and {self.delivery.send_timeout:g}s)"
            )
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        """listen split into host and port."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def language_of(self, target: str) -> Language:
        """The message language of a target."""
        return self.targets[target].language or self.render.language


def target_env_prefix(name: str) -> str:
    """``oncall`` -> ``OBSCTL_DINGTALK_ONCALL``."""
    return "OBSCTL_DINGTALK_" + name.upper().replace("-", "_")


def load(path: Path, environ: Mapping[str, str] | None = None) -> RelayConfig:
    """Read, resolve and validate a relay config; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    config = load_model(path, RelayConfig, environ, _apply_env_overrides, _explain)
    templates = config.render.templates_dir
    if not templates.is_absolute():
        config.render.templates_dir = (path.parent / templates).resolve()
    if config.delivery.spool_dir is not None and not config.delivery.spool_dir.is_absolute():
        config.delivery.spool_dir = (path.parent / config.delivery.spool_dir).resolve()
    return config


def _explain(error: Any, raw: dict[str, Any]) -> str:
    """The exporter's error line, plus which variable fills a missing robot URL."""
    text = describe_validation_error(error, raw)
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "missing" and loc[:1] == ("targets",) and loc[2:] == ("url",):
        text += f" (set it or {target_env_prefix(str(loc[1]))}_URL)"
    return text


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for var, key_path in _GLOBAL_OVERRIDES.items():
        if environ.get(var):
            _put(raw, key_path, environ[var])
    targets = raw.get("targets")
    if not isinstance(targets, dict):
        return
    for name in list(targets):
        prefix = target_env_prefix(str(name))
        for field in ("url", "secret"):
            value = environ.get(f"{prefix}_{field.upper()}")
            if value is not None and (value or field == "secret"):
                _put(raw, ("targets", name, field), value)


def _put(raw: dict[str, Any], key_path: tuple[str, ...], value: str) -> None:
    node = raw
    for part in key_path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[key_path[-1]] = value
