"""Per-robot send budget: at most N messages in any rolling window, spent so bursts merge.

Half the budget is for sending at once (a quiet robot delivers the first alerts without
delay); once half of it is used, rounds are spaced by ``window / (free + 1)``, which grows
as the budget shrinks. Alerts arriving during a gap wait and are merged into the next
message, so a burst of hundreds of alerts becomes a few messages instead of an hour of
queueing at one alert per message. Sends expire from the window one ``margin`` late so the
robot, which counts on its own clock when requests arrive, never sees one too many.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0
MARGIN_SECONDS = 1.0


class SendBudget:
    """Counts one robot's deliveries over a rolling window and says when the next may start."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        margin: float = MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._span = window + margin
        self._window = window
        self._clock = clock
        self._sent: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self._span:
            self._sent.popleft()

    def record(self) -> None:
        """Count a message DingTalk accepted just now."""
        self._sent.append(self._clock())

    def restore(self, ages: list[float]) -> None:
        """Count sends a previous run made, given how many seconds ago each was."""
        now = self._clock()
        self._sent.extend(sorted(now - age for age in ages if 0 <= age < self._span))

    def free(self) -> int:
        """How many more messages the window allows right now."""
        now = self._clock()
        self._expire(now)
        return max(0, self.limit - len(self._sent))

    def delay(self) -> float:
        """Seconds until the next round of sends may start (0 when it may start now)."""
        now = self._clock()
        free = self.free()
        if free == 0:
            return self._sent[0] + self._span - now
        if free * 2 > self.limit or not self._sent:
            return 0.0
        gap = self._window / (free + 1)
        return max(0.0, self._sent[-1] + gap - now)
