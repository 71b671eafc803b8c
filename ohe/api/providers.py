"""Providers offered by this deployment and what they can do (reference paths and JSON names)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ohe.api.problems import ApiProblem
from ohe.extensions import db, state
from ohe.models import Provider as ProviderRow
from ohe.providers import provider
from ohe.providers.rows import provider_row

bp = Blueprint("providers", __name__, url_prefix="/api/base/providers")


def _row_json(row: ProviderRow) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "provider_type": row.provider_type,
        "active": row.active,
    }


def enabled_rows() -> list[ProviderRow]:
    rows = [provider_row(name) for name in state().settings.providers]
    db.session.commit()
    return rows


@bp.get("/")
def list_providers() -> Response:
    """Active providers, as a plain array (the reference's shape)."""
    return jsonify([_row_json(row) for row in enabled_rows() if row.active])


@bp.get("/<int:provider_id>/")
def one_provider(provider_id: int) -> Response:
    row = next((r for r in enabled_rows() if r.id == provider_id), None)
    if row is None:
        raise ApiProblem(404, f"No provider with id {provider_id}", slug="unknown-provider")
    return jsonify(_row_json(row))


@bp.get("/capabilities/")
def capabilities() -> Response:
    """What each provider syncs, from the providers themselves (not a static list)."""
    settings = state().settings
    rows = {row.provider_type: row for row in enabled_rows()}
    details = {}
    for name in settings.providers:
        caps = provider(name).capabilities()
        excluded = set(rows[name].excluded_data_types or [])
        details[name] = {
            "data_types": [t for t in caps.data_types if t not in excluded],
            "streams": list(caps.streams),
            "webhooks": caps.webhooks and rows[name].webhooks_enabled,
        }
    return jsonify(
        {
            "supported_providers": list(settings.providers),
            "supported_data_types": sorted({t for d in details.values() for t in d["data_types"]}),
            "webhook_endpoints": {name: f"/webhooks/{name}/" for name in settings.providers},
            "sync_frequencies": {
                "real_time": "Webhook-triggered (seconds after the provider notifies)",
                "safety_net": f"Every link polled every {settings.safety_net_interval} s",
                "devices": "Daily device sync",
            },
            "providers": details,
        }
    )
