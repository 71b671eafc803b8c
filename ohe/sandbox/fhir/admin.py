"""Admin API outside ``/fhir``: faults, counters, token lifetime, wiping the data.

Plain JSON rather than FHIR, because no real FHIR server has these endpoints: they are how tests
and benchmarks steer the stand-in. They are never subject to faults or FHIR authentication (the
sandbox listens on 127.0.0.1 by default).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

blueprint = Blueprint("sandbox_fhir_admin", __name__, url_prefix="/_sandbox")


def _sandbox() -> Any:
    return current_app.extensions["ohe_sandbox_fhir"]


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _error(message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), 400


@blueprint.get("/health")
def health() -> Response:
    sandbox = _sandbox()
    return jsonify({"status": "ok", "fhirVersion": sandbox.version.fhir_version})


@blueprint.get("/faults")
def get_faults() -> Response:
    return jsonify(_sandbox().faults.config.to_json())


@blueprint.post("/faults")
def set_faults() -> Response | tuple[Response, int]:
    """Change the given settings, keep the others (see FaultConfig for the fields)."""
    try:
        config = _sandbox().faults.update(_json_object())
    except ValueError as exc:
        return _error(str(exc))
    return jsonify(config.to_json())


@blueprint.delete("/faults")
def clear_faults() -> Response:
    return jsonify(_sandbox().faults.clear().to_json())


@blueprint.get("/stats")
def get_stats() -> Response:
    return jsonify(_sandbox().stats.snapshot())


@blueprint.post("/stats/reset")
def reset_stats() -> Response:
    sandbox = _sandbox()
    sandbox.stats.reset()
    return jsonify(sandbox.stats.snapshot())


@blueprint.post("/reset")
def reset_data() -> Response:
    """Delete every resource and version (faults, stats and tokens are kept)."""
    _sandbox().store.wipe()
    return jsonify({"status": "reset"})


@blueprint.get("/auth")
def get_auth() -> Response:
    auth = _sandbox().auth
    return jsonify({"enabled": auth.config.enabled, "token_ttl": auth.token_ttl})


@blueprint.post("/auth")
def set_auth() -> Response | tuple[Response, int]:
    """``{"token_ttl": seconds}``: the lifetime of tokens issued from now on."""
    auth = _sandbox().auth
    try:
        body = _json_object()
    except ValueError as exc:
        return _error(str(exc))
    ttl = body.get("token_ttl")
    if set(body) != {"token_ttl"} or isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
        return _error('expected {"token_ttl": <whole seconds >= 1>}')
    auth.token_ttl = ttl
    return jsonify({"enabled": auth.config.enabled, "token_ttl": auth.token_ttl})


@blueprint.post("/auth/revoke")
def revoke_tokens() -> Response:
    """Expire every issued token now: the next request with one gets 401."""
    return jsonify({"revoked": _sandbox().auth.revoke_all()})
