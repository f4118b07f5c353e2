"""Escalation: an alert nobody claims or resolves is sent again, louder, level by level.

Every firing alert of an escalated severity that a robot accepted is tracked by its firing
episode (fingerprint and start). Every ``check_interval`` the relay asks Alertmanager which
episodes still fire and which are claimed (``claims.ClaimDesk``): a resolved or claimed one is
forgotten, a silenced or inhibited one waits, and one that has fired unclaimed past a level's
``after`` gets that level's message on the level's robots (with @all or its mobiles), its
email and its text message (Tencent Cloud SMS). What is tracked is written to
``escalations.json`` in the spool directory before a level goes out, so a restart neither
forgets an alert nor sends a level twice (a crash mid-send loses that level rather than
texting everyone again). When Alertmanager cannot be asked, nothing is
escalated on guesses; the check is counted as failed and retried at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from obsctl.mail import deliver
from obsctl.relay import markdown
from obsctl.relay.alertmanager import Alert
from obsctl.relay.claim_links import ClaimLinks
from obsctl.relay.claims import AlertmanagerUnreachable, ClaimDesk
from obsctl.relay.config import EscalationConfig, EscalationLevel, Language
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.outbox import Outbox
from obsctl.relay.render import format_duration, format_time
from obsctl.relay.tencent_sms import SmsClient
from obsctl.relay.words import load_words

log = logging.getLogger(__name__)

STATE_FILE = "escalations.json"
# Alert episodes tracked at most; past it new ones are not escalated (and that is logged).
MAX_TRACKED = 10_000
MAIL_TIMEOUT = 10.0

# The message's words per language; translators edit only that file.
_WORDS: dict[str, dict[str, str]] = load_words("escalation")


@dataclass
class Tracked:
    """One firing episode under watch."""

    fingerprint: str
    started: int
    target: str
    first_sent: float  # unix time the first robot accepted it
    alert: dict[str, Any]  # the Alert as JSON, for the escalation's message
    levels_sent: int = 0

    @property
    def key(self) -> tuple[str, int]:
        """(fingerprint, episode start), as claims are keyed."""
        return self.fingerprint, self.started


class Escalator:
    """Tracks delivered alerts and escalates the unclaimed ones."""

    def __init__(
        self,
        config: EscalationConfig,
        desk: ClaimDesk,
        links: ClaimLinks,
        outboxes: Mapping[str, Outbox],
        metrics: RelayMetrics,
        language_of: Callable[[str], Language],
        zone: ZoneInfo,
        key_labels: list[str],
        state_dir: Path | None,
        clock: Callable[[], float] = time.time,
        sms: SmsClient | None = None,
    ) -> None:
        self._config = config
        self._desk = desk
        self._links = links
        self._outboxes = outboxes
        self._metrics = metrics
        self._language_of = language_of
        self._zone = zone
        self._key_labels = key_labels
        self._path = state_dir / STATE_FILE if state_dir is not None else None
        self._clock = clock
        self._sms = sms
        self._tracked: dict[tuple[str, int], Tracked] = {}
        self._severities = set(config.severities)

    # --- what outboxes tell it -------------------------------------------------------------

    def delivered(self, target: str, alert: Alert) -> None:
        """A robot accepted `alert`: watch its episode if it may escalate."""
        if alert.status != "firing" or alert.severity not in self._severities:
            return
        if not alert.fingerprint or alert.startsAt is None:
            return
        key = (alert.fingerprint[:64], int(alert.startsAt.timestamp()))
        if key in self._tracked or not self._config.levels_for(alert.labels.get("team", "")):
            return
        if len(self._tracked) >= MAX_TRACKED:
            log.error("escalation: %d alerts tracked already; %r will not escalate",
                      MAX_TRACKED, alert.name[:100])  # fmt: skip
            return
        self._tracked[key] = Tracked(
            key[0], key[1], target, self._clock(), alert.model_dump(mode="json")
        )
        self._save()

    def tracked(self) -> int:
        """Episodes under watch."""
        return len(self._tracked)

    # --- the loop ----------------------------------------------------------------------------

    def restore(self) -> None:
        """Take over what a previous run tracked (an unreadable file is logged and set aside)."""
        if self._path is None or not self._path.exists():
            return
        try:
            rows = json.loads(self._path.read_text(encoding="utf-8"))
            tracked = [Tracked(**row) for row in rows]
        except (OSError, ValueError, TypeError) as exc:
            aside = self._path.with_suffix(f".unreadable-{int(time.time())}")
            with contextlib.suppress(OSError):
                self._path.rename(aside)
            log.error("escalation: cannot read %s (%s); set aside as %s", self._path, exc, aside)
            return
        self._tracked = {t.key: t for t in tracked}
        if tracked:
            log.info("escalation: %d unclaimed alerts restored from %s", len(tracked), self._path)

    async def run(self) -> None:
        """Check every check_interval until cancelled."""
        while True:
            await asyncio.sleep(self._config.check_interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end escalation for good
                log.exception("escalation: the check failed")

    async def check(self) -> None:
        """Forget resolved and claimed episodes; escalate the due ones."""
        if not self._tracked:
            return
        try:
            states = await self._desk.episodes()
            claims = await self._desk.claims()
        except AlertmanagerUnreachable as exc:
            self._metrics.escalation_errors.labels("alertmanager").inc()
            log.warning("escalation: cannot ask Alertmanager (%s); nothing escalated now", exc)
            return
        now = self._clock()
        changed = False
        for key, tracked in list(self._tracked.items()):
            state = states.get(key)
            if state is None or key in claims:  # resolved, or someone has it
                del self._tracked[key]
                changed = True
                continue
            if state != "active":  # silenced or inhibited: nobody needs to be woken
                continue
            levels = self._config.levels_for(tracked.alert["labels"].get("team", ""))
            while tracked.levels_sent < len(levels):
                level = levels[tracked.levels_sent]
                if now - tracked.first_sent < level.after:
                    break
                tracked.levels_sent += 1
                self._save()
                await self._escalate(tracked, tracked.levels_sent, level, now)
        if changed:
            self._save()

    async def _escalate(self, tracked: Tracked, number: int, level: EscalationLevel,
                        now: float) -> None:  # fmt: skip
        alert = Alert.model_validate(tracked.alert)
        age = now - alert.startsAt.timestamp() if alert.startsAt else now - tracked.first_sent
        log.warning("escalation: %r unclaimed for %.0fs, level %d", alert.name[:100], age, number)
        self._metrics.escalations.labels(str(number)).inc()
        for target in level.targets:
            language = self._language_of(target)
            title, text = self._message(alert, number, age, language, target)
            outbox = self._outboxes[target]
            outbox.announce(title, text, mobiles=level.mobiles, at_all=level.at_all)
        if level.email and self._config.smtp is not None:
            title, text = self._message(alert, number, age, self._language_of(tracked.target),
                                        tracked.target, plain=True)  # fmt: skip
            mail = EmailMessage()
            mail["Subject"], mail["From"] = title, self._config.smtp.sender
            mail["To"] = ", ".join(level.email)
            mail.set_content(text)
            try:
                await asyncio.to_thread(deliver, self._config.smtp, mail, MAIL_TIMEOUT)
            except OSError as exc:
                self._metrics.escalation_errors.labels("mail").inc()
                log.error("escalation: cannot mail level %d of %r (%s)", number,
                          alert.name[:100], exc)  # fmt: skip
            except Exception as exc:  # smtplib's refusals
                self._metrics.escalation_errors.labels("mail").inc()
                log.error("escalation: the mail server refused level %d of %r (%s)", number,
                          alert.name[:100], str(exc)[:200])  # fmt: skip
        if level.sms and self._sms is not None:
            await self._text(alert, number, age, level.sms)

    async def _text(self, alert: Alert, number: int, age: float, mobiles: list[str]) -> None:
        """Send the level's SMS; what Tencent refused is counted and logged, never raised."""
        assert self._sms is not None
        values = {
            "alertname": alert.name, "level": str(number), "minutes": str(max(1, round(age / 60))),
            "severity": alert.severity, "team": alert.labels.get("team", ""),
        }  # fmt: skip
        result = await self._sms.send(mobiles, values)
        self._metrics.escalation_sms.labels("sent").inc(len(result.sent))
        if result.error is not None:
            self._metrics.escalation_errors.labels("sms").inc()
            self._metrics.escalation_sms.labels("failed").inc(len(mobiles))
            log.error("escalation: cannot text level %d of %r (%s)", number, alert.name[:100],
                      result.error)  # fmt: skip
            return
        if result.refused:
            self._metrics.escalation_errors.labels("sms").inc()
            self._metrics.escalation_sms.labels("failed").inc(len(result.refused))
            log.error(
                "escalation: SMS of level %d of %r refused for %s",
                number,
                alert.name[:100],
                ", ".join(f"{p} ({c})" for p, c in result.refused),
            )
        if result.sent:
            log.info("escalation: level %d of %r texted to %s", number, alert.name[:100],
                     ", ".join(result.sent))  # fmt: skip

    def _message(self, alert: Alert, number: int, age: float, language: Language,
                 target: str, plain: bool = False) -> tuple[str, str]:  # fmt: skip
        words = _WORDS[language]
        name = markdown.text(alert.name, 200)[0]
        title = words["title"].format(level=number, name=name)
        lead = words["lead"].format(age=format_duration(age, language))
        summary = markdown.text(alert.annotations.get("summary", ""), 500)[0]
        labels = ", ".join(
            f"{key}=`{markdown.text(alert.labels[key], 200)[0]}`"
            for key in self._key_labels
            if alert.labels.get(key)
        )
        link = self._links.link(target, alert)
        lines = [f"### 🚨 {title}", "", lead, ""]
        if summary:
            lines.append(f"- **{words['summary']}**: {summary}")
        if labels:
            lines.append(f"- **{words['labels']}**: {labels}")
        lines.append(f"- **{words['since']}**: {format_time(alert.startsAt, self._zone)}")
        if link:
            lines += ["", f"{words['claim']}: {link}" if plain else f"[{words['claim']}]({link})"]
        text = "\n".join(lines) + "\n"
        return title, text.replace("**", "") if plain else text

    def _save(self) -> None:
        """Write what is tracked (atomically: a crash leaves the old file or the new one)."""
        if self._path is None:
            return
        rows = [asdict(t) for t in self._tracked.values()]
        temporary = self._path.with_suffix(".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump(rows, handle, ensure_ascii=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self._path)
        except OSError as exc:
            self._metrics.escalation_errors.labels("state_file").inc()
            log.error("escalation: cannot write %s (%s); a restart would forget it", self._path,
                      exc.strerror)  # fmt: skip
