"""Bookkeeping of sync runs and their pages: the database is the source of truth.

Every transition is a conditional UPDATE (``... WHERE state != 'pushed'``) or an INSERT guarded
by a unique key, so a redelivered task (acks late, worker killed) changes nothing the first
delivery already did, and two workers racing on one run cannot both complete it. The stream's
cursor moves only when a run's fetching is complete and every page it planned has been pushed,
and only forward.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ohe.extensions import db
from ohe.models import SyncCursor, SyncPage, SyncState, SyncStatus, utcnow
from ohe.observability.metrics import SYNC_DURATION, SYNC_OPERATIONS
from ohe.observability.scrub import scrub
from ohe.providers.base import FetchRequest, FetchResult
from ohe.resilience.errors import classify

log = logging.getLogger(__name__)

#: Which queue a trigger's work runs on: a backfill never delays a live webhook.
QUEUE_FOR_TRIGGER: dict[str, str] = {
    "webhook": "webhooks",
    "schedule": "sync",
    "manual": "sync",
    "retry": "sync",
    "link": "backfill",
    "backfill": "backfill",
    "relink": "backfill",
}

FINISHED = (SyncState.SUCCESS.value, SyncState.FAILED.value)


def create_run(
    *,
    link_id: int,
    provider: str,
    stream: str,
    trigger: str,
    data_types: list[str],
    first: FetchRequest,
    window: tuple[datetime | None, datetime | None],
    request_id: str | None,
    queue: str | None = None,
    checks_deletions: bool = False,
) -> SyncStatus:
    run = SyncStatus(
        link_id=link_id,
        provider=provider,
        stream=stream,
        sync_type=trigger,
        queue=queue or QUEUE_FOR_TRIGGER[trigger],
        data_types=data_types,
        status=SyncState.PENDING.value,
        window_start=window[0],
        window_end=window[1],
        request_id=request_id,
        checks_deletions=checks_deletions,
    )
    db.session.add(run)
    db.session.flush()
    db.session.add(SyncPage(run_id=run.id, number=0, request=first.to_json()))
    return run


def page(run_id: int, number: int) -> tuple[SyncStatus, SyncPage] | None:
    """The run and one of its pages (None if either is gone, e.g. cleaned up)."""
    found = db.session.execute(
        select(SyncStatus, SyncPage)
        .join(SyncPage, SyncPage.run_id == SyncStatus.id)
        .where(SyncStatus.id == run_id, SyncPage.number == number)
    ).one_or_none()
    return None if found is None else (found[0], found[1])


def record_fetch(run_id: int, number: int, result: FetchResult, waits: int) -> int | None:
    """Mark a page fetched; plan the next page. Returns its number if this call planned it."""
    now = utcnow()
    db.session.execute(
        update(SyncStatus)
        .where(SyncStatus.id == run_id, SyncStatus.status == SyncState.PENDING.value)
        .values(status=SyncState.RUNNING.value, started_at=now)
    )
    fetched = db.session.execute(
        update(SyncPage)
        .where(SyncPage.run_id == run_id, SyncPage.number == number, SyncPage.state == "planned")
        .values(state="fetched", records=result.records, retry_at=None)
    ).rowcount
    values: dict[str, Any] = {}
    if fetched:
        values = {
            "pages_fetched": SyncStatus.pages_fetched + 1,
            "records_fetched": SyncStatus.records_fetched + result.records,
            "rate_limit_waits": SyncStatus.rate_limit_waits + waits,
        }
    if number == 0 and result.next_cursor is not None:
        values["pending_cursor"] = result.next_cursor
    if result.next_request is None:
        values["fetch_complete"] = True
    if values:
        db.session.execute(update(SyncStatus).where(SyncStatus.id == run_id).values(**values))
    if result.next_request is None:
        return None
    try:
        with db.session.begin_nested():
            db.session.add(
                SyncPage(run_id=run_id, number=number + 1, request=result.next_request.to_json())
            )
    except IntegrityError:
        # A previous delivery planned it. If that delivery died between its commit and its
        # publish, the page is still "planned" and nobody works on it: publish it again (a
        # duplicate chain is harmless, every stage is idempotent).
        following = db.session.scalar(
            select(SyncPage.state).where(SyncPage.run_id == run_id, SyncPage.number == number + 1)
        )
        return number + 1 if following == "planned" else None
    return number + 1


def record_push(run_id: int, number: int, resources: int, seen: list[str] | None = None) -> bool:
    """Mark a page pushed (once); complete the run when it was the last. True if completed."""
    pushed = db.session.execute(
        update(SyncPage)
        .where(SyncPage.run_id == run_id, SyncPage.number == number, SyncPage.state != "pushed")
        .values(state="pushed", resources=resources, retry_at=None, seen=seen)
    ).rowcount
    if pushed:
        db.session.execute(
            update(SyncStatus)
            .where(SyncStatus.id == run_id)
            .values(
                pages_done=SyncStatus.pages_done + 1,
                resources_written=SyncStatus.resources_written + resources,
            )
        )
    return _complete_if_done(run_id)


def _complete_if_done(run_id: int) -> bool:
    run = db.session.get(SyncStatus, run_id, populate_existing=True)
    if run is None or not run.fetch_complete:
        return False
    open_pages = db.session.scalar(
        select(func.count()).where(SyncPage.run_id == run_id, SyncPage.state != "pushed")
    )
    if open_pages:
        return False
    now = utcnow()
    won = db.session.execute(
        update(SyncStatus)
        .where(SyncStatus.id == run_id, SyncStatus.status == SyncState.RUNNING.value)
        .values(status=SyncState.SUCCESS.value, finished_at=now)
    ).rowcount
    if not won:
        return False
    cursor = cursor_for(run.link_id, run.stream) if run.link_id else None
    if cursor is not None:
        # An incremental run moves the cursor forward; a window run (webhook, backfill) only
        # sets it when the stream has none, or it could skip changes nobody was notified of.
        takes_cursor = run.window_start is None or cursor.position is None
        if run.pending_cursor and takes_cursor and _newer(run.pending_cursor, cursor.position):
            cursor.position = run.pending_cursor
        cursor.last_success_at = now
        cursor.next_attempt_at = None
    SYNC_OPERATIONS.labels(run.provider, run.sync_type, "success").inc()
    SYNC_DURATION.labels(run.provider, run.sync_type).observe(
        (now - (run.started_at or run.created_at)).total_seconds()
    )
    log.info(
        "sync run finished",
        extra={
            **_log_fields(run),
            "pages": run.pages_done,
            "resources_written": run.resources_written,
        },
    )
    return True


def fail_run(
    run_id: int, exc: BaseException, *, stage: str, retry_at: datetime | None = None
) -> None:
    """A page failed for good: the run fails (the cursor stays), the error is kept for status."""
    error_class = classify(exc).value
    message = scrub(f"{stage}: {exc}")[:1024]
    run = db.session.get(SyncStatus, run_id, populate_existing=True)
    if run is None:
        return
    won = db.session.execute(
        update(SyncStatus)
        .where(SyncStatus.id == run_id, SyncStatus.status.not_in(FINISHED))
        .values(
            status=SyncState.FAILED.value,
            finished_at=utcnow(),
            error_class=error_class,
            error_message=message,
        )
    ).rowcount
    if run.link_id:
        cursor = cursor_for(run.link_id, run.stream)
        cursor.last_error_at = utcnow()
        cursor.last_error_class = error_class
        cursor.last_error_message = message
        if retry_at is not None:
            cursor.next_attempt_at = retry_at
    if won:
        SYNC_OPERATIONS.labels(run.provider, run.sync_type, "failed").inc()
        log.error(
            "sync run failed",
            extra={
                **_log_fields(run),
                "error_type": error_class,
                "reason": message,
            },
        )


def park(run_id: int, number: int, retry_at: datetime) -> None:
    """Too long a wait for the broker: beat resumes this page at ``retry_at``."""
    db.session.execute(
        update(SyncPage)
        .where(SyncPage.run_id == run_id, SyncPage.number == number)
        .values(retry_at=retry_at)
    )


def cursor_for(link_id: int, stream: str) -> SyncCursor:
    cursor = db.session.scalar(
        select(SyncCursor).where(SyncCursor.link_id == link_id, SyncCursor.data_type == stream)
    )
    if cursor is not None:
        return cursor
    try:
        with db.session.begin_nested():
            cursor = SyncCursor(link_id=link_id, data_type=stream)
            db.session.add(cursor)
    except IntegrityError:
        cursor = db.session.scalar(
            select(SyncCursor).where(SyncCursor.link_id == link_id, SyncCursor.data_type == stream)
        )
    return cursor  # type: ignore[return-value]


def _newer(candidate: str, current: str | None) -> bool:
    """Cursors are provider positions; numeric ones only ever move forward."""
    if current is None:
        return True
    try:
        return float(candidate) > float(current)
    except ValueError:
        return candidate != current


def _log_fields(run: SyncStatus) -> dict[str, object]:
    """The fields that name a run on its log lines (the guide's operation/provider first)."""
    return {
        "operation": "sync",
        "provider": run.provider,
        "stream": run.stream,
        "sync_type": run.sync_type,
        "run_id": run.id,
    }
