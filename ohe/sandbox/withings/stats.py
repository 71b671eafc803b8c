"""Counters for ``GET /_sandbox/stats`` and the fault injector behind ``/_sandbox/faults``.

Both live in memory: they describe the current run (a benchmark resets them before it starts),
not the simulated world, which is in SQLite.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls: Counter[str] = Counter()
            self.rate_limited = 0
            self.tokens: Counter[str] = Counter()
            self.notifications: Counter[str] = Counter()
            self.faults = 0

    def call(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def token_request(self, grant: str, *, ok: bool) -> None:
        with self._lock:
            self.tokens[f"{grant}:{'ok' if ok else 'failed'}"] += 1

    def notification(self, outcome: str) -> None:
        with self._lock:
            self.notifications[outcome] += 1

    def fault(self) -> None:
        with self._lock:
            self.faults += 1

    def as_json(self, max_calls_in_window: int, limit: int, window: float) -> dict[str, Any]:
        with self._lock:
            grants: dict[str, dict[str, int]] = {}
            for key, n in self.tokens.items():
                grant, outcome = key.split(":")
                grants.setdefault(grant, {"ok": 0, "failed": 0})[outcome] = n
            return {
                "calls": {"total": sum(self.calls.values()), "by_action": dict(self.calls)},
                "rate_limited": self.rate_limited,
                "max_calls_in_window": max_calls_in_window,
                "rate_limit": {"limit": limit, "window": window},
                "token_requests": grants,
                "notifications": {
                    "attempts": self.notifications["attempt"],
                    "delivered": self.notifications["delivered"],
                    "failed_attempts": self.notifications["failed_attempt"],
                    "abandoned": self.notifications["abandoned"],
                },
                "faults_injected": self.faults,
            }


@dataclass
class FaultSettings:
    status: int = 0
    rate: float = 0.0
    outage: bool = False


class Faults:
    """Injected failures: an error status on a share of data calls, or a whole-API outage.

    The share is spread deterministically (an accumulator, not a coin toss): ``rate`` 0.5 fails
    exactly every other call, so a test can assert on it without flakiness.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settings = FaultSettings()
        self._credit = 0.0

    def configure(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = settings
            self._credit = 0.0

    def trip(self) -> int | None:
        """The status to answer this data call with, or None to serve it normally."""
        with self._lock:
            if not self.settings.status or self.settings.rate <= 0:
                return None
            self._credit += self.settings.rate
            if self._credit >= 1.0 - 1e-9:
                self._credit -= 1.0
                return self.settings.status
            return None
