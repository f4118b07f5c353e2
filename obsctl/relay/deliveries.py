"""The relay's record of the messages DingTalk accepted: proof of delivery for drills.

DingTalk offers no API to read a group's messages back, so a drill against a real robot cannot
look in the group. The relay is the last hop that knows: a message counts as delivered only when
DingTalk answered errcode 0, and this log keeps the most recent of those, newest last.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One message a robot accepted."""

    sent_at: float
    target: str
    title: str
    text: str
    alerts: int

    def as_json(self) -> dict[str, Any]:
        """The JSON form served by ``GET /api/v1/deliveries``."""
        return asdict(self)


class DeliveryLog:
    """A bounded, in-memory list of recent deliveries across every target."""

    def __init__(self, size: int) -> None:
        self._entries: deque[Delivery] = deque(maxlen=size)

    def record(self, target: str, title: str, text: str, alerts: int) -> None:
        """Remember that `target` accepted a message just now."""
        self._entries.append(Delivery(time.time(), target, title, text, alerts))

    def since(self, after: float, target: str | None = None) -> list[Delivery]:
        """Deliveries at or after unix time `after`, optionally for one target, oldest first."""
        wanted = [d for d in self._entries if d.sent_at >= after]
        return [d for d in wanted if target is None or d.target == target]
