"""Pack queued alerts into DingTalk markdown messages that fit the robot's byte limit.

A message holds the longest run of queued alerts (oldest first) whose JSON body fits in
``max_message_bytes``; when alerts are left over it ends with "… and N more alerts follow",
and those alerts go in the next message. Only a single alert too big on its own has its
summary and description cut (marked as truncated), so every alert appears in some message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from obsctl.relay.alertmanager import Alert
from obsctl.relay.config import Language, Mobile, TargetConfig
from obsctl.relay.render import ELLIPSIS, AlertView, Renderer

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
    raw = alert.labels.get(label, "")
    return [m for m in _SPLIT.split(raw) if _MOBILE.match(m)]


class Composer:
    """Builds the messages of one target."""

    def __init__(
        self,
        renderer: Renderer,
        target: TargetConfig,
        language: Language,
        mention_label: str,
        max_bytes: int,
    ) -> None:
        self._renderer = renderer
        self._target = target
        self._language = language
        self._mention_label = mention_label
        self._max_bytes = max_bytes

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
                mobiles.extend(label_mobiles(entry.alert, self._mention_label))
        return list(dict.fromkeys(mobiles)), at_all

    def compose(self, entries: Sequence[Entry], now: datetime) -> tuple[RobotMessage, int]:
        """The message for the longest prefix of `entries` that fits, and its length."""
        if not entries:
            raise ValueError("nothing to compose")
        # No rendered alert is smaller than this, so only the head of a long queue is a candidate.
        candidates = entries[: max(1, self._max_bytes // _MIN_ALERT_BYTES)]
        views = [self._view(entry, now) for entry in candidates]
        low, high = 1, len(candidates)
        best = self._message(entries, views, 1)
        if len(best.payload) > self._max_bytes:
            return self._shrunk(entries, now), 1
        while low < high:
            middle = (low + high + 1) // 2
            candidate = self._message(entries, views, middle)
            if len(candidate.payload) <= self._max_bytes:
                low, best = middle, candidate
            else:
                high = middle - 1
        return best, low

    def _view(self, entry: Entry, now: datetime, text_limit: int | None = None) -> AlertView:
        return self._renderer.view(entry.alert, entry.external_url, self._language, now, text_limit)

    def _message(
        self, entries: Sequence[Entry], views: Sequence[AlertView], count: int
    ) -> RobotMessage:
        mobiles, at_all = self.mentions(entries[:count])
        rendered = self._renderer.render(
            self._language,
            views[:count],
            more=len(entries) - count,
            keyword=self._target.keyword,
            mobiles=mobiles,
        )
        return RobotMessage.build(rendered.title, rendered.text, mobiles, at_all, count)

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
