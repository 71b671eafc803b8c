"""Operator endpoints (API key): the circuit-breaker registry of the operations guide."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ohe.api import inputs
from ohe.api.problems import ApiProblem
from ohe.resilience.breakers import registry

bp = Blueprint("admin", __name__, url_prefix="/api/base/admin")

ACTIONS = {"force_open": "force_open", "force_close": "force_close"}


@bp.get("/breakers/")
def breakers() -> Response:
    """``registry.get_all_states()``: state, failure_count, opened_at, last_failure_at, ..."""
    return jsonify(registry.get_all_states())


@bp.post("/breakers/<name>/")
def breaker_action(name: str) -> Response:
    """``{"action": "force_open" | "force_close"}`` on one breaker (emergency procedures)."""
    action = inputs.body().get("action")
    if action not in ACTIONS:
        raise inputs.invalid("action", f"expected one of {', '.join(ACTIONS)}")
    try:
        breaker = registry.get_breaker(name)
    except KeyError as exc:
        raise ApiProblem(404, str(exc).strip("'\""), slug="unknown-breaker") from None
    getattr(breaker, ACTIONS[action])()
    return jsonify({name: breaker.info()})


@bp.post("/breakers/reset/")
def reset_breakers() -> Response:
    """``registry.reset_all()``: close every breaker."""
    registry.reset_all()
    return jsonify(registry.get_all_states())
