"""Circuit breakers whose state every process shares, and the guide's registry API.

Why pybreaker with its Redis storage: it has the guide's three knobs (failure threshold, success
threshold, reset timeout) and keeps state where every web and worker process sees it, so one
worker's tripping stops all of them. The ``circuitbreaker`` package keeps state per process and
has no success threshold.

What we add around it:
- only upstream-health failures count (network and 5xx-style ``api_error``); a 401 or a 400 says
  nothing about the upstream's health;
- ``force_open`` survives the reset timeout (an operator's emergency stop must not half-open by
  itself) until ``force_close``;
- metrics: state is read from the shared storage at scrape time (every process reports the same
  truth), transitions are counted only by the process that caused them (pybreaker's listeners
  fire in every process that merely notices), and the time spent open is observed on leaving it;
- a short-circuited call raises :class:`CircuitOpenError` and counts
  ``ohe_provider_api_errors_total{error_type="circuit_breaker"}``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker
from werkzeug.local import LocalProxy

from ohe.coordination import Coordination
from ohe.observability.metrics import (
    BREAKER_OPEN_DURATION,
    BREAKER_TRANSITIONS,
    PROVIDER_API_ERRORS,
    GaugeSource,
)
from ohe.resilience.errors import CircuitOpenError, ErrorClass, classify
from ohe.settings import BreakerSpec, Settings

T = TypeVar("T")

STATES = (pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN)
_COUNTED = frozenset({ErrorClass.NETWORK, ErrorClass.API})
_FORCED_TTL = 30 * 86400.0


@dataclass(frozen=True)
class BreakerDefinition:
    name: str
    provider: str  # label of ohe_provider_api_errors_total for short-circuited calls
    spec: Callable[[Settings], BreakerSpec]


# The guide's table; thresholds come from settings (OHE_BREAKER_<NAME>).
DEFINITIONS: tuple[BreakerDefinition, ...] = (
    BreakerDefinition("withings_api", "withings", lambda s: s.breaker_withings_api),
    BreakerDefinition("fitbit_api", "fitbit", lambda s: s.breaker_fitbit_api),
    BreakerDefinition("fhir_server", "fhir", lambda s: s.breaker_fhir_server),
)


def _not_counted(exc: BaseException) -> bool:
    return classify(exc) not in _COUNTED


class Breaker:
    """One named breaker over shared storage."""

    def __init__(
        self, definition: BreakerDefinition, spec: BreakerSpec, coordination: Coordination
    ):
        self.name = definition.name
        self.provider = definition.provider
        self.spec = spec
        self._coordination = coordination
        self._built: tuple[pybreaker.CircuitBreakerStorage, pybreaker.CircuitBreaker] | None = None
        self._lock = threading.Lock()

    def _parts(self) -> tuple[pybreaker.CircuitBreakerStorage, pybreaker.CircuitBreaker]:
        """Built on first use: the Redis storage touches Redis, which may be down at start-up."""
        with self._lock:
            if self._built is None:
                storage = self._coordination.breaker_storage(self.name)
                breaker = pybreaker.CircuitBreaker(
                    fail_max=self.spec.fail_max,
                    reset_timeout=self.spec.reset_timeout,
                    success_threshold=self.spec.success_threshold,
                    exclude=[_not_counted],
                    state_storage=storage,
                    name=self.name,
                    throw_new_error_on_trip=False,
                )
                self._built = (storage, breaker)
            return self._built

    @property
    def _storage(self) -> pybreaker.CircuitBreakerStorage:
        return self._parts()[0]

    @property
    def _cb(self) -> pybreaker.CircuitBreaker:
        return self._parts()[1]

    # --- calling -------------------------------------------------------------------------------

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func`` unless the breaker is open; record its outcome.

        ``func`` runs outside pybreaker's lock: ``CircuitBreaker.call`` holds a per-breaker
        lock around the whole call, which would serialize every HTTP call of a process (a
        worker's threads, gunicorn's threads). Only the state check and the bookkeeping of the
        outcome take the lock, through pybreaker's own state objects.
        """
        if self.forced == pybreaker.STATE_OPEN:
            self._short_circuited("forced open by an operator")
        before = self.state
        cb = self._cb
        with cb._lock:
            current = self._noticed(cb)
            if current.name == pybreaker.STATE_OPEN:
                opened_at = self._storage.opened_at
                timeout = timedelta(seconds=cb.reset_timeout)
                if opened_at and _now() < opened_at + timeout:
                    self._short_circuited(f"open after {self.spec.fail_max} consecutive failures")
                cb.half_open()  # the timeout passed: this call is a trial
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            if not _not_counted(exc):
                self._coordination.put(
                    self._key("last_failure_at"), _now().isoformat().encode(), _FORCED_TTL
                )
            with cb._lock, contextlib.suppress(Exception):
                # pybreaker re-raises (or raises CircuitBreakerError) when it trips; the
                # caller gets the original error either way.
                self._noticed(cb)._handle_error(exc, reraise=False)
            raise
        else:
            with cb._lock:
                self._noticed(cb)._handle_success()
            return result
        finally:
            after = self.state
            if after != before:
                self._record_transition(before, after)

    def _noticed(self, cb: pybreaker.CircuitBreaker) -> Any:
        """pybreaker's state object for the *stored* state, without pybreaker's notice effects.

        When pybreaker notices that another process changed the shared state it re-creates the
        state "with notification", which resets the shared counters — so one process noticing
        half-open would erase the successes another already counted. Only the process that
        causes a transition (open/half_open/close) resets counters.
        """
        stored = self._storage.state
        if cb._state.name != stored:
            cb._state = cb._create_new_state(stored, prev_state=None, notify=False)
        return cb._state

    def _short_circuited(self, why: str) -> None:
        PROVIDER_API_ERRORS.labels(self.provider, ErrorClass.CIRCUIT_BREAKER.value).inc()
        raise CircuitOpenError(
            f"circuit breaker {self.name} is {why}; calls resume after "
            f"{self.spec.reset_timeout:g} s or when an operator force-closes it",
            retry_after=self.spec.reset_timeout,
        )

    def _record_transition(self, before: str, after: str) -> None:
        BREAKER_TRANSITIONS.labels(self.name, before, after).inc()
        if before == pybreaker.STATE_OPEN:
            opened_at = self._storage.opened_at
            if opened_at is not None:
                BREAKER_OPEN_DURATION.labels(self.name).observe(
                    max((_now() - opened_at).total_seconds(), 0.0)
                )

    # --- state and administration (the guide's registry API) ------------------------------------

    @property
    def state(self) -> str:
        return self._storage.state

    @property
    def forced(self) -> str | None:
        value = self._coordination.get(self._key("forced"))
        return value.decode() if value else None

    def info(self) -> dict[str, Any]:
        last_failure = self._coordination.get(self._key("last_failure_at"))
        opened_at = self._storage.opened_at
        return {
            "state": self.state,
            "failure_count": self._storage.counter,
            "success_count": self._storage.success_counter,
            "opened_at": opened_at.isoformat() if opened_at and self.state != "closed" else None,
            "last_failure_at": last_failure.decode() if last_failure else None,
            "forced": self.forced,
            "fail_max": self.spec.fail_max,
            "success_threshold": self.spec.success_threshold,
            "reset_timeout": self.spec.reset_timeout,
        }

    def force_open(self) -> None:
        before = self.state
        self._coordination.put(self._key("forced"), pybreaker.STATE_OPEN.encode(), _FORCED_TTL)
        self._cb.open()
        if before != pybreaker.STATE_OPEN:
            self._record_transition(before, pybreaker.STATE_OPEN)

    def force_close(self) -> None:
        before = self.state
        self._coordination.delete(self._key("forced"))
        self._cb.close()
        self._storage.reset_counter()
        self._storage.reset_success_counter()
        if before != pybreaker.STATE_CLOSED:
            self._record_transition(before, pybreaker.STATE_CLOSED)

    def _key(self, suffix: str) -> str:
        return f"breaker:{self.name}:{suffix}"


class BreakerRegistry:
    """All breakers of an app: ``get_breaker``, ``get_all_states``, ``reset_all``."""

    def __init__(self, settings: Settings, coordination: Coordination) -> None:
        self._breakers = {d.name: Breaker(d, d.spec(settings), coordination) for d in DEFINITIONS}

    def get_breaker(self, name: str) -> Breaker:
        try:
            return self._breakers[name]
        except KeyError:
            raise KeyError(
                f"no circuit breaker named {name!r}; known: {', '.join(self._breakers)}"
            ) from None

    def names(self) -> Iterable[str]:
        return self._breakers.keys()

    def get_all_states(self) -> dict[str, dict[str, Any]]:
        return {name: breaker.info() for name, breaker in self._breakers.items()}

    def reset_all(self) -> None:
        """Emergency: close every breaker (clears forced states and counters)."""
        for breaker in self._breakers.values():
            breaker.force_close()

    def gauge_source(self) -> GaugeSource:
        def read() -> Iterable[tuple[tuple[str, ...], float]]:
            for name, breaker in self._breakers.items():
                current = breaker.state
                for state in STATES:
                    yield (name, state), 1.0 if state == current else 0.0

        return GaugeSource(
            "ohe_circuit_breaker_state",
            "1 for the current state of each circuit breaker (read from the shared storage)",
            ("breaker", "state"),
            read,
        )


def _current_registry() -> BreakerRegistry:
    from ohe.extensions import state

    return state().breakers


#: The guide's ``registry`` (``from ohe.resilience.breakers import registry``), bound to the
#: current app; use it inside an app context (``with create_app().app_context(): ...``).
registry: BreakerRegistry = LocalProxy(_current_registry)  # type: ignore[assignment]


def _now() -> datetime:
    return datetime.now(UTC)
