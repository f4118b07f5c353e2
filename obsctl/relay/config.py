"""The relay's YAML config: validated strictly, secrets from env or files, errors for people.

Loading follows the exporter's config (``obsctl.exporter.config``): any value may be
``${ENV_VAR}`` or ``${file:/path}``, and these environment variables override the file:

- ``OBSCTL_RELAY_LISTEN`` -> ``listen``, ``OBSCTL_RELAY_TOKEN`` -> ``webhook.token``,
  ``OBSCTL_RELAY_SPOOL_DIR`` -> ``delivery.spool_dir``;
- with a ``claim`` section: ``OBSCTL_RELAY_CLAIM_KEY`` -> ``claim.key``, ``OBSCTL_RELAY_CLAIM_URL``
  -> ``claim.url``, ``OBSCTL_RELAY_ALERTMANAGER_URL`` -> ``claim.alertmanager_url``;
- for every target ``<name>`` of the file, ``OBSCTL_DINGTALK_<NAME>_URL`` -> its ``url`` and
  ``OBSCTL_DINGTALK_<NAME>_SECRET`` -> its ``secret`` (``-`` in the name becomes ``_``).
"""

from __future__ import annotations

import os
import re
import tempfile
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
    set_path,
)
from obsctl.httpserve import ServerLimits
from obsctl.mail import EMAIL_ADDRESS, SmtpConfig

__all__ = [
    "ClaimConfig",
    "ConfigError",
    "MailConfig",
    "RelayConfig",
    "SmsConfig",
    "TargetConfig",
    "load",
]

Language = Literal["zh-CN", "en-US"]
Severity = Literal["critical", "warning", "info"]
# Target names become URL path segments, metric label values and env var names.
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
# A mobile number as DingTalk matches it in the text: digits, optionally with a +86- prefix.
Mobile = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9-]{4,19}$")]

DEFAULT_SPOOL_DIR = Path("/var/lib/obsctl/relay")
_GLOBAL_OVERRIDES: dict[str, tuple[str, ...]] = {
    "OBSCTL_RELAY_LISTEN": ("listen",),
    "OBSCTL_RELAY_TOKEN": ("webhook", "token"),
    "OBSCTL_RELAY_SPOOL_DIR": ("delivery", "spool_dir"),
}
_CLAIM_OVERRIDES: dict[str, str] = {
    "OBSCTL_RELAY_CLAIM_KEY": "key",
    "OBSCTL_RELAY_CLAIM_URL": "url",
    "OBSCTL_RELAY_ALERTMANAGER_URL": "alertmanager_url",
}
_SMS_OVERRIDES: dict[str, str] = {
    "OBSCTL_RELAY_SMS_SECRET_ID": "secret_id",
    "OBSCTL_RELAY_SMS_SECRET_KEY": "secret_key",
    "OBSCTL_RELAY_SMS_ENDPOINT": "endpoint",
}
# What an SMS template's variables may be filled with, in the order the template wants them.
SmsParam = Literal["alertname", "level", "minutes", "severity", "team"]
_DEFAULT_SMS_PARAMS: tuple[SmsParam, ...] = ("alertname", "minutes")


def known_zone(value: str) -> str:
    """Field validator: an IANA time zone name."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; try Asia/Shanghai or UTC") from None
    return value


class WebhookConfig(StrictModel):
    """The Alertmanager side: auth, body limit and how long a webhook may wait for delivery."""

    token: SecretStr | None = None
    # Alertmanager never retries a 4xx, so a group it sends must always fit: 8 MiB holds
    # several thousand alerts even with max_alerts unset.
    max_body_bytes: int = Field(default=8 * 1_048_576, ge=1_024, le=64 * 1_048_576)


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
    # DingTalk: "每个机器人每分钟最多发送20条。如果超过20条, 会限流10分钟" -- after a
    # rate-limit errcode the robot refuses everything for 10 minutes, so it is left alone.
    rate_limited_backoff: Duration = 600.0
    retry: RetryConfig = Field(default_factory=RetryConfig)
    # Accepted alerts and each robot's send budget are kept here, so a restart (or kill -9)
    # loses nothing and does not restart the rate limit. `null` keeps them in memory only.
    spool_dir: Path | None = DEFAULT_SPOOL_DIR
    # Alerts queued per target (newer states of a queued alert replace it, so this bounds
    # distinct alerts); beyond it webhooks get a 503 and Alertmanager keeps them.
    max_queue: int = Field(default=10_000, ge=10, le=1_000_000)
    # Recent accepted messages kept for GET /api/v1/deliveries (drills' proof of delivery).
    log_size: int = Field(default=200, ge=0, le=10_000)


_PAGING_SEVERITIES: tuple[Severity, ...] = ("critical",)
# Alerts someone should take: an info alert is not claimed, it is read.
_CLAIMED_SEVERITIES: tuple[Severity, ...] = ("critical", "warning")


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
    # Whether mobiles from the alerts' mention label are honoured on this robot; only
    # mobiles listed here or in mentions.mobiles are, so an alert cannot page a stranger.
    label_mentions: bool = True
    mentionable: list[Mobile] = Field(default_factory=list)

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
    # Used for silence links when a notification's externalURL is missing or not trusted.
    external_url: str | None = Field(default=None, pattern=r"^https?://")
    # Links (dashboard, runbook, query, silence) are shown only under these URL prefixes;
    # anyone who can post an alert to Alertmanager can write the others. Each entry may hold
    # several prefixes separated by spaces (for one ${ENV} reference).
    link_prefixes: list[str] = Field(default_factory=list)

    @field_validator("link_prefixes", mode="before")
    @classmethod
    def _split_prefixes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return value
        flat: list[Any] = []
        for item in value:
            flat.extend(item.split() if isinstance(item, str) else [item])
        return flat

    @field_validator("link_prefixes")
    @classmethod
    def _prefixes_are_urls(cls, value: list[str]) -> list[str]:
        bad = [prefix for prefix in value if not re.match(r"^https?://[^\s/]+", prefix)]
        if bad:
            raise ValueError(f"expected http(s) URL prefixes, found {bad[0][:80]!r}")
        return value

    _known_zone = field_validator("timezone")(known_zone)


class ClaimConfig(StrictModel):
    """Claim (认领) links in messages, and the page behind them that silences the alert."""

    # Where phones open the relay's claim page (its public address, behind a proxy in production).
    url: str = Field(pattern=r"^https?://[^\s/]+")
    # Signs the links; anyone holding it can claim any alert. At least 16 characters.
    key: SecretStr
    # The Alertmanager whose silences record claims (any peer of an HA cluster).
    alertmanager_url: str = Field(pattern=r"^https?://[^\s/]+")
    severities: list[Severity] = Field(default_factory=lambda: list(_CLAIMED_SEVERITIES))
    # The lengths a claimer may choose; the first is preselected.
    durations: list[Duration] = Field(
        default_factory=lambda: [3600.0, 1800.0, 7200.0, 14400.0], min_length=1, max_length=8
    )
    # A link stops working this long after its message, even if the alert still fires (every
    # repeated notification carries a fresh link).
    link_ttl: Duration = 86_400.0
    timeout: Duration = 5.0

    @field_validator("key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError(
                "the claim key must be at least 16 characters (e.g. openssl rand -hex 32)"
            )
        return value


class SmsConfig(StrictModel):
    """Tencent Cloud SMS (SendSms API 2021-01-11): a text to phones, the loudest escalation."""

    endpoint: str = Field(default="https://sms.tencentcloudapi.com", pattern=r"^https?://[^\s/]+$")
    region: str = Field(default="ap-guangzhou", pattern=r"^[a-z]+-[a-z-]+$")
    # An API key of a CAM user allowed sms:SendSms only.
    secret_id: SecretStr
    secret_key: SecretStr
    sdk_app_id: str = Field(pattern=r"^14[0-9]{8}$")
    # The approved signature (签名) and template (模板) the text is sent with.
    sign_name: str = Field(min_length=1, max_length=32)
    template_id: str = Field(pattern=r"^[0-9]{1,12}$")
    # What fills the template's variables {1}, {2}, ... in order.
    template_params: list[SmsParam] = Field(
        default_factory=lambda: list(_DEFAULT_SMS_PARAMS), max_length=10
    )
    # Tencent refuses a variable over 12 characters (TemplateParameterLengthLimit) unless the
    # account has a larger limit: each is cut to this.
    param_max_chars: int = Field(default=12, ge=1, le=100)
    # Prefixed to a mobile written without one (13800000000 -> +8613800000000).
    country_code: str = Field(default="+86", pattern=r"^\+[0-9]{1,4}$")
    timeout: Duration = Field(default=5.0, le=60)


class EscalationLevel(StrictModel):
    """One step of an escalation: after how long unclaimed, and who is told how loudly."""

    after: Duration
    # Relay targets (robots) that get the escalation message, @-mentioning as configured.
    targets: list[TargetName] = Field(min_length=1)
    at_all: bool = False
    mobiles: list[Mobile] = Field(default_factory=list)
    email: list[Annotated[str, StringConstraints(pattern=EMAIL_ADDRESS)]] = Field(
        default_factory=list
    )
    # Phones texted through escalation.sms.
    sms: list[Mobile] = Field(default_factory=list)


class EscalationConfig(StrictModel):
    """Alerts nobody claims or resolves are sent again, louder, level by level."""

    severities: list[Severity] = Field(default_factory=lambda: list(_PAGING_SEVERITIES))
    # By the alert's team label; "*" for every team not listed. Levels in order of `after`.
    policies: dict[str, list[EscalationLevel]] = Field(min_length=1)
    # How often unclaimed alerts are checked against Alertmanager.
    check_interval: Duration = 15.0
    # Needed when a level mails.
    smtp: SmtpConfig | None = None
    # Needed when a level texts.
    sms: SmsConfig | None = None

    @field_validator("policies")
    @classmethod
    def _levels_in_order(
        cls, value: dict[str, list[EscalationLevel]]
    ) -> dict[str, list[EscalationLevel]]:
        for team, levels in value.items():
            if not levels:
                raise ValueError(f"{team}: give at least one level")
            afters = [level.after for level in levels]
            if afters != sorted(afters) or len(set(afters)) != len(afters):
                raise ValueError(f"{team}: levels must come in increasing order of `after`")
        return value

    def levels_for(self, team: str) -> list[EscalationLevel]:
        """The levels of an alert's team (the "*" policy for a team not listed)."""
        return self.policies.get(team) or self.policies.get("*", [])


class MailRecipient(StrictModel):
    """One ``POST /email/<name>`` of Alertmanager's: who gets the mail, where claims are told."""

    to: list[Annotated[str, StringConstraints(pattern=EMAIL_ADDRESS)]] = Field(min_length=1)
    # The robot whose group hears of a claim made from this mail's links (none: no links).
    announce: TargetName | None = None


class MailConfig(StrictModel):
    """Alert emails the relay sends for Alertmanager, so that they can carry claim links."""

    smtp: SmtpConfig
    recipients: dict[TargetName, MailRecipient] = Field(min_length=1)
    timeout: Duration = Field(default=10.0, le=120)
    # Mails sent at once; the rest of Alertmanager's webhooks wait their turn.
    concurrency: int = Field(default=4, ge=1, le=64)


class RelayConfig(StrictModel):
    """Everything the relay does."""

    listen: str = "127.0.0.1:18311"
    server: ServerLimits = Field(default_factory=ServerLimits)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    targets: dict[TargetName, TargetConfig] = Field(min_length=1)
    claim: ClaimConfig | None = None
    escalation: EscalationConfig | None = None
    mail: MailConfig | None = None

    _listen_is_host_port = field_validator("listen")(host_port)

    @model_validator(mode="after")
    def _mail_announces_to_targets(self) -> RelayConfig:
        if self.mail is None:
            return self
        problems = [
            f"mail.recipients.{name}.announce: {recipient.announce!r} is not a target in targets"
            f" ({', '.join(self.targets)})"
            for name, recipient in self.mail.recipients.items()
            if recipient.announce is not None and recipient.announce not in self.targets
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _escalation_can_run(self) -> RelayConfig:
        escalation = self.escalation
        if escalation is None:
            return self
        problems = []
        if self.claim is None:
            problems.append("escalation: needs the claim section (claims stop it, and it asks"
                            " Alertmanager through claim.alertmanager_url)")  # fmt: skip
        for team, levels in escalation.policies.items():
            for index, level in enumerate(levels):
                where = f"escalation.policies.{team}.{index}"
                unknown = [t for t in level.targets if t not in self.targets]
                if unknown:
                    problems.append(f"{where}.targets: {unknown[0]!r} is not a target in targets"
                                    f" ({', '.join(self.targets)})")  # fmt: skip
                if level.email and escalation.smtp is None:
                    problems.append(f"{where}.email: needs escalation.smtp to send mail")
                if level.sms and escalation.sms is None:
                    problems.append(f"{where}.sms: needs escalation.sms to send a text")
        if problems:
            raise ValueError("; ".join(problems))
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
    spool = config.delivery.spool_dir
    if spool is not None:
        if not spool.is_absolute():
            spool = config.delivery.spool_dir = (path.parent / spool).resolve()
        problem = unwritable(spool)
        if problem:
            raise ConfigError(str(path), [f"delivery.spool_dir: {problem}"])
    return config


def unwritable(directory: Path) -> str | None:
    """Why the relay could not create or write `directory`, or None if it can.

    Tried for real (a temporary file in the nearest existing directory, removed at once):
    permission bits say nothing to root, and a read-only mount or /proc fail only on write.
    """
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory, so {directory} cannot be created"
    try:
        handle, name = tempfile.mkstemp(prefix=".obsctl-write-check-", dir=existing)
    except OSError as exc:
        verb = "write" if existing == directory else f"create {directory} in"
        return f"cannot {verb} {existing} ({exc.strerror})"
    os.close(handle)
    os.unlink(name)
    return None


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
            set_path(raw, key_path, environ[var])
    if isinstance(raw.get("claim"), dict):  # only fills a claim section the file has
        for var, key in _CLAIM_OVERRIDES.items():
            if environ.get(var):
                raw["claim"][key] = environ[var]
    escalation = raw.get("escalation")
    if isinstance(escalation, dict) and isinstance(escalation.get("sms"), dict):
        for var, key in _SMS_OVERRIDES.items():
            if environ.get(var):
                escalation["sms"][key] = environ[var]
    targets = raw.get("targets")
    if not isinstance(targets, dict):
        return
    for name in list(targets):
        prefix = target_env_prefix(str(name))
        for field in ("url", "secret"):
            value = environ.get(f"{prefix}_{field.upper()}")
            if value is not None and (value or field == "secret"):
                set_path(raw, ("targets", name, field), value)
