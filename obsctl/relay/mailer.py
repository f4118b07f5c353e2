"""Alert emails sent by the relay for Alertmanager, each firing alert with its claim link.

Alertmanager's own email cannot carry a claim link: its templates cannot sign one. So its
receivers post the notification to ``POST /email/<recipient>`` and the relay mails it, in the
layout of Alertmanager's email template, adding the signed link of every claimable alert. The
webhook is answered only after the SMTP server took the mail: a refusal or a timeout answers
503 and Alertmanager, which keeps the notification, retries it. Alerts about the relay itself
never come this way (Alertmanager mails those itself, see obsctl.mixin.alertmanager).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2

from obsctl.mail import deliver
from obsctl.relay import markdown
from obsctl.relay.alertmanager import Alert, Notification
from obsctl.relay.claim_links import ClaimLinks
from obsctl.relay.config import MailConfig, RelayConfig
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.render import format_time
from obsctl.relay.words import template_text

log = logging.getLogger(__name__)

_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(template_text),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# Shown in the row's heading, not again among the labels.
_HEADING_LABELS = frozenset({"alertname", "severity", "team"})
MAX_TEXT = 2_000


class MailFailed(RuntimeError):
    """The SMTP server did not take the mail; the message says why (no secret in it)."""


@dataclass(frozen=True)
class Mail:
    """One rendered alert email."""

    subject: str
    html: str


def subject(notification: Notification) -> str:
    """Alertmanager's subject line: ``[DRILL] [FIRING:2] Name (critical, team platform)``."""
    common = notification.commonLabels
    firing = sum(alert.status == "firing" for alert in notification.alerts)
    status = notification.status.upper() + (f":{firing}" if notification.status == "firing" else "")
    drill = "[DRILL] " if common.get("drill") else ""
    name = common.get("alertname", "(several alerts)")
    severity, team = common.get("severity", "-"), common.get("team", "-")
    line = f"{drill}[{status}] {name} ({severity}, team {team})"
    # A header line never carries a newline, whatever the labels hold.
    return " ".join(line.split())[:500]


class AlertMailer:
    """Renders and sends the alert emails of the relay's mail recipients."""

    def __init__(
        self,
        config: MailConfig,
        links: ClaimLinks | None,
        claim_severities: Sequence[str],
        trusted_prefixes: Sequence[str],
        zone: ZoneInfo,
        metrics: RelayMetrics,
    ) -> None:
        self._config = config
        self._links = links
        self._claimed = frozenset(claim_severities)
        self._trusted = tuple(trusted_prefixes)
        self._zone = zone
        self._metrics = metrics
        self._slots = asyncio.Semaphore(config.concurrency)
        for name in config.recipients:
            for outcome in ("sent", "failed"):
                metrics.emails.labels(name, outcome)

    @staticmethod
    def from_config(
        config: RelayConfig, links: ClaimLinks | None, metrics: RelayMetrics
    ) -> AlertMailer | None:
        """The mailer of a relay config; None without a mail section."""
        if config.mail is None:
            return None
        claimed = config.claim.severities if config.claim is not None else []
        trusted = [*config.render.link_prefixes, *filter(None, [config.render.external_url])]
        zone = ZoneInfo(config.render.timezone)
        return AlertMailer(config.mail, links, claimed, trusted, zone, metrics)

    def knows(self, recipient: str) -> bool:
        """Whether `recipient` is configured."""
        return recipient in self._config.recipients

    @property
    def recipients(self) -> list[str]:
        """The configured recipient names."""
        return list(self._config.recipients)

    def render(self, recipient: str, notification: Notification) -> Mail:
        """The email of one notification for one recipient."""
        announce = self._config.recipients[recipient].announce
        alerts = sorted(notification.alerts, key=lambda a: a.status != "firing")
        title = subject(notification)
        external = markdown.link(notification.externalURL, self._trusted)
        html = _ENV.get_template("email.html.j2").render(
            subject=title,
            drill=notification.commonLabels.get("drill", ""),
            firing=sum(a.status == "firing" for a in alerts),
            resolved=sum(a.status == "resolved" for a in alerts),
            alertmanager_url=(
                f"{external}/#/alerts?receiver={quote(notification.receiver[:200])}"
                if external
                else None
            ),
            alerts=[self._row(alert, announce) for alert in alerts],
            truncated=notification.truncatedAlerts,
        )
        return Mail(title, html)

    def _row(self, alert: Alert, announce: str | None) -> dict[str, Any]:
        claim = None
        if self._links is not None and announce is not None and alert.severity in self._claimed:
            claim = self._links.link(announce, alert)
        annotations = alert.annotations
        return {
            "firing": alert.status == "firing",
            "status": alert.status.upper(),
            "name": alert.name[:200],
            "severity": alert.severity[:40],
            "team": alert.labels.get("team", "-")[:80],
            "summary": annotations.get("summary", "")[:MAX_TEXT],
            "description": annotations.get("description", "")[:MAX_TEXT],
            "since": format_time(alert.startsAt, self._zone),
            "ended": format_time(alert.endsAt, self._zone),
            "labels": [
                (name[:100], value[:200])
                for name, value in sorted(alert.labels.items())
                if name not in _HEADING_LABELS
            ],
            "claim_url": claim,
            "dashboard_url": markdown.link(annotations.get("dashboard_url"), self._trusted),
            "runbook_url": markdown.link(annotations.get("runbook_url"), self._trusted),
            "runbook": annotations.get("runbook", "")[:200],
            "query_url": markdown.link(alert.generatorURL, self._trusted),
        }

    async def send(self, recipient: str, notification: Notification) -> None:
        """Mail one notification; MailFailed when the SMTP server did not take it."""
        config = self._config
        mail = self.render(recipient, notification)
        message = EmailMessage()
        message["Subject"] = mail.subject
        message["From"] = config.smtp.sender
        message["To"] = ", ".join(config.recipients[recipient].to)
        message.set_content(mail.html, subtype="html")
        async with self._slots:
            try:
                await asyncio.wait_for(
                    asyncio.to_thread(deliver, config.smtp, message, config.timeout),
                    config.timeout + 1.0,
                )
            except smtplib.SMTPException as exc:  # an OSError too: before the next clause
                self._failed(recipient, f"{config.smtp.smarthost} refused the mail: {exc}")
            except (OSError, TimeoutError) as exc:
                self._failed(recipient, f"cannot reach {config.smtp.smarthost}: {exc}")
        self._metrics.emails.labels(recipient, "sent").inc()

    def _failed(self, recipient: str, why: str) -> None:
        self._metrics.emails.labels(recipient, "failed").inc()
        log.error("email %s: %s", recipient, why[:300])
        raise MailFailed(why[:300])
