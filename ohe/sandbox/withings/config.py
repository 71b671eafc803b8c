"""Settings of one sandbox instance and the clock it reads time from.

The clock is injectable (and can be advanced through the admin API) because the contract has
lifetimes far longer than a test run: a 3 h access token, a 30 s code, an 8 h refresh grace.
Tests jump over them instead of waiting or shrinking them to unrealistic values.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CLIENT_ID = "ohe-sandbox-client"
DEFAULT_CLIENT_SECRET = "ohe-sandbox-secret"  # noqa: S105 - a published sandbox credential
DEFAULT_PORT = 8091

HOUR = 3600
DAY = 86400


@dataclass(frozen=True)
class SandboxConfig:
    """Every knob of the simulator; defaults are the published Withings values (§1.2, §1.4)."""

    db_path: Path | str = ":memory:"
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    # Registered callback URLs (the app's "Callback Url" setting). Empty = accept any http(s)
    # URL, which is what a shared sandbox needs; a deployment can pin them with --redirect-uri.
    redirect_uris: tuple[str, ...] = ()
    rate_limit: int = 120
    rate_window: float = 60.0
    access_ttl: int = 3 * HOUR
    refresh_ttl: int = 365 * DAY
    refresh_grace: int = 8 * HOUR
    code_ttl: int = 30
    delivery_speed: float = 1.0
    page_size: int = 100
    consent_history_days: int = 30
    callback_timeout: float = 2.0


@dataclass
class Clock:
    """Wall time plus an offset that only ever moves forward (``advance``)."""

    offset: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> int:
        """Unix seconds, the resolution of every timestamp in the Withings API."""
        return int(self.time())

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock never goes back")
        with self._lock:
            self.offset += seconds
