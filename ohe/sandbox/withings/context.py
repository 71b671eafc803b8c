"""The per-instance object every handler receives: configuration, clock, store and services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Clock, SandboxConfig
from .store import Store

if TYPE_CHECKING:
    from .delivery import Dispatcher
    from .ratelimit import RollingWindowLimiter
    from .stats import Faults, Stats


@dataclass
class Sandbox:
    config: SandboxConfig
    clock: Clock
    store: Store
    limiter: RollingWindowLimiter
    stats: Stats
    faults: Faults
    dispatcher: Dispatcher


@dataclass(frozen=True)
class Caller:
    """Who a data call acts for: the user and app behind a valid access token."""

    userid: int
    client_id: str
    scopes: frozenset[str]
    timezone: str
