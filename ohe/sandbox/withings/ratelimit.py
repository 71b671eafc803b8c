"""The application-wide rolling-window limit of §1.4 (120 calls per minute, all users together).

A sliding log rather than a token bucket: "N calls in any rolling window" is exactly what the
contract states and what a client's limiter must respect, so the sandbox measures it the same
way. Rejected calls are not admitted and do not extend the window, so a client that backs off
for one window always recovers. It also records the most requests (admitted or not) seen in
any window, which benchmarks use to check that OHE kept within its budget.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RollingWindowLimiter:
    def __init__(
        self, limit: int, window: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._monotonic = monotonic
        self._admitted: deque[float] = deque()
        self._seen: deque[float] = deque()
        self._lock = threading.Lock()
        self.max_seen = 0

    def admit(self) -> bool:
        now = self._monotonic()
        with self._lock:
            horizon = now - self.window
            for log in (self._admitted, self._seen):
                while log and log[0] <= horizon:
                    log.popleft()
            self._seen.append(now)
            self.max_seen = max(self.max_seen, len(self._seen))
            if len(self._admitted) >= self.limit:
                return False
            self._admitted.append(now)
            return True

    def reset_stats(self) -> None:
        with self._lock:
            self._seen.clear()
            self.max_seen = 0
