"""A provider's rate limit, shared by every process (the guide's APIClientConfig, made real).

Withings allows 120 calls per rolling minute for the whole application, token and notify calls
included. Every call first takes a slot from one sliding window kept in the coordination
backend (Redis in production), so a backfill of many users on many workers stays under the limit
and still uses it fully. Short waits are slept through; a wait longer than ``max_wait`` becomes
a ``RateLimitError`` whose ``retry_after`` the task turns into a delayed retry, so workers are
never parked on a limiter.

Calls take their slot in a lane (``context.rate_lane``). Live work (webhook-driven syncs, and
the code exchange for which a patient's browser waits) may use the whole window; bulk work
(backfills, polls) only ``bulk_share`` of it; setup work (subscriptions of new links) the share
halfway between. However big a backfill is, and however many patients link at once, room is
left for a fresh measurement to be fetched within seconds of its webhook.
"""

from __future__ import annotations

import time

from ohe.coordination import Coordination
from ohe.observability import context
from ohe.observability.metrics import PROVIDER_RATE_LIMITS
from ohe.resilience.errors import RateLimitError
from ohe.resilience.retry import APIClientConfig


class SharedRateLimit:
    def __init__(
        self,
        coordination: Coordination,
        provider: str,
        config: APIClientConfig,
        *,
        max_wait: float = 10.0,
        bulk_share: float = 1.0,
    ) -> None:
        self._coordination = coordination
        self.provider = provider
        self.config = config
        self.max_wait = max_wait
        full = config.max_requests_per_window
        self.limits = {
            context.LIVE: full,
            context.SETUP: max(int(full * (1 + bulk_share) / 2), 1),
            context.BULK: max(int(full * bulk_share), 1),
        }

    def acquire(self) -> float:
        """Take one call slot; returns the seconds waited (0 when a slot was free)."""
        waited = 0.0
        while True:
            limit = self.limits[context.current_lane()]
            wait = self._coordination.acquire_rate(
                self.provider, limit, self.config.rate_limit_window
            )
            if wait == 0.0:
                return waited
            if waited == 0.0:
                PROVIDER_RATE_LIMITS.labels(self.provider).inc()
                context.rate_wait()
            if waited + wait > (context.rate_patience() or self.max_wait):
                raise RateLimitError(
                    f"{self.provider} rate limit of {self.config.max_requests_per_window} calls "
                    f"per {self.config.rate_limit_window:g} s reached",
                    retry_after=wait,
                )
            time.sleep(wait)
            waited += wait
