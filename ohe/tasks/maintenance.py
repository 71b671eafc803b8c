"""Housekeeping: keep the bookkeeping tables bounded."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from sqlalchemy import delete

from ohe.extensions import db, state
from ohe.models import FailedTask, SyncStatus, WebhookEvent, utcnow
from ohe.tasks.schedule import periodic

log = logging.getLogger(__name__)


@shared_task(name="ohe.maintenance.cleanup", ignore_result=False)
def cleanup() -> dict[str, int]:
    """Delete processed webhook ledger rows and old sync/failed-task rows past retention."""
    settings = state().settings
    now = utcnow()
    webhook_cutoff = now - timedelta(days=settings.webhook_event_retention_days)
    sync_cutoff = now - timedelta(days=settings.sync_status_retention_days)
    deleted = {
        "webhook_events": db.session.execute(
            delete(WebhookEvent).where(
                WebhookEvent.received_at < webhook_cutoff, WebhookEvent.status != "pending"
            )
        ).rowcount,
        "sync_status": db.session.execute(
            delete(SyncStatus).where(SyncStatus.created_at < sync_cutoff)
        ).rowcount,
        "failed_tasks": db.session.execute(
            delete(FailedTask).where(FailedTask.created_at < sync_cutoff)
        ).rowcount,
    }
    db.session.commit()
    log.info("cleanup done", extra={"operation": "cleanup", **deleted})
    return deleted


periodic(
    "cleanup-bookkeeping",
    "ohe.maintenance.cleanup",
    timedelta(hours=6),
    expires=3600,
)
