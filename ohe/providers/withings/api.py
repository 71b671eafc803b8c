"""One Withings HTTP call: form POST, bearer token, ``{status, body}`` envelope, classified errors.

Every call — data, token and notify alike — takes a slot of the application-wide rate limit
first (Withings counts all of them against 120 per rolling minute), then goes through the
``withings_api`` breaker, and is counted per endpoint (``measure.getmeas``). The envelope's
``status`` is mapped to an OHE error class through ``statuses.GROUPS``; an auth-group answer to
a call made with a ``TokenSource`` refreshes the token once (serialized by the token source)
and retries the call once. Tokens travel only in the ``Authorization`` header and codes and
secrets only in the form body: no message, log line or metric label built here contains them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ohe.coordination import Coordination
from ohe.observability.metrics import (
    PROVIDER_API_ERRORS,
    PROVIDER_CALL_DURATION,
    PROVIDER_CALLS,
    PROVIDER_RATE_LIMITS,
)
from ohe.observability.scrub import scrub
from ohe.providers.base import TokenSource
from ohe.providers.ratelimit import SharedRateLimit
from ohe.providers.withings import statuses
from ohe.resilience.breakers import Breaker
from ohe.resilience.errors import (
    ApiError,
    AuthError,
    CircuitOpenError,
    ErrorClass,
    NetworkError,
    OheError,
    RateLimitError,
    error_for_status,
    error_of_class,
)
from ohe.resilience.retry import APIClientConfig
from ohe.settings import Settings

log = logging.getLogger(__name__)

PROVIDER = "withings"
ERROR_TEXT_LIMIT = 200  # characters of Withings' own ``error`` text kept in a message

#: Turns the default error of a status into the one a caller means (e.g. 503 on a refresh is
#: an invalid grant, 293 on subscribe is a rejected callback URL).
Refine = Callable[[int, OheError], OheError]


def rate_window_margin(window: float) -> float:
    """Seconds added to the limiter's window: our clock starts a call a little before
    Withings' does (lock waits, latency jitter), so an exact window could let N+1 calls land
    inside one of Withings' windows. 1 % (at least 50 ms) costs 1 % of throughput."""
    return max(0.05, window * 0.01)


def endpoint_name(path: str, action: str) -> str:
    """Metric label of a call: ``/v2/measure`` + ``getactivity`` → ``measure.getactivity``."""
    return f"{path.rstrip('/').rsplit('/', 1)[-1]}.{action}"


@dataclass(frozen=True)
class Outgoing:
    """One call as it will be sent (the token is added per attempt, never stored here)."""

    path: str
    endpoint: str
    form: dict[str, str] = field(repr=False)  # may hold a code, a refresh token, the secret
    accept: frozenset[int] = frozenset()
    refine: Refine | None = None


def status_of(exc: BaseException) -> int | None:
    """The Withings ``status`` an error came from (None for HTTP-level and network errors)."""
    return getattr(exc, "withings_status", None)


class WithingsApi:
    """The transport shared by every link (one pooled HTTP session per process)."""

    def __init__(
        self,
        settings: Settings,
        coordination: Coordination,
        breaker: Breaker,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = settings.withings_api_url.rstrip("/")
        self.timeout = settings.provider_timeout
        window = settings.withings_rate_window
        self.rate_limit = SharedRateLimit(
            coordination,
            PROVIDER,
            APIClientConfig(
                settings.withings_rate_limit,
                window + rate_window_margin(window),
                timeout=settings.provider_timeout,
            ),
            bulk_share=settings.bulk_rate_share,
        )
        self.breaker = breaker
        self.http = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def call(
        self,
        path: str,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        tokens: TokenSource | None = None,
        accept: frozenset[int] = frozenset(),
        refine: Refine | None = None,
    ) -> dict[str, Any]:
        """The ``body`` of a successful call (status 0 or one of ``accept``), else raises.

        With ``tokens``, an authentication failure refreshes the token once and retries once;
        a second failure (or a failed refresh) propagates as ``AuthError``.
        """
        form = {"action": action}
        form.update({k: str(v) for k, v in (params or {}).items() if v is not None})
        outgoing = Outgoing(path, endpoint_name(path, action), form, accept, refine)
        if tokens is None:
            return self._attempt(outgoing, None)
        token = tokens.current()
        try:
            return self._attempt(outgoing, token)
        except AuthError:
            log.info(
                "Withings refused the access token; refreshing once",
                extra={
                    "operation": "provider_call",
                    "provider": PROVIDER,
                    "endpoint": outgoing.endpoint,
                },
            )
        return self._attempt(outgoing, tokens.refreshed(token))

    # --- one attempt ---------------------------------------------------------------------------

    def _attempt(self, outgoing: Outgoing, token: str | None) -> dict[str, Any]:
        try:
            # The slot is taken outside the breaker: a local wait or a Redis hiccup says
            # nothing about Withings' health and must not count for (or against) the breaker.
            self.rate_limit.acquire()
            body = self.breaker.call(self._send, outgoing, token)
        except CircuitOpenError:
            # The breaker counted it in ohe_provider_api_errors_total already.
            PROVIDER_CALLS.labels(
                PROVIDER, outgoing.endpoint, ErrorClass.CIRCUIT_BREAKER.value
            ).inc()
            raise
        except OheError as exc:
            self._failed(outgoing.endpoint, exc)
            raise
        PROVIDER_CALLS.labels(PROVIDER, outgoing.endpoint, "success").inc()
        return body

    def _send(self, outgoing: Outgoing, token: str | None) -> dict[str, Any]:
        endpoint = outgoing.endpoint
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.perf_counter()
        try:
            response = self.http.post(
                f"{self.base_url}{outgoing.path}",
                data=outgoing.form,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout:
            raise NetworkError(f"Withings {endpoint} timed out after {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise NetworkError(f"Withings {endpoint} unreachable ({type(exc).__name__})") from None
        finally:
            PROVIDER_CALL_DURATION.labels(PROVIDER, endpoint).observe(time.perf_counter() - started)
        try:
            return _envelope_body(response, outgoing)
        except OheError as exc:
            exc.withings_answered = True  # type: ignore[attr-defined]  # vs refused locally
            raise

    @staticmethod
    def _failed(endpoint: str, exc: OheError) -> None:
        """Count and log a failed attempt (``limited``: the local limiter refused the slot)."""
        limited = (
            isinstance(exc, RateLimitError) and getattr(exc, "withings_answered", None) is None
        )
        if not limited:  # the limiter counts its own waits; a refused slot is not a call
            PROVIDER_CALLS.labels(PROVIDER, endpoint, exc.error_type).inc()
        PROVIDER_API_ERRORS.labels(PROVIDER, exc.error_type).inc()
        if isinstance(exc, RateLimitError) and not limited:
            PROVIDER_RATE_LIMITS.labels(PROVIDER).inc()  # Withings itself said "too many"
        log.log(
            logging.INFO if isinstance(exc, AuthError) else logging.WARNING,
            "Withings call failed",
            extra={
                "operation": "provider_call",
                "provider": PROVIDER,
                "endpoint": endpoint,
                "error_type": exc.error_type,
                "withings_status": status_of(exc),
                "error": str(exc),
            },
        )


def _envelope_body(response: requests.Response, outgoing: Outgoing) -> dict[str, Any]:
    """Never infer success from HTTP 200: only ``status`` 0 (or an accepted status) is one."""
    endpoint = outgoing.endpoint
    code = response.status_code
    if code == 429:
        raise RateLimitError(
            f"Withings {endpoint} answered HTTP 429", retry_after=_retry_after(response)
        )
    if code != 200:
        raise error_for_status(code, f"Withings {endpoint} answered HTTP {code}")
    try:
        envelope = response.json()
    except ValueError:
        raise ApiError(f"Withings {endpoint} answered HTTP 200 without a JSON envelope") from None
    status = envelope.get("status") if isinstance(envelope, dict) else None
    if not isinstance(status, int) or isinstance(status, bool):
        raise ApiError(f"Withings {endpoint} answered an envelope without a status")
    body = envelope.get("body")
    body = body if isinstance(body, dict) else {}
    if status == statuses.OK or status in outgoing.accept:
        return body
    group = statuses.group_of(status)
    detail = envelope.get("error")
    text = f": {scrub(detail)[:ERROR_TEXT_LIMIT]}" if isinstance(detail, str) and detail else ""
    error = error_of_class(
        group.error_class,
        f"Withings {endpoint} answered status {status} ({group.name}){text}",
        group.retry_after,
    )
    if group is statuses.UNKNOWN:
        log.warning(
            "Withings answered a status in no known group; treated as transient",
            extra={"operation": "provider_call", "provider": PROVIDER, "endpoint": endpoint,
                   "withings_status": status},
        )  # fmt: skip
    if outgoing.refine is not None:
        error = outgoing.refine(status, error)
    error.withings_status = status  # type: ignore[attr-defined]
    raise error


def _retry_after(response: requests.Response) -> float:
    """``Retry-After`` in seconds if the server sent a number, else Withings' one-minute window."""
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return statuses.RATE_LIMIT_RETRY_AFTER
    return seconds if math.isfinite(seconds) and seconds > 0 else statuses.RATE_LIMIT_RETRY_AFTER
