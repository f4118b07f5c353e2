"""Per-token count of accepted messages over a rolling window, and DingTalk's throttle past it."""

import time
from collections import defaultdict, deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RollingLimiter:
    """At most N accepted sends per key in any `window`; one more throttles the key for a while."""

    def __init__(
        self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._sent: defaultdict[str, deque[float]] = defaultdict(deque)
        self._throttled_until: dict[str, float] = {}

    def try_acquire(self, key: str, limit: int, throttle: float = 0.0) -> bool:
        """Count one send for `key` and return True, or return False if it is refused.

        A send over `limit` is refused and throttles the key for `throttle` seconds, during
        which every send is refused too (DingTalk's 10-minute 限流).
        """
        now = self._clock()
        if self._throttled_until.get(key, 0.0) > now:
            return False
        sent = self._sent[key]
        while sent and sent[0] <= now - self._window:
            sent.popleft()
        if len(sent) >= limit:
            if throttle > 0:
                self._throttled_until[key] = now + throttle
            return False
        sent.append(now)
        return True

    def reset(self) -> None:
        """Forget every send and throttle."""
        self._sent.clear()
        self._throttled_until.clear()
