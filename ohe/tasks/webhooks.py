"""Turning recorded provider notifications into syncs of the changed window.

The web process only verifies, records (the ledger) and publishes; this task resolves the link
and starts the sync on the ``webhooks`` queue. A notification whose publish was lost stays
``pending`` in the ledger and is re-driven by beat.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from sqlalchemy import select

from ohe.extensions import db, state
from ohe.models import LinkStatus, Provider, ProviderLink, WebhookEvent, utcnow
from ohe.providers import provider as provider_named
from ohe.tasks.base import enqueue
from ohe.tasks.links import revoke_link
from ohe.tasks.schedule import periodic
from ohe.tasks.sync import sync_link

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=5)  # widen the notified window: boundaries are not documented
DEFAULT_WINDOW = timedelta(hours=1)
REDRIVE_AFTER = timedelta(minutes=2)
LEAVING_ACTIONS = frozenset({"unlink", "delete"})
COALESCE_SECONDS = 300.0


def coalesce(fingerprint: str) -> bool:
    """True for the first of identical notifications not yet being processed (it gets a task).

    Identical notifications (provider retries, bursts) share one sync only while that sync has
    not started: ``process`` releases the fingerprint before it plans the sync, so a change made
    after the earlier fetch began — two measurements in the same second carry the same window —
    gets a fetch of its own instead of waiting for the safety net.
    """
    return state().coordination.add(f"webhook:{fingerprint}", b"1", COALESCE_SECONDS)


def find_link(provider: str, external_user_id: str) -> ProviderLink | None:
    return db.session.scalar(
        select(ProviderLink)
        .join(Provider, Provider.id == ProviderLink.provider_id)
        .where(
            Provider.provider_type == provider,
            ProviderLink.external_user_id == external_user_id,
            ProviderLink.status == LinkStatus.ACTIVE.value,
        )
    )


@shared_task(name="ohe.webhooks.process")
def process(event_id: int) -> str:
    event = db.session.get(WebhookEvent, event_id)
    if event is None or event.status != "pending":
        return "done"
    state().coordination.delete(f"webhook:{event.fingerprint}")  # see ``coalesce``
    link = find_link(event.provider, event.external_user_id)
    event.processed_at = utcnow()
    if link is None:
        event.status = "ignored"
        db.session.commit()
        return "ignored"
    event.link_id = link.id
    if event.action in LEAVING_ACTIONS:
        revoke_link(link, reason=f"the user chose '{event.action}' at {event.provider}")
        event.status = "processed"
        db.session.commit()
        return "revoked"
    notification = provider_named(event.provider).parse_notification(
        {"userid": event.external_user_id, "appli": event.category}
    )
    end = (event.window_end or utcnow()) + MARGIN
    start = (event.window_start - MARGIN) if event.window_start else end - DEFAULT_WINDOW - MARGIN
    if notification.streams:
        sync_link(link, trigger="webhook", streams=notification.streams, start=start, end=end)
    event.status = "processed"
    db.session.commit()
    return "synced"


@shared_task(name="ohe.maintenance.redrive_webhooks")
def redrive() -> int:
    """Pending notifications whose processing was never published (or was lost)."""
    stale = utcnow() - REDRIVE_AFTER
    pending = db.session.scalars(
        select(WebhookEvent.id).where(
            WebhookEvent.status == "pending", WebhookEvent.received_at < stale
        )
    ).all()
    for event_id in pending:
        enqueue(process.si(event_id).set(queue="webhooks"))
    db.session.commit()
    return len(pending)


periodic("redrive-webhooks", "ohe.maintenance.redrive_webhooks", timedelta(minutes=2), expires=110)
