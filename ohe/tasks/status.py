"""The true state of a link's syncs, as the status API and the operator CLI show it.

Derived from the database (runs, cursors, link state), never from bookkeeping copies: what a
status call says is what the workers did. Every error comes with a sentence an operator or a
support desk can act on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ohe.extensions import db
from ohe.models import LinkStatus, ProviderLink, SyncState, SyncStatus

#: What to do about each error class (shown next to the error).
ADVICE: dict[str, str] = {
    "auth_error": "The provider refused the authorisation; ask the patient to link again.",
    "rate_limit_error": "The provider's rate limit was reached; OHE retries automatically.",
    "network_error": "The provider or FHIR server was unreachable; OHE retries automatically.",
    "api_error": "The provider or FHIR server answered with an error; OHE retries automatically.",
    "circuit_breaker": "Calls are paused after repeated failures (circuit breaker open); "
    "they resume by themselves.",
    "validation_error": "A request was refused as invalid; this needs a fix, not a retry "
    "(see the logs for the request id).",
    "poison_message": "A task kept crashing its worker and was dropped; see the failed-task list.",
}

STATUS_OF_RUN = {
    SyncState.PENDING.value: "in_progress",
    SyncState.RUNNING.value: "in_progress",
    SyncState.SUCCESS.value: "completed",
    SyncState.FAILED.value: "failed",
}


def advice(error_class: str | None) -> str | None:
    return ADVICE.get(error_class or "")


def _last_runs(link_id: int) -> dict[str, SyncStatus]:
    """The newest run of each stream of a link."""
    newest = (
        select(SyncStatus.stream, func.max(SyncStatus.id).label("id"))
        .where(SyncStatus.link_id == link_id)
        .group_by(SyncStatus.stream)
        .subquery()
    )
    runs = db.session.scalars(select(SyncStatus).join(newest, SyncStatus.id == newest.c.id)).all()
    return {run.stream: run for run in runs}


def link_summary(link: ProviderLink) -> dict[str, Any]:
    """The reference's per-provider shape (status, last_sync, records_synced, errors) and more."""
    runs = _last_runs(link.id)
    health_runs = [r for name, r in runs.items() if name != "devices"]
    newest = max(health_runs, key=lambda r: r.id, default=None)
    errors = [
        f"{r.stream}: {r.error_message} — {advice(r.error_class) or ''}".strip(" —")
        for r in health_runs
        if r.status == SyncState.FAILED.value
    ]
    if link.status == LinkStatus.NEEDS_REAUTH:
        status = "needs_reauth"
        errors.insert(0, link.status_reason or advice("auth_error") or "")
    elif link.status == LinkStatus.REVOKED:
        status = "revoked"
    elif newest is None:
        status = "no_recent_sync"
    elif any(r.status in (SyncState.PENDING.value, SyncState.RUNNING.value) for r in health_runs):
        status = "in_progress"
    else:
        status = STATUS_OF_RUN[newest.status] if not errors else "failed"
    successes = [r for r in health_runs if r.status == SyncState.SUCCESS.value and r.finished_at]
    last = max(successes, key=lambda r: r.finished_at, default=None)  # type: ignore[arg-type, return-value]
    cursors = {c.data_type: c for c in link.cursors}
    return {
        "status": status,
        "link_status": link.status,
        "last_sync": last.finished_at.isoformat() if last and last.finished_at else None,
        "records_synced": last.resources_written if last else None,
        "errors": errors,
        "data_types": {
            name: {
                "cursor": cursors[name].position if name in cursors else None,
                "last_success": _iso(cursors[name].last_success_at) if name in cursors else None,
                "last_run": _run_json(run),
                "last_error": _error_json(cursors.get(name)),
                "next_attempt_at": _iso(cursors[name].next_attempt_at) if name in cursors else None,
            }
            for name, run in sorted(runs.items())
        },
    }


def _run_json(run: SyncStatus) -> dict[str, Any]:
    return {
        "id": run.id,
        "sync_type": run.sync_type,
        "status": run.status,
        "created_at": _iso(run.created_at),
        "finished_at": _iso(run.finished_at),
        "pages": run.pages_done,
        "records_fetched": run.records_fetched,
        "resources_written": run.resources_written,
        "error_class": run.error_class,
    }


def _error_json(cursor: Any) -> dict[str, Any] | None:
    if cursor is None or cursor.last_error_at is None:
        return None
    return {
        "at": _iso(cursor.last_error_at),
        "class": cursor.last_error_class,
        "message": cursor.last_error_message,
        "action": advice(cursor.last_error_class),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
