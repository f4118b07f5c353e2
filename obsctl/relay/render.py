"""Markdown for DingTalk from the jinja2 templates ``dingtalk.<language>.md.j2``.

A template sets ``title`` (``{% set title %}``, also shown as its heading) and renders a body
that lists ``firing`` then ``resolved`` alerts, each an ``AlertView`` whose times, durations
and links are already formatted here, so templates only lay out text.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2

from obsctl.relay import markdown
from obsctl.relay.alertmanager import Alert
from obsctl.relay.config import Language, RenderConfig

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
# Label values are unbounded; a longer one is cut so one label cannot fill a message.
MAX_LABEL_CHARS = 200
ELLIPSIS = markdown.ELLIPSIS
UNKNOWN_TIME = "-"
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")
_UNITS = {
    "zh-CN": (("天", 86_400), ("小时", 3_600), ("分", 60), ("秒", 1)),
    "en-US": (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)),
}


@dataclass(frozen=True)
class AlertView:
    """One alert as the templates show it: every text already inert markdown."""

    status: str
    name: str
    severity: str
    summary: str
    description: str
    labels: tuple[tuple[str, str], ...]
    starts_at: str
    ends_at: str | None
    duration: str
    dashboard_url: str | None
    runbook_url: str | None
    # The runbook's path in the ops project, shown when no runbook URL is published.
    runbook: str | None
    silence_url: str | None
    generator_url: str | None
    truncated: bool
    # Set by `obsctl drill run` (a Prometheus external label): the message must say so.
    drill: str | None = None
    # The relay's signed claim page for this alert (claim_links), when claims are on.
    claim_url: str | None = None


@dataclass(frozen=True)
class Rendered:
    """Title and markdown text of one message."""

    title: str
    text: str


def format_duration(seconds: float, language: Language) -> str:
    """The two largest units of a duration: "1h 5m" or "1小时5分"."""
    remaining = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in _UNITS[language]:
        if remaining >= size or (size == 1 and not parts):
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
        if len(parts) == 2:
            break
    return ("" if language == "zh-CN" else " ").join(parts)


def format_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """ "2025-01-01 18:00:00 UTC+08:00" in the configured zone; "-" when unknown."""
    if moment is None:
        return UNKNOWN_TIME
    try:
        local = moment.astimezone(zone)
    except (OverflowError, ValueError):
        return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{local:%Y-%m-%d %H:%M:%S} UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def silence_url(
    external_url: str, labels: Mapping[str, str], key_labels: Sequence[str] = ()
) -> str | None:
    """Alertmanager's "new silence" page pre-filled with the alert's labels.

    Labels whose values are too long to match by hand are left out; when the link would
    still be too long, only the alert name and the key labels are kept.
    """
    if not external_url:
        return None
    short = {k: v for k, v in labels.items() if len(v) <= MAX_LABEL_CHARS and len(k) <= 100}
    for chosen in (short, {k: v for k, v in short.items() if k == "alertname" or k in key_labels}):
        ordered = sorted(chosen.items(), key=lambda item: (item[0] != "alertname", item[0]))
        matchers = ",".join(f'{markdown.plain(k)}="{_escape_matcher(v)}"' for k, v in ordered)
        query = urllib.parse.quote("{" + matchers + "}", safe="")
        url = f"{external_url.rstrip('/')}/#/silences/new?filter={query}"
        if len(url) <= markdown.MAX_LINK_CHARS:
            return url
    return None


def _escape_matcher(value: str) -> str:
    return markdown.plain(value).replace("\\", "\\\\").replace('"', '\\"')


def _duration(start: datetime | None, end: datetime, language: Language) -> str:
    if start is None:
        return UNKNOWN_TIME
    return format_duration((end - start).total_seconds(), language)


_FALLBACK_WORDS = {
    "zh-CN": {
        "firing": "告警中",
        "resolved": "已恢复",
        "note": "消息模板渲染失败\N{FULLWIDTH COMMA}以下为简化消息"
        "\N{FULLWIDTH SEMICOLON}详情请看 Alertmanager。",
        "more": "…… 还有 {} 条告警将在后续消息中发送",
    },
    "en-US": {
        "firing": "FIRING",
        "resolved": "RESOLVED",
        "note": "The message template failed; this is a simplified message. See Alertmanager.",
        "more": "… and {} more alerts follow in the next message",
    },
}


class Renderer:
    """Turns alerts into titled markdown with the templates of one directory."""

    def __init__(self, config: RenderConfig) -> None:
        self._config = config
        self._zone = ZoneInfo(config.timezone)
        # The configured external URL is trusted as a link target like the listed prefixes.
        self._trusted = (*config.link_prefixes, *filter(None, [config.external_url]))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(config.templates_dir),
            autoescape=False,  # markdown, not HTML
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.do"],
        )

    def template(self, language: Language) -> jinja2.Template:
        """The compiled template of a language (cached by jinja)."""
        return self._env.get_template(f"dingtalk.{language}.md.j2")

    def view(
        self,
        alert: Alert,
        external_url: str,
        language: Language,
        now: datetime,
        text_limit: int | None = None,
        claim_url: str | None = None,
    ) -> AlertView:
        """Format one alert; `text_limit` cuts summary and description to that many chars."""
        summary, cut_summary = markdown.text(alert.annotations.get("summary", ""), text_limit)
        description, cut_description = markdown.text(
            alert.annotations.get("description", ""), text_limit
        )
        end = alert.endsAt if alert.status == "resolved" and alert.endsAt else now
        shown = [
            (markdown.text(key, 64)[0], markdown.text(alert.labels[key], MAX_LABEL_CHARS)[0])
            for key in self._config.key_labels
            if alert.labels.get(key)
        ]
        drill = alert.labels.get("drill")
        return AlertView(
            status=alert.status,
            name=markdown.text(alert.name, MAX_LABEL_CHARS)[0],
            severity=markdown.text(alert.severity, 32)[0],
            summary=summary,
            description=description,
            labels=tuple(shown),
            starts_at=format_time(alert.startsAt, self._zone),
            ends_at=format_time(alert.endsAt, self._zone) if alert.endsAt else None,
            duration=_duration(alert.startsAt, end, language),
            dashboard_url=self._link(alert.annotations.get("dashboard_url")),
            runbook_url=self._link(alert.annotations.get("runbook_url")),
            runbook=markdown.text(alert.annotations["runbook"], 200)[0]
            if alert.annotations.get("runbook")
            else None,
            silence_url=self._silence_link(external_url, alert),
            generator_url=self._link(alert.generatorURL),
            truncated=cut_summary or cut_description,
            drill=markdown.text(drill, MAX_LABEL_CHARS)[0] if drill else None,
            claim_url=markdown.link(claim_url, [claim_url]) if claim_url else None,
        )

    def _link(self, url: str | None) -> str | None:
        return markdown.link(url, self._trusted)

    def _silence_link(self, external_url: str, alert: Alert) -> str | None:
        """The silence page of the notification's Alertmanager if trusted, else the config's."""
        trusted = self._link(external_url)
        base = trusted or self._config.external_url or ""
        return self._link(silence_url(base, alert.labels, self._config.key_labels))

    def render(
        self,
        language: Language,
        views: Sequence[AlertView],
        *,
        more: int = 0,
        keyword: str | None = None,
        mobiles: Sequence[str] = (),
        untold: int = 0,
    ) -> Rendered:
        """Title and text of one message holding `views`, with `more` alerts left for later.

        `untold` counts alerts Alertmanager left out of its notifications (``max_alerts``).
        """
        ordered = sorted(views, key=lambda v: SEVERITY_RANK.get(v.severity, len(SEVERITY_RANK)))
        firing = [v for v in ordered if v.status == "firing"]
        resolved = [v for v in ordered if v.status == "resolved"]
        lead = firing or resolved
        names = list(dict.fromkeys(v.name for v in views))
        name = names[0] if len(names) == 1 else f"{lead[0].name} +{len(names) - 1}"
        context = {
            "firing": firing,
            "resolved": resolved,
            "name": name,
            "severity": lead[0].severity if lead else "none",
            "more": more,
            "keyword": keyword,
            "mobiles": list(mobiles),
            "drills": sorted({v.drill for v in views if v.drill}),
            "untold": untold,
        }
        module = self.template(language).make_module(context)
        title = str(getattr(module, "title", "")).strip()
        text = _BLANK_LINES.sub("\n\n", str(module)).strip() + "\n"
        return self.finish(title, text, keyword, mobiles)

    def fallback(
        self,
        language: Language,
        alerts: Sequence[Alert],
        *,
        more: int = 0,
        keyword: str | None = None,
        mobiles: Sequence[str] = (),
    ) -> Rendered:
        """A plain message built without the template, for when rendering failed; never raises."""
        words = _FALLBACK_WORDS[language]
        firing = sum(alert.status == "firing" for alert in alerts)
        lead = markdown.text(alerts[0].name, MAX_LABEL_CHARS)[0] if alerts else "-"
        title = f"[{words['firing'] if firing else words['resolved']}] {lead}"
        lines = [f"### {title}", "", f"> {words['note']}", ""]
        for alert in alerts:
            state = words["firing"] if alert.status == "firing" else words["resolved"]
            name = markdown.text(alert.name, MAX_LABEL_CHARS)[0]
            severity = markdown.text(alert.severity, 32)[0]
            summary = markdown.text(alert.annotations.get("summary", ""), 300)[0]
            labels = ", ".join(
                f"{markdown.text(key, 64)[0]}={markdown.text(alert.labels[key], 100)[0]}"
                for key in self._config.key_labels
                if alert.labels.get(key)
            )
            lines.append(f"- **{name}** · {severity} · {state}")
            lines.extend(f"  {part}" for part in (summary, labels) if part)
        if more:
            lines.extend(["", words["more"].format(more)])
        return self.finish(title, "\n".join(lines) + "\n", keyword, mobiles)

    @staticmethod
    def finish(title: str, text: str, keyword: str | None, mobiles: Sequence[str]) -> Rendered:
        """The robot's keyword in title and text, and an @ for every mobile mentioned."""
        if keyword and keyword not in title:
            title = f"{keyword} {title}"
        if keyword and keyword not in text:
            text = f"{keyword}\n\n{text}"
        missing = [m for m in mobiles if f"@{m}" not in text]
        if missing:
            text += "\n" + " ".join(f"@{m}" for m in missing) + "\n"
        return Rendered(title=title, text=text)

    def check(self, languages: Sequence[Language]) -> None:
        """Render a sample message in each language; raise jinja2.TemplateError if one fails."""
        now = datetime.now(UTC)
        sample = Alert(
            status="firing",
            labels={"alertname": "Sample", "severity": "critical", "instance": "host:1"},
            annotations={"summary": "s", "description": "d", "runbook_url": "http://r"},
            startsAt=now - timedelta(minutes=5),
        )
        for language in languages:
            views = [self.view(sample, "http://am", language, now)]
            self.render(language, views, more=1, keyword="k", mobiles=["13800000000"])
