"""Per-token count of accepted messages over a rolling window."""

import time
from collections import defaultdict, deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RollingLimiter:
    """Allows at most N accepted sends per key in any window of `window` seconds."""

    def __init__(
        self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._sent: defaultdict[str, deque[float]] = defaultdict(deque)

    def try_acquire(self, key: str, limit: int) -> bool:
        """Count one send for `key` and return True, or return False if it is over `limit`."""
        now = self._clock()
        sent = self._sent[key]
        while sent and sent[0] <= now - self._window:
            sent.popleft()
        if len(sent) >= limit:
            return False
        sent.append(now)
        return True

    def reset(self) -> None:
        """Forget every send."""
        self._sent.clear()
