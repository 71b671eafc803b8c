"""Devices in FHIR: sync them, end the associations of removed ones, and clean up on unlink.

Device and DeviceAssociation (R5) or ``Device.patient`` (R4) are written with conditional
updates by their business identifiers, so running the device sync any number of times leaves
one Device and one association per physical device and link. A device that disappears from
the provider's list keeps its history: its association is ended (``period.end``), not deleted.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from sqlalchemy import select

from ohe.extensions import db, state
from ohe.fhir import bundle, identifiers
from ohe.fhir.builders import BuildContext
from ohe.fhir.devices import build_association, build_device, end_association
from ohe.models import LinkStatus, ProviderLink, SyncState, SyncStatus, utcnow
from ohe.observability.context import bind, current_request_id
from ohe.observability.metrics import OBSERVATIONS_VOIDED
from ohe.providers import provider as provider_named
from ohe.providers.tokens import LinkTokens
from ohe.resilience.errors import AuthError, classify
from ohe.tasks import runs
from ohe.tasks.chain import POLICIES, fhir_client, fhir_write_lock
from ohe.tasks.links import callback_url, categories
from ohe.tasks.schedule import periodic
from ohe.tasks.transform import LinkInfo, build_context

log = logging.getLogger(__name__)

RETRYABLE = ("api_error", "network_error", "rate_limit_error", "circuit_breaker")


def _ours(resource: dict[str, Any], system: str, scope: str) -> bool:
    return identifiers.natural_key(resource, system, scope) is not None


def _ended_entries(ctx: BuildContext, keep: set[str]) -> list[dict[str, Any]]:
    """Entries that end this link's associations whose device id is not in ``keep``."""
    client = fhir_client()
    now = utcnow().isoformat()
    device_system = ctx.systems["device"]
    entries = []
    if ctx.version == "R5":
        system = ctx.systems["device-association"]
        for association in client.search("DeviceAssociation", {"subject": ctx.patient}):
            device_id = association["identifier"][0]["value"].split(":", 1)[-1]
            status = association.get("status", {}).get("coding", [{}])[0].get("code")
            if (
                _ours(association, system, ctx.scope)
                and device_id not in keep
                and status == "attached"
            ):
                entries.append(
                    bundle.update_entry(end_association(bundle.stored_body(association), now))
                )
        return entries
    for device in client.search("Device", {"patient": ctx.patient}):
        device_id = device["identifier"][0]["value"].split(":", 1)[-1]
        if _ours(device, device_system, ctx.scope) and device_id not in keep:
            ended = {k: v for k, v in bundle.stored_body(device).items() if k != "patient"}
            entries.append(bundle.update_entry({**ended, "status": "inactive"}))
    return entries


def _write(ctx: BuildContext, entries: list[dict[str, Any]]) -> int:
    if not entries:
        return 0
    with fhir_write_lock(ctx.scope):
        return fhir_client().write(entries).written


@shared_task(name="ohe.sync.devices", bind=True, max_retries=None)
def sync_devices(self: Task, link_id: int, run_id: int | None = None) -> dict[str, int]:
    """Write the link's devices; one SyncStatus row per device sync, however many attempts."""
    link = db.session.get(ProviderLink, link_id)
    if link is None or link.status != LinkStatus.ACTIVE:
        return {}
    info = LinkInfo.of(link)
    run = _device_run(link.id, info.provider, run_id)
    provider = provider_named(info.provider)
    ctx = build_context(state().settings, info)
    try:
        with bind(user_id=info.ehr_user_id, provider=info.provider, operation="device_sync"):
            session = provider.session(LinkTokens(link.id, provider, state().coordination))
            devices = session.devices()
            entries = []
            for device in devices:
                device_entry = bundle.update_entry(build_device(device, ctx), referenced=True)
                entries.append(device_entry)
                if ctx.version == "R5":
                    association = build_association(device, ctx, device_entry["fullUrl"])
                    entries.append(bundle.update_entry(association))
            entries += _ended_entries(ctx, {d.device_id for d in devices})
            written = _write(ctx, entries)
    except Exception as exc:
        db.session.rollback()
        policy, attempt = POLICIES["fetch"], self.request.retries or 0
        if classify(exc).value != "auth_error" and policy.should_retry(exc, attempt):
            raise self.retry(
                args=(link_id, run.id), countdown=policy.delay(attempt, exc), exc=exc
            ) from None
        runs.fail_run(run.id, exc, stage="devices")
        db.session.commit()
        return {}
    run.records_fetched = len(devices)
    run.resources_written = written
    run.fetch_complete = True
    run.status = SyncState.SUCCESS.value
    run.finished_at = utcnow()
    db.session.commit()
    return {"devices": len(devices), "written": written}


def _device_run(link_id: int, provider: str, run_id: int | None) -> SyncStatus:
    """The run row of this device sync: created by the first attempt, reused by retries."""
    run = db.session.get(SyncStatus, run_id) if run_id else None
    if run is None:
        run = SyncStatus(
            link_id=link_id,
            provider=provider,
            stream="devices",
            sync_type="devices",
            queue="maintenance",
            status=SyncState.RUNNING.value,
            started_at=utcnow(),
            request_id=current_request_id(),
        )
        db.session.add(run)
        db.session.commit()
    return run


@shared_task(name="ohe.maintenance.sync_all_devices")
def sync_all_devices() -> int:
    from ohe.tasks.base import enqueue
    from ohe.tasks.sync import active_links

    links = active_links()
    for link in links:
        enqueue(sync_devices.si(link.id).set(queue="sync"))
    db.session.commit()
    return len(links)


@shared_task(name="ohe.maintenance.unlink_cleanup", bind=True, max_retries=5)
def unlink_cleanup(self: Task, link_id: int, purge: bool = False) -> dict[str, int]:
    """Revoke subscriptions, delete tokens, end device associations, optionally purge data."""
    link = db.session.get(ProviderLink, link_id)
    if link is None or link.status != LinkStatus.REVOKED:
        return {}
    info = LinkInfo.of(link)
    provider = provider_named(info.provider)
    with bind(user_id=info.ehr_user_id, provider=info.provider, operation="unlink"):
        if link.access_token:
            tokens = LinkTokens(link.id, provider, state().coordination, require_active=False)
            try:
                provider.session(tokens).unsubscribe(
                    callback_url(info.provider), categories(info.provider)
                )
            except AuthError:
                pass  # tokens already dead: the provider drops the subscriptions with them
            except Exception as exc:
                if classify(exc).value in RETRYABLE and self.request.retries < 5:
                    raise self.retry(countdown=60, exc=exc) from None
            link.access_token = link.refresh_token = None
            link.token_expires_at = None
            db.session.commit()
        ctx = build_context(state().settings, info)
        try:
            ended = _write(ctx, _ended_entries(ctx, keep=set()))
            purged = _write(ctx, _purge_entries(ctx)) if purge else 0
            OBSERVATIONS_VOIDED.labels(info.provider, "purged").inc(purged)
        except Exception as exc:
            if classify(exc).value in RETRYABLE:
                raise self.retry(countdown=60 * (self.request.retries + 1), exc=exc) from None
            raise
    log.info(
        "link cleaned up",
        extra={"operation": "unlink", "provider": info.provider, "ended": ended, "purged": purged},
    )
    return {"associations_ended": ended, "observations_purged": purged}


def _purge_entries(ctx: BuildContext) -> list[dict[str, Any]]:
    """Every Observation this link wrote, marked entered-in-error (the audit trail stays)."""
    client = fhir_client()
    entries = []
    for kind in identifiers.KINDS_BY_TYPE["Observation"]:
        system = ctx.systems[kind]
        for observation in client.search(
            "Observation", {"subject": ctx.patient, "identifier": f"{system}|"}
        ):
            if (
                _ours(observation, system, ctx.scope)
                and observation.get("status") != "entered-in-error"
            ):
                entries.append(bundle.void_entry(observation))
    return entries


def links_of(ehr_user_id: str) -> list[ProviderLink]:
    from ohe.models import EHRUser

    return list(
        db.session.scalars(
            select(ProviderLink).join(EHRUser).where(EHRUser.ehr_user_id == ehr_user_id)
        ).all()
    )


periodic("device-sync", "ohe.maintenance.sync_all_devices", timedelta(days=1), expires=3600)


def read_devices(link: ProviderLink) -> list[dict[str, Any]]:
    """This link's devices as the FHIR server holds them (the patient's only, deduplicated)."""
    info = LinkInfo.of(link)
    ctx = build_context(state().settings, info)
    client = fhir_client()
    associations: dict[str, str] = {}
    if ctx.version == "R5":
        for association in client.search("DeviceAssociation", {"subject": ctx.patient}):
            if _ours(association, ctx.systems["device-association"], ctx.scope):
                reference = association["device"]["reference"].rsplit("/", 1)[-1]
                code = association.get("status", {}).get("coding", [{}])[0].get("code")
                associations[reference] = code or "unknown"
        query = {"_id": ",".join(associations)} if associations else None
    else:
        query = {"patient": ctx.patient}
    found = list(client.search("Device", query)) if query else []
    devices = []
    for device in found:
        if not _ours(device, ctx.systems["device"], ctx.scope):
            continue
        kinds = device.get("type")
        kind = (kinds[0] if isinstance(kinds, list) and kinds else kinds or {}).get("text")
        devices.append(
            {
                "id": device["id"],
                "manufacturer": device.get("manufacturer"),
                "model": device.get("displayName")
                or next((n.get("name") for n in device.get("deviceName", [])), None),
                "status": device.get("status"),
                "type": kind,
                "last_updated": device.get("meta", {}).get("lastUpdated"),
                "provider": info.provider,
                "provider_device_id": device["identifier"][0]["value"].split(":", 1)[-1],
                "association": associations.get(
                    device["id"], "patient" if ctx.version == "R4" else None
                ),
            }
        )
    return devices
