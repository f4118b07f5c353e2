"""The dead man's switch's own messages and the two channels that carry them.

Neither channel goes through Prometheus, Alertmanager or the relay: DingTalk is posted to
directly with the relay's signed robot client, email through SMTP (stdlib smtplib, in a
thread). A send that fails is retried by the runner until the channel takes the notice.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import httpx

from obsctl.deadman.config import DeadmanConfig, EmailConfig, RobotConfig
from obsctl.deadman.watch import Kind, Notice
from obsctl.mail import deliver
from obsctl.relay import markdown
from obsctl.relay.compose import RobotMessage
from obsctl.relay.config import TargetConfig
from obsctl.relay.dingtalk import RobotClient
from obsctl.relay.render import format_duration, format_time

ALERT_NAME = "WatchdogMissing"
_HEADLINES = {
    "zh-CN": {
        Kind.MISSING: ("🔴", "告警中", "告警链路心跳中断"),
        Kind.REMINDER: ("🔴", "仍在告警", "告警链路心跳仍然中断"),
        Kind.RECOVERED: ("✅", "已恢复", "告警链路心跳已恢复"),
    },
    "en-US": {
        Kind.MISSING: ("🔴", "FIRING", "the alert path's heartbeat stopped"),
        Kind.REMINDER: ("🔴", "STILL FIRING", "the alert path's heartbeat is still missing"),
        Kind.RECOVERED: ("✅", "RESOLVED", "the alert path's heartbeat is back"),
    },
}
_WORDS = {
    "zh-CN": {
        "heartbeat": "心跳",
        "last_seen": "最后一次心跳",
        "never": "自本监控启动以来从未收到",
        "for": "已中断",
        "lasted": "中断了",
        "why": (
            "Prometheus → Alertmanager → relay 链路在规定时间内没有送达 Watchdog 心跳"
            "\N{FULLWIDTH COMMA}此时其他告警很可能也无法送达。请立即检查 Prometheus、"
            "Alertmanager 和 relay。"
        ),
        "back": "Watchdog 心跳重新送达\N{FULLWIDTH COMMA}告警链路恢复工作。",
        "drill_tag": "[演练]",
        "drill": (
            "【演练】这是故障演练 {id} 触发的告警\N{FULLWIDTH COMMA}用于验证告警链路"
            "\N{FULLWIDTH COMMA}无需处理。"
        ),
    },
    "en-US": {
        "heartbeat": "Heartbeat",
        "last_seen": "Last heartbeat",
        "never": "none since this watcher started",
        "for": "Missing for",
        "lasted": "Was missing for",
        "why": (
            "No Watchdog came through Prometheus -> Alertmanager -> relay in time, so other "
            "alerts are probably not arriving either. Check Prometheus, Alertmanager and the "
            "relay now."
        ),
        "back": "The Watchdog arrives again: the alert path works.",
        "drill_tag": "[DRILL]",
        "drill": "DRILL raised by fault drill {id} to prove the alert path; no action needed.",
    },
}


class Texts:
    """Titles and bodies of the notices, in the configured language and zone."""

    def __init__(self, config: DeadmanConfig) -> None:
        self._words = _WORDS[config.language]
        self._headlines = _HEADLINES[config.language]
        self._language = config.language
        self._zone = ZoneInfo(config.timezone)
        self._summaries = {h.name: h.summary for h in config.heartbeats}

    def title(self, notice: Notice) -> str:
        """e.g. "[告警中] WatchdogMissing alert-path" ("[演练] [告警中] ..." for a drill's)."""
        _, state, _ = self._headlines[notice.kind]
        drill = f"{self._words['drill_tag']} " if notice.drill else ""
        return f"{drill}[{state}] {ALERT_NAME} {notice.heartbeat}"

    def lines(self, notice: Notice, now: float) -> list[str]:
        """The facts of the notice, one per line, without markup."""
        words = self._words
        icon, _, headline = self._headlines[notice.kind]
        seen = (
            format_time(datetime.fromtimestamp(notice.last_seen, UTC), self._zone)
            if notice.last_seen is not None
            else words["never"]
        )
        lines = [f"{icon} {ALERT_NAME} · {headline}"]
        if notice.drill:
            lines.append(words["drill"].format(id=notice.drill))
        lines.append(f"{words['heartbeat']}: {notice.heartbeat}")
        summary = self._summaries.get(notice.heartbeat)
        if summary:
            lines.append(summary)
        lines.append(f"{words['last_seen']}: {seen}")
        if notice.kind is Kind.RECOVERED:
            lasted = format_duration(notice.created_at - notice.missing_since, self._language)
            lines += [f"{words['lasted']}: {lasted}", words["back"]]
        else:
            missing = format_duration(now - notice.missing_since, self._language)
            lines += [f"{words['for']}: {missing}", words["why"]]
        return lines

    def markdown(self, notice: Notice, now: float, robot: RobotConfig) -> RobotMessage:
        """The DingTalk message; on-call is @-mentioned unless it is the recovery."""
        first, *rest = self.lines(notice, now)
        body = [f"### {markdown.text(first)[0]}", ""]
        if notice.drill:
            drill, *rest = rest
            body += [f"> **{markdown.text(drill)[0]}**", ""]
        body += [f"- {markdown.text(line)[0]}" for line in rest]
        paging = notice.kind is not Kind.RECOVERED
        mobiles = robot.mobiles if paging else []
        if mobiles:
            body += ["", " ".join(f"@{m}" for m in mobiles)]
        title = self.title(notice)
        if robot.keyword and robot.keyword not in title:
            title = f"{robot.keyword} {title}"
        text = "\n".join(body) + "\n"
        if robot.keyword and robot.keyword not in text:
            text = f"{robot.keyword}\n\n{text}"
        return RobotMessage.build(title, text, mobiles, robot.at_all and paging, 1)

    def email(self, notice: Notice, now: float, config: EmailConfig) -> EmailMessage:
        """The email: the same facts as plain text."""
        message = EmailMessage()
        message["Subject"] = self.title(notice)
        message["From"] = config.sender
        message["To"] = ", ".join(config.to)
        message["X-Obsctl-Notice"] = notice.id
        message.set_content("\n".join(self.lines(notice, now)) + "\n")
        return message


@dataclass(frozen=True)
class Sent:
    """What a channel delivered (`problem` None), or why it could not."""

    problem: str | None
    title: str = ""
    text: str = ""
    mobiles: tuple[str, ...] = ()


def kind_of_title(title: str) -> Kind | None:
    """Which notice a title (as `Texts.title` writes it, in any language) is, if it is one."""
    for headlines in _HEADLINES.values():
        for kind, (_, state, _) in headlines.items():
            if f"[{state}] {ALERT_NAME} " in title:
                return kind
    return None


class DingTalkChannel:
    """Posts notices to the configured robot."""

    name = "dingtalk"

    def __init__(self, robot: RobotConfig, http: httpx.AsyncClient, timeout: float) -> None:
        self._robot = robot
        target = TargetConfig(url=robot.url, secret=robot.secret)
        self._client = RobotClient(target, http, timeout)

    async def send(self, notice: Notice, texts: Texts, now: float) -> Sent:
        """What DingTalk accepted, or why it did not."""
        message = texts.markdown(notice, now, self._robot)
        result = await self._client.send(message)
        if not result.ok:
            return Sent(f"{result.failure}: {result.detail}")
        return Sent(None, message.title, message.text, message.mobiles)


class EmailChannel:
    """Sends notices by SMTP."""

    name = "email"

    def __init__(self, config: EmailConfig, timeout: float) -> None:
        self._config = config
        self._timeout = timeout

    async def send(self, notice: Notice, texts: Texts, now: float) -> Sent:
        """What the SMTP server accepted, or why it did not."""
        message = texts.email(notice, now, self._config)
        try:
            await asyncio.to_thread(self._deliver, message)
        except (OSError, smtplib.SMTPException) as exc:
            return Sent(f"{type(exc).__name__}: {str(exc)[:120]}")
        return Sent(None, str(message["Subject"]), message.get_content())

    def _deliver(self, message: EmailMessage) -> None:
        deliver(self._config, message, self._timeout)
