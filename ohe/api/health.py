"""Probes and metrics, exactly where the operations guide puts them (all public)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify

from ohe.api.auth import public
from ohe.extensions import state
from ohe.observability import metrics
from ohe.observability.gauges import build_sources
from ohe.observability.health import CHECKS, READY_CHECKS, run_checks
from ohe.observability.scrub import scrub

bp = Blueprint("health", __name__, url_prefix="/api/metrics")


@bp.get("/live/")
@public
def live() -> Response:
    """The process answers; no dependency is touched (a restart would not fix them)."""
    return jsonify({"alive": True, "timestamp": int(time.time())})


@bp.get("/ready/")
@public
def ready() -> tuple[Response, int]:
    """Database, Redis and broker reachable: safe to send traffic here."""
    results = run_checks(READY_CHECKS)
    ok = all(r.healthy for r in results.values())
    body = {
        "ready": ok,
        "checks": {name: r.healthy for name, r in results.items()},
        "errors": {name: r.error for name, r in results.items() if r.error},
    }
    return jsonify(body), 200 if ok else 503


@bp.get("/health/")
@public
def health() -> tuple[Response, int]:
    """Every dependency, each with its status and response time; 503 if any fails."""
    started = time.perf_counter()
    results = run_checks(list(CHECKS))
    ok = all(r.healthy for r in results.values())
    body = {
        "status": "healthy" if ok else "unhealthy",
        "timestamp": int(time.time()),
        "checks": {name: r.as_json() for name, r in results.items()},
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    for name, extra in current_app.extensions.get("ohe_health_extras", {}).items():
        try:
            body[name] = extra()
        except Exception as exc:  # e.g. breaker state lives in Redis, which may be down
            body[name] = {"error": scrub(f"{type(exc).__name__}: {exc}")[:300]}
    return jsonify(body), 200 if ok else 503


@bp.get("/metrics/")
@bp.get("/", endpoint="metrics_legacy")
@public
def prometheus() -> Response:
    """Prometheus text format; also at /api/metrics/ where the reference served it."""
    settings = state().settings
    payload = metrics.render(build_sources(current_app), settings.prometheus_multiproc_dir)
    return Response(payload, mimetype="text/plain; version=0.0.4; charset=utf-8")
