"""Request and write counters, read by tests and benchmarks through ``/_sandbox/stats``.

They are how OHE proves claims such as "a re-sync writes nothing new" (``resources.unchanged``
grows, ``created``/``updated`` do not) or "a FHIR outage retries the push only". Write counts are
added when a store transaction commits, so a rolled-back transaction counts nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

RESOURCE_CHANGES = ("created", "updated", "unchanged", "deleted")


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._methods: Counter[str] = Counter()
            self._interactions: Counter[str] = Counter()
            self._statuses: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._resources: Counter[str] = Counter()
            self._auth: Counter[str] = Counter()

    def request(self, method: str) -> None:
        with self._lock:
            self._methods[method] += 1

    def interaction(self, name: str) -> None:
        with self._lock:
            self._interactions[name] += 1

    def status(self, status: int) -> None:
        with self._lock:
            self._statuses[str(status)] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def auth(self, event: str) -> None:
        with self._lock:
            self._auth[event] += 1

    def committed(self, changes: Mapping[str, int]) -> None:
        """Called by the store after each successful commit."""
        with self._lock:
            self._resources.update(changes)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {"total": sum(self._methods.values()), **self._methods},
                "interactions": dict(self._interactions),
                "transactions": self._interactions["transaction"],
                "batches": self._interactions["batch"],
                "statuses": dict(self._statuses),
                "faults": dict(self._faults),
                "resources": {k: self._resources[k] for k in RESOURCE_CHANGES},
                "auth": dict(self._auth),
            }
