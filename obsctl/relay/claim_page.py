"""``GET|POST /claim/<link>``: the page behind a message's claim link.

GET shows the alert and asks who claims it and for how long; POST silences exactly that alert
in Alertmanager (``claims.ClaimDesk``) and tells the robot's group "已认领 by NAME until HH:MM".
Every other case is a page that says what happened: a forged or expired link (403), an alert
that is over (410), one already claimed (200, who and until when), Alertmanager unreachable
(503, claim there instead). A link can claim its alert once per episode: a second POST finds
the claim silence and changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from obsctl.relay import markdown
from obsctl.relay.claim_links import BadLink, ClaimLinks, ClaimTicket
from obsctl.relay.claims import AlertmanagerUnreachable, Claim, ClaimDesk, FiringAlert
from obsctl.relay.config import ClaimConfig, Language
from obsctl.relay.outbox import Outbox
from obsctl.relay.render import format_duration
from obsctl.relay.words import load_words, template_text

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
MAX_NOTE_CHARS = 200

# The page's and the notice's words per language; translators edit only that file.
WORDS: dict[Language, dict[str, str]] = load_words("claim")


@dataclass
class ClaimService:
    """What the claim page needs: links, Alertmanager, the robots and how to show times."""

    config: ClaimConfig
    links: ClaimLinks
    desk: ClaimDesk
    outboxes: Mapping[str, Outbox]
    language_of: Callable[[str], Language]
    zone: ZoneInfo
    key_labels: list[str]
    # For pages that name no robot (a forged link): the relay's render.language.
    language: Language
    # One claim at a time: two people pressing at once must not make two silences.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(template_text),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# A claim page is private to whoever holds the link: never cached, framed or leaked onwards.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

SERVICE = web.AppKey("claims", ClaimService)


def until_text(moment: dt.datetime, zone: ZoneInfo, now: dt.datetime | None = None) -> str:
    """ "03:40" today, "12-03 03:40" on another day, in the relay's zone."""
    local, today = moment.astimezone(zone), (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    return f"{local:%H:%M}" if local.date() == today.date() else f"{local:%m-%d %H:%M}"


class _Page:
    """Renders the page in the language of the link's robot."""

    def __init__(self, service: ClaimService, language: Language) -> None:
        self.service = service
        self.language = language
        self.words = WORDS[language]

    def alert_context(self, alert: FiringAlert) -> dict[str, Any]:
        labels = [(k, alert.labels[k]) for k in self.service.key_labels if alert.labels.get(k)]
        since = alert.starts_at.astimezone(self.service.zone)
        return {
            "name": alert.labels.get("alertname", "-"),
            "severity": alert.labels.get("severity", "none"),
            "summary": alert.annotations.get("summary", ""),
            "since": f"{since:%Y-%m-%d %H:%M:%S}",
            "labels": labels,
        }

    def respond(
        self,
        status: int,
        *,
        alert: FiringAlert | None = None,
        message: str = "",
        bad: bool = False,
        form: bool = False,
        error: str = "",
        who: str = "",
        note: str = "",
        heading: str | None = None,
    ) -> web.Response:
        durations = [
            (f"{seconds:g}", format_duration(seconds, self.language))
            for seconds in self.service.config.durations
        ]
        html = _ENV.get_template("claim.html.j2").render(
            lang=self.language,
            w=self.words,
            heading=heading or self.words["heading"],
            alert=self.alert_context(alert) if alert else None,
            message=message,
            bad=bad,
            form=form,
            error=error,
            who=who,
            note=note,
            durations=durations,
        )
        return web.Response(text=html, status=status, content_type="text/html", headers=_HEADERS)

    def held(self, alert: FiringAlert | None, claim: Claim) -> web.Response:
        until = until_text(claim.until, self.service.zone)
        text = self.words["held"].format(who=claim.who, until=until)
        return self.respond(200, alert=alert, message=text, heading=self.words["claimed_heading"])


async def _resolve(
    request: web.Request,
) -> tuple[_Page, ClaimTicket, FiringAlert] | web.Response:
    """The page, ticket and alert of a request, or the response that ends it."""
    service = request.app[SERVICE]
    try:
        ticket = service.links.check(request.match_info["token"])
    except BadLink as exc:
        page = _Page(service, service.language)  # no robot to take the language from
        return page.respond(403, message=page.words[f"bad_{exc.reason}"], bad=True)
    if ticket.target not in service.outboxes:
        page = _Page(service, service.language)
        return page.respond(404, message=page.words["unknown_target"], bad=True)
    page = _Page(service, service.language_of(ticket.target))
    try:
        alert = await service.desk.alert(ticket)
        claim = await service.desk.claim_of(ticket)
    except AlertmanagerUnreachable as exc:
        return page.respond(503, message=page.words["unreachable"].format(exc), bad=True)
    if claim is not None:
        return page.held(alert, claim)
    if alert is None:
        return page.respond(410, message=page.words["over"])
    return page, ticket, alert


async def show(request: web.Request) -> web.Response:
    """The claim form for a firing, unclaimed alert (or why there is none)."""
    resolved = await _resolve(request)
    if isinstance(resolved, web.Response):
        return resolved
    page, _, alert = resolved
    return page.respond(200, alert=alert, form=True)


async def submit(request: web.Request) -> web.Response:
    """Claim the alert: a silence of exactly its labels, and a notice to its robot's group."""
    service = request.app[SERVICE]
    form = await request.post()
    # On one line, as typed: Alertmanager and the page show it; the notice makes it inert.
    who = markdown.plain(str(form.get("who", "")))[:MAX_NAME_CHARS].strip()
    note = markdown.plain(str(form.get("note", "")))[:MAX_NOTE_CHARS].strip()
    async with service.lock:
        resolved = await _resolve(request)
        if isinstance(resolved, web.Response):
            return resolved
        page, ticket, alert = resolved
        try:
            seconds = float(str(form.get("duration", "")))
        except ValueError:
            seconds = -1.0
        problem = ""
        if not who:
            problem = page.words["name_missing"]
        elif seconds not in service.config.durations:
            problem = page.words["bad_duration"]
        if problem:
            return page.respond(400, alert=alert, form=True, error=problem, who=who, note=note)
        try:
            claim = await service.desk.claim(ticket, alert, who, seconds, note)
        except AlertmanagerUnreachable as exc:
            return page.respond(503, alert=alert, message=page.words["unreachable"].format(exc),
                                bad=True)  # fmt: skip
    until = until_text(claim.until, service.zone)
    log.info("%s: %s claimed %s until %s (silence %s)", ticket.target, who[:64],
             alert.labels.get("alertname", "-")[:100], until, claim.silence_id)  # fmt: skip
    title, line, note_word = (page.words[k] for k in ("notice_title", "notice_line", "notice_note"))
    name = markdown.text(alert.labels.get("alertname", "-"), 200)[0]
    shown_who = markdown.text(who)[0]
    text = f"### {title.format(name=name)}\n\n{line.format(who=shown_who, until=until)}\n"
    labels = [f"{k}=`{markdown.text(v, 200)[0]}`" for k, v in page.alert_context(alert)["labels"]]
    if labels:
        text += "\n- " + ", ".join(labels) + "\n"
    if note:
        text += f"\n- {note_word}: {markdown.text(note)[0]}\n"
    service.outboxes[ticket.target].announce(title.format(name=name), text)
    done = page.words["done"].format(who=who, until=until)
    return page.respond(200, alert=alert, message=done, heading=page.words["claimed_heading"])


def add_routes(app: web.Application, service: ClaimService) -> None:
    """Serve the claim page on `app`."""
    app[SERVICE] = service
    app.router.add_get("/claim/{token}", show)
    app.router.add_post("/claim/{token}", submit)
