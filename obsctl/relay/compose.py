"""Pack queued alerts into DingTalk markdown messages that fit the robot's byte limit.

A message holds the longest run of queued alerts (in queue order) whose JSON body fits in
``max_message_bytes``; when alerts are left over it ends with "… and N more alerts follow",
and those alerts go in the next message. Only a single alert too big on its own has its
summary and description cut (marked as truncated), so every alert appears in some message.

Composing never fails: an alert the renderer cannot format, or a template that raises, gives
a plain fallback message instead (counted through ``on_render_failure`` and logged), so one
bad alert can never hold up the queue behind it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from obsctl.relay.alertmanager import Alert
from obsctl.relay.config import Language, Mobile, TargetConfig
from obsctl.relay.render import ELLIPSIS, AlertView, Rendered, Renderer

log = logging.getLogger(__name__)

# Successively shorter summary/description lengths tried for an alert too big on its own.
_TEXT_LIMITS = (4_000, 1_000, 300, 80, 0)
_MIN_ALERT_BYTES = 100
_MOBILE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")
_SPLIT = re.compile(r"[,;\s]+")


class Entry(BaseModel):
    """One alert waiting in a robot's queue, with what is needed to render it later."""

    model_config = ConfigDict(frozen=True)

    alert: Alert
    external_url: str = ""
    # The notification's group and how many of its alerts Alertmanager left out (max_alerts).
    group_key: str = ""
    truncated_alerts: int = 0


@dataclass(frozen=True)
class RobotMessage:
    """A markdown robot message and whom it @-mentions."""

    title: str
    text: str
    mobiles: tuple[Mobile, ...] = ()
    at_all: bool = False
    alerts: int = 0
    payload: bytes = field(default=b"", repr=False)

    @staticmethod
    def build(
        title: str, text: str, mobiles: Sequence[str], at_all: bool, alerts: int
    ) -> RobotMessage:
        """The message with its JSON body serialised once."""
        body: dict[str, Any] = {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": text},
            "at": {"atMobiles": list(mobiles), "isAtAll": at_all},
        }
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return RobotMessage(title, text, tuple(mobiles), at_all, alerts, payload)


def label_mobiles(alert: Alert, label: str) -> list[str]:
    """Valid mobiles listed in an alert's mention label (comma or space separated)."""
    raw = alert.labels.get(label, "")[:1_000]
    return [m for m in _SPLIT.split(raw) if _MOBILE.match(m)]


def untold(entries: Sequence[Entry]) -> int:
    """Alerts Alertmanager left out of the notifications these entries came in."""
    per_group: dict[str, int] = {}
    for entry in entries:
        key = entry.group_key
        per_group[key] = max(per_group.get(key, 0), entry.truncated_alerts)
    return sum(per_group.values())


class Composer:
    """Builds the messages of one target."""

    def __init__(
        self,
        renderer: Renderer,
        target: TargetConfig,
        language: Language,
        mention_label: str,
        max_bytes: int,
        on_render_failure: Callable[[], None] = lambda: None,
        claim_link: Callable[[Alert], str | None] = lambda alert: None,
    ) -> None:
        self._renderer = renderer
        self._claim_link = claim_link
        self._target = target
        self._language = language
        self._mention_label = mention_label
        self._max_bytes = max_bytes
        self._on_render_failure = on_render_failure
        self._failure_reported = False
        # A mention label may only page people this robot already knows.
        self._mentionable = {*target.mentions.mobiles, *target.mentionable}

    def mentions(self, entries: Sequence[Entry]) -> tuple[list[str], bool]:
        """Mobiles and @all for the firing alerts among `entries`."""
        mentions = self._target.mentions
        mobiles: list[str] = []
        at_all = False
        for entry in entries:
            if entry.alert.status != "firing":
                continue
            if entry.alert.severity in mentions.severities:
                mobiles.extend(mentions.mobiles)
                at_all = at_all or mentions.at_all
            if self._target.label_mentions:
                named = label_mobiles(entry.alert, self._mention_label)
                mobiles.extend(m for m in named if m in self._mentionable)
        return list(dict.fromkeys(mobiles)), at_all

    def compose(self, entries: Sequence[Entry], now: datetime) -> tuple[RobotMessage, int]:
        """The message for the longest prefix of `entries` that fits, and its length."""
        if not entries:
            raise ValueError("nothing to compose")
        self._failure_reported = False
        # No rendered alert is smaller than this, so only the head of a long queue is a candidate.
        limit = min(len(entries), max(1, self._max_bytes // _MIN_ALERT_BYTES))
        views: list[AlertView | None] = []

        def fits(count: int) -> RobotMessage | None:
            while len(views) < count:  # views are made only for alerts a message may hold
                views.append(self._view(entries[len(views)], now))
            message = self._message(entries, views, count)
            return message if len(message.payload) <= self._max_bytes else None

        best = fits(1)
        if best is None:
            return self._shrunk(entries, now), 1
        # Double until a message no longer fits, then search between the last two sizes.
        low, high = 1, limit
        while low < high:
            probe = min(high, low * 2)
            candidate = fits(probe)
            if candidate is None:
                high = probe - 1
                break
            low, best = probe, candidate
        while low < high:
            middle = (low + high + 1) // 2
            candidate = fits(middle)
            if candidate is not None:
                low, best = middle, candidate
            else:
                high = middle - 1
        return best, low

    def _view(self, entry: Entry, now: datetime, text_limit: int | None = None) -> AlertView | None:
        """The alert's view, or None when it cannot be rendered (the message falls back)."""
        try:
            return self._renderer.view(
                entry.alert,
                entry.external_url,
                self._language,
                now,
                text_limit,
                claim_url=self._claim_link(entry.alert),
            )
        except Exception:
            self._failed("an alert", entry)
            return None

    def _message(
        self, entries: Sequence[Entry], views: Sequence[AlertView | None], count: int
    ) -> RobotMessage:
        mobiles, at_all = self.mentions(entries[:count])
        shown = views[:count]
        rendered: Rendered | None = None
        if all(view is not None for view in shown):
            try:
                rendered = self._renderer.render(
                    self._language,
                    [view for view in shown if view is not None],
                    more=len(entries) - count,
                    keyword=self._target.keyword,
                    mobiles=mobiles,
                    untold=untold(entries[:count]),
                )
            except Exception:
                self._failed("the template", entries[0])
        if rendered is None:
            rendered = self._renderer.fallback(
                self._language,
                [entry.alert for entry in entries[:count]],
                more=len(entries) - count,
                keyword=self._target.keyword,
                mobiles=mobiles,
            )
        return RobotMessage.build(rendered.title, rendered.text, mobiles, at_all, count)

    def notice(
        self, title: str, text: str, mobiles: Sequence[str] = (), at_all: bool = False
    ) -> RobotMessage:
        """A message not made of queued alerts (a claim, an escalation), with the keyword."""
        rendered = self._renderer.finish(title, text, self._target.keyword, mobiles)
        return RobotMessage.build(rendered.title, rendered.text, mobiles, at_all, 0)

    def _failed(self, what: str, entry: Entry) -> None:
        if self._failure_reported:  # compose() tries several sizes; one failure, one report
            return
        self._failure_reported = True
        self._on_render_failure()
        log.exception(
            "cannot render %s (alert %r, fingerprint %r); sending a plain message instead",
            what, entry.alert.name[:100], entry.alert.identity,
        )  # fmt: skip

    def _shrunk(self, entries: Sequence[Entry], now: datetime) -> RobotMessage:
        """The first alert alone, its long texts cut until the message fits."""
        message = self._message(entries, [self._view(entries[0], now)], 1)
        for limit in _TEXT_LIMITS:
            message = self._message(entries, [self._view(entries[0], now, limit)], 1)
            if len(message.payload) <= self._max_bytes:
                return message
        # Still too big (e.g. very many key labels): cut the markdown itself.
        text = message.text
        while len(message.payload) > self._max_bytes and text:
            keep = len(text) * self._max_bytes // len(message.payload) - 64
            text = text[: max(0, keep)]
            cut = (
                text.rstrip()
                + "\n\n"
                + ELLIPSIS
                + "\n\n"
                + "".join(f"@{m} " for m in message.mobiles)
            )
            message = RobotMessage.build(message.title, cut, message.mobiles, message.at_all, 1)
        return message
