"""The operations guide's retry policy and API-client rate configuration, as used code.

``RetryHandler`` decides *whether* a failure is retried (by error class, the guide's table) and
*when* (exponential backoff with jitter, capped). Celery tasks turn its decision into
``self.retry(countdown=...)``; waits longer than ``LONG_WAIT`` are not held as broker ETAs (they
would outlive the visibility timeout) but stored in the database for beat to pick up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ohe.resilience.errors import ErrorClass, OheError, classify

LONG_WAIT = 300.0  # seconds; anything longer is parked in the database, not in the broker


@dataclass(frozen=True)
class RetryHandler:
    """Backoff ``base_delay * backoff_factor^attempt``, capped at ``max_delay``, with jitter."""

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    backoff_factor: float = 2.0
    jitter: float = 0.5  # the delay is drawn from [delay * (1 - jitter), delay]

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Retry retryable classes (api, network, rate_limit, open breaker) up to the limit."""
        if attempt >= self.max_retries:
            return False
        if isinstance(exc, OheError):
            return exc.retryable
        return classify(exc) in {ErrorClass.API, ErrorClass.NETWORK}

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``; honours a server's Retry-After."""
        hint = getattr(exc, "retry_after", None)
        if hint is not None and hint > 0:
            return float(hint)
        ceiling = min(self.max_delay, self.base_delay * self.backoff_factor**attempt)
        return random.uniform(ceiling * (1 - self.jitter), ceiling)  # noqa: S311 - jitter


def turn_after(exc: BaseException, default: float, spread: float) -> float:
    """Seconds until a rate-limited call tries again: the limiter's or server's hint (else
    ``default``) plus up to ``spread`` of jitter, so waiters do not all return at once.

    For work that waits its turn however long it takes, outside any retry budget; failures
    that count against one use :meth:`RetryHandler.delay`.
    """
    return (getattr(exc, "retry_after", None) or default) + random.uniform(0, spread)  # noqa: S311


# The guide's presets.
CRITICAL_RETRY = RetryHandler(max_retries=5, base_delay=2.0, max_delay=60.0, backoff_factor=2.0)
QUICK_RETRY = RetryHandler(max_retries=2, base_delay=0.5, max_delay=5.0, backoff_factor=1.5)
DEFAULT_RETRY = RetryHandler()


@dataclass(frozen=True)
class APIClientConfig:
    """How many calls a client may make per window, shared by every process (the guide's name)."""

    max_requests_per_window: int
    rate_limit_window: float = 60.0
    timeout: float = 30.0
