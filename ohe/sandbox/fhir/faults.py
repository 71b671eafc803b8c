"""Fault injection: make the server slow, flaky, rate limited or down, on request.

OHE's breakers, retries and ``Retry-After`` handling can only be tested against a server that
misbehaves the way real ones do. Faults apply to ``/fhir`` requests only (never to the admin
endpoints that switch them off) and are decided before authentication, as a gateway would.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class FaultConfig:
    """The JSON of ``/_sandbox/faults``; every field is optional when posting."""

    latency_ms: int = 0  # added to every FHIR request
    error_rate: float = 0.0  # share of requests answered with error_status
    error_status: int = 503
    rate_limit_rate: float = 0.0  # share of requests answered 429 + Retry-After
    retry_after: int = 1  # seconds, sent with 429 and 503
    outage: bool = False  # 503 for every FHIR request
    fail_next: int = 0  # the next N requests get error_status (deterministic, for retry tests)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: dict[str, Any]) -> FaultConfig:
        """This config with ``changes`` applied; ValueError names any bad key or value."""
        types = {f.name: f.type for f in fields(self)}
        unknown = set(changes) - set(types)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            kind = {"int": int, "float": float, "bool": bool}[str(types[name])]
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            clean[name] = kind(value)
        new = replace(self, **clean)
        new.check()
        return new

    def check(self) -> None:
        for name in ("error_rate", "rate_limit_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 400 <= self.error_status <= 599:
            raise ValueError("error_status must be an HTTP error status (400-599)")
        if min(self.latency_ms, self.retry_after, self.fail_next) < 0:
            raise ValueError("latency_ms, retry_after and fail_next cannot be negative")


@dataclass(frozen=True)
class Fault:
    """What to answer instead of serving the request."""

    kind: str  # outage | rate_limited | error
    status: int
    retry_after: int | None

    @property
    def message(self) -> str:
        return MESSAGES[self.kind]


MESSAGES = {
    "outage": "the FHIR server is unavailable (sandbox outage)",
    "rate_limited": "too many requests (sandbox rate limit)",
    "error": "injected failure (sandbox fault)",
}
RETRY_AFTER_STATUSES = frozenset({429, 503})


class Faults:
    """The current fault settings and the per-request decision."""

    def __init__(self, config: FaultConfig | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.config = config or FaultConfig()
        self.config.check()

    def update(self, changes: dict[str, Any]) -> FaultConfig:
        with self._lock:
            self.config = self.config.merged(changes)
            return self.config

    def clear(self) -> FaultConfig:
        with self._lock:
            self.config = FaultConfig()
            return self.config

    def decide(self) -> tuple[float, Fault | None]:
        """(seconds to wait, the fault to answer or None) for one request."""
        with self._lock:
            c = self.config
            delay = c.latency_ms / 1000
            if c.outage:
                return delay, Fault("outage", 503, c.retry_after)
            if c.fail_next:
                self.config = replace(c, fail_next=c.fail_next - 1)
                return delay, self._error(c)
            if c.rate_limit_rate and self._random.random() < c.rate_limit_rate:
                return delay, Fault("rate_limited", 429, c.retry_after)
            if c.error_rate and self._random.random() < c.error_rate:
                return delay, self._error(c)
            return delay, None

    @staticmethod
    def _error(c: FaultConfig) -> Fault:
        retry = c.retry_after if c.error_status in RETRY_AFTER_STATUSES else None
        return Fault("error", c.error_status, retry)
