"""Sync API: trigger syncs, read their true state, and the patient's devices (reference paths)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ohe.api import inputs
from ohe.api.links import _existing_user, _provider
from ohe.api.problems import ApiProblem
from ohe.extensions import db, state
from ohe.fhir.codes import SAMPLE_TYPES
from ohe.models import LinkStatus, ProviderLink, utcnow
from ohe.providers.rows import provider_row
from ohe.resilience.errors import OheError
from ohe.tasks.base import enqueue
from ohe.tasks.devices import read_devices, sync_devices
from ohe.tasks.status import link_summary
from ohe.tasks.sync import sync_link

bp = Blueprint("sync", __name__, url_prefix="/api/base/sync")

MAX_WINDOW = timedelta(days=3660)
BACKFILL_ABOVE = timedelta(days=7)


def _links(values: dict[str, Any], *, active_only: bool) -> tuple[str, list[ProviderLink]]:
    user = _existing_user(inputs.ehr_user_id(values))
    provider = values.get("provider")
    if provider:
        _provider(provider)
    links = [
        link
        for link in user.links
        if (not provider or link.provider.provider_type == provider)
        and link.provider.provider_type in state().settings.providers
        and (not active_only or link.status == LinkStatus.ACTIVE)
    ]
    return user.ehr_user_id, links


@bp.post("/trigger/")
def trigger() -> tuple[Response, int]:
    """A manual sync: incremental by default, or the given window (a long one is a backfill)."""
    values = inputs.body()
    ehr_user_id, links = _links(values, active_only=True)
    data_types = inputs.string_list(values, "data_types", lambda t: t in SAMPLE_TYPES)
    start, end = inputs.instant(values, "start"), inputs.instant(values, "end")
    if start and end and not start < end:
        raise inputs.invalid("start", "must be before end")
    if start and (end or utcnow()) - start > MAX_WINDOW:
        raise inputs.invalid("start", "windows longer than 10 years are refused")
    if not links:
        raise ApiProblem(404, f"No active provider link for user {ehr_user_id}", slug="no-link")
    queue = "backfill" if start and (end or utcnow()) - start > BACKFILL_ABOVE else None
    runs = []
    for link in links:
        runs += sync_link(
            link,
            trigger="manual" if start is None else "backfill",
            data_types=data_types,
            start=start,
            end=end,
            queue=queue,
        )
    db.session.commit()
    return jsonify(
        {
            "message": f"Queued {len(runs)} sync runs",
            "ehr_user_id": ehr_user_id,
            "runs": [
                {"id": r.id, "provider": r.provider, "stream": r.stream, "queue": r.queue}
                for r in runs
            ],
        }
    ), 202


@bp.get("/status/")
def status() -> Response:
    values = request.args.to_dict()
    ehr_user_id, links = _links(values, active_only=False)
    by_provider = {link.provider.provider_type: link_summary(link) for link in links}
    provider = values.get("provider")
    if provider:
        summary = by_provider.get(
            provider,
            {"status": "no_recent_sync", "last_sync": None, "records_synced": None, "errors": []},
        )
        return jsonify({"ehr_user_id": ehr_user_id, "provider": provider, **summary})
    return jsonify({"ehr_user_id": ehr_user_id, "providers": by_provider})


@bp.get("/providers/")
def connected_providers() -> Response:
    ehr_user_id, links = _links(request.args.to_dict(), active_only=False)
    connected = [
        {
            "id": link.id,
            "provider": {
                "id": link.provider.id,
                "name": link.provider.name,
                "provider_type": link.provider.provider_type,
                "active": link.provider.active,
            },
            "external_user_id": link.external_user_id,
            "status": link.status,
            "linked_at": link.linked_at.isoformat(),
        }
        for link in links
        if link.status != LinkStatus.REVOKED
    ]
    return jsonify(
        {
            "ehr_user_id": ehr_user_id,
            "connected_providers": connected,
            "total_providers": len(connected),
        }
    )


@bp.get("/devices/")
def devices() -> Response:
    """The patient's devices as the FHIR server holds them (this patient's only)."""
    values = request.args.to_dict()
    ehr_user_id, links = _links(values, active_only=False)
    try:
        found = [device for link in links for device in read_devices(link)]
    except OheError as exc:
        raise ApiProblem(
            503, f"The FHIR server could not be read: {exc.error_type}", slug="fhir-unavailable"
        ) from None
    return jsonify(
        {
            "ehr_user_id": ehr_user_id,
            "devices": found,
            "total_devices": len(found),
            "provider_filter": values.get("provider"),
        }
    )


@bp.post("/trigger_device_sync/")
def trigger_device_sync() -> tuple[Response, int]:
    values = inputs.body()
    provider = values.get("provider")
    if not provider:
        raise inputs.invalid("provider", "is required")
    ehr_user_id, links = _links(values, active_only=True)
    if not links:
        raise ApiProblem(
            404, f"No active {provider} connection found for user {ehr_user_id}", slug="no-link"
        )
    for link in links:
        enqueue(sync_devices.si(link.id).set(queue="sync"))
    db.session.commit()
    provider_row(provider)
    return jsonify(
        {
            "message": "Device sync queued",
            "sync_id": f"device-sync-{utcnow():%Y%m%d-%H%M%S}",
            "ehr_user_id": ehr_user_id,
            "provider": provider,
        }
    ), 202
