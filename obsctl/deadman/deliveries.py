"""The notices a channel accepted recently: the dead man's switch's proof of delivery.

The switch posts to DingTalk itself, so no relay sees its messages; like the relay's
(``obsctl.relay.deliveries``), this log is what a drill against a real robot reads back
(``GET /api/v1/deliveries``), since DingTalk offers no way to read a group. A DingTalk notice is
recorded only when DingTalk answered errcode 0, an email only when the SMTP server took it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from obsctl.deadman.notify import Sent
from obsctl.deadman.watch import Notice


@dataclass(frozen=True)
class Delivery:
    """One notice one channel accepted."""

    sent_at: float
    channel: str  # dingtalk | email
    kind: str  # missing | reminder | recovered
    heartbeat: str
    notice: str  # the notice's id, the same on every channel
    drill: str | None
    title: str
    text: str
    mobiles: tuple[str, ...]  # whom the DingTalk message @-mentions

    def as_json(self) -> dict[str, Any]:
        """The JSON form served by ``GET /api/v1/deliveries``."""
        found = asdict(self)
        found["mobiles"] = list(self.mobiles)
        return found


class DeliveryLog:
    """A bounded, in-memory list of recent deliveries on every channel, oldest first."""

    def __init__(self, size: int) -> None:
        self._entries: deque[Delivery] = deque(maxlen=size)

    def record(self, channel: str, notice: Notice, sent: Sent) -> None:
        """Remember that `channel` accepted `notice` just now."""
        self._entries.append(
            Delivery(time.time(), channel, notice.kind.value, notice.heartbeat, notice.id,
                     notice.drill, sent.title, sent.text, sent.mobiles)
        )  # fmt: skip

    def since(self, after: float, channel: str | None = None) -> list[Delivery]:
        """Deliveries at or after unix time `after`, optionally on one channel."""
        return [
            d
            for d in self._entries
            if d.sent_at >= after and (channel is None or d.channel == channel)
        ]
