"""Dependency checks behind the health and readiness probes.

Each check is a small function in one table; the probes pick which checks they run. A check
reports its status and its response time; a failing check carries a short, secret-free error.
Unlike the reference, a failing queue or worker check makes the whole health status unhealthy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import text

from ohe.extensions import db, state
from ohe.observability.scrub import scrub

log = logging.getLogger(__name__)

WORKER_PING_TIMEOUT = 2.0


@dataclass
class CheckResult:
    status: str
    response_time_ms: float
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "response_time_ms": self.response_time_ms}
        if self.error:
            body["error"] = self.error
        body.update(self.details)
        return body


def _database() -> dict[str, Any]:
    db.session.execute(text("SELECT 1"))
    db.session.rollback()
    return {}


def _redis() -> dict[str, Any]:
    coordination = state().coordination
    coordination.ping()
    return {"backend": coordination.backend}


def _broker() -> dict[str, Any]:
    celery = current_app.extensions["celery"]
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
        return {"transport": conn.transport_cls}


def _workers() -> dict[str, Any]:
    celery = current_app.extensions["celery"]
    replies = celery.control.ping(timeout=WORKER_PING_TIMEOUT, limit=1) or []
    if not replies:
        raise RuntimeError(f"no worker answered a ping within {WORKER_PING_TIMEOUT:g} s")
    return {"workers": sorted(name for reply in replies for name in reply)}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": _database,
    "redis": _redis,
    "celery_broker": _broker,
    "celery_workers": _workers,
}

READY_CHECKS = ("database", "redis", "celery_broker")


def run_check(name: str) -> CheckResult:
    started = time.perf_counter()
    try:
        details = CHECKS[name]()
    except Exception as exc:
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        message = scrub(f"{type(exc).__name__}: {exc}")[:300]
        log.warning(
            "health check failed",
            extra={"operation": "health_check", "check": name, "error_type": type(exc).__name__},
        )
        if name == "database":
            db.session.rollback()
        return CheckResult("unhealthy", elapsed, error=message)
    return CheckResult("healthy", round((time.perf_counter() - started) * 1000, 2), details=details)


def run_checks(names: tuple[str, ...] | list[str]) -> dict[str, CheckResult]:
    return {name: run_check(name) for name in names}
