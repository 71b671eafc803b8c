"""Starting syncs, and the periodic safety nets that keep them going.

``sync_link`` is the one entry point every trigger uses (webhook, link, beat, manual, re-link):
it plans one run per stream from the stream's cursor or the given window and enqueues the
first page's chain after the caller commits. The periodic tasks declared here are the safety
net: poll every link incrementally (staggered), resume parked pages, and re-enqueue pages whose
publish was lost or whose worker died.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from celery import shared_task
from sqlalchemy import func, or_, select, update

from ohe.extensions import db, state
from ohe.models import LinkStatus, ProviderLink, SyncCursor, SyncPage, SyncState, SyncStatus, utcnow
from ohe.observability.context import current_request_id
from ohe.providers import provider as provider_named
from ohe.tasks import pages, runs
from ohe.tasks.base import enqueue
from ohe.tasks.chain import page_chain, push_only
from ohe.tasks.deletions import void_deleted
from ohe.tasks.schedule import periodic

log = logging.getLogger(__name__)

#: Triggers that continue from the stored cursor (when there is one).
INCREMENTAL = frozenset({"schedule", "retry"})
FIRST_POLL_WINDOW = timedelta(hours=24)
SAFETY_NET_TICK = 300  # seconds between safety-net passes; each pass polls a share of links
STUCK_AFTER = timedelta(minutes=15)
DELETION_CHECK_GIVE_UP = timedelta(days=1)


def sync_link(
    link: ProviderLink,
    *,
    trigger: str,
    streams: tuple[str, ...] | None = None,
    data_types: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    queue: str | None = None,
) -> list[SyncStatus]:
    """Plan one run per stream; their first pages are published when the caller commits."""
    provider = provider_named(link.provider.provider_type)
    granted = set(link.scopes.split(",")) if link.scopes else None
    chosen = streams or provider.streams_for(tuple(data_types) if data_types else None)
    now = utcnow()
    planned = []
    for name in chosen:
        stream = provider.streams[name]
        if granted is not None and stream.scope and stream.scope not in granted:
            continue
        cursor = runs.cursor_for(link.id, name).position if trigger in INCREMENTAL else None
        window_start, window_end = start, end or now
        if cursor is None and window_start is None:
            window_start = window_end - FIRST_POLL_WINDOW
        if window_start is not None and stream.max_backfill_days:
            window_start = max(window_start, window_end - timedelta(days=stream.max_backfill_days))
        first = provider.first_request(
            name, cursor=cursor, start=None if cursor else window_start, end=window_end
        )
        planned.append(
            runs.create_run(
                link_id=link.id,
                provider=provider.name,
                stream=name,
                trigger=trigger,
                data_types=sorted(set(data_types) & stream.data_types) if data_types else [],
                first=first,
                window=(None if cursor else window_start, window_end),
                request_id=current_request_id(),
                queue=queue,
                checks_deletions=bool(stream.complete_kinds)
                and cursor is None
                and _synced_before(link.id, name),
            )
        )
    for run in planned:
        enqueue(page_chain(run.id, 0, run.queue))
    return planned


def _synced_before(link_id: int, stream: str) -> bool:
    """Whether an earlier run of this link's stream may have written what is now deleted.

    A link's first backfill has nothing of its own to void, and checking it would read a whole
    year of Observations back from the FHIR server for nothing.
    """
    earlier = select(SyncStatus.id).where(
        SyncStatus.link_id == link_id, SyncStatus.stream == stream
    )
    return db.session.scalar(earlier.limit(1)) is not None


def active_links(provider: str | None = None) -> list[ProviderLink]:
    query = select(ProviderLink).where(ProviderLink.status == LinkStatus.ACTIVE.value)
    links = db.session.scalars(query).all()
    enabled = state().settings.providers
    return [
        link
        for link in links
        if link.provider.provider_type in enabled
        and (provider is None or link.provider.provider_type == provider)
    ]


@shared_task(name="ohe.maintenance.safety_net")
def safety_net() -> int:
    """Poll the links whose last successful sync is oldest, a share per tick (staggered).

    Each tick polls ``ceil(links * tick / interval)`` links, oldest first, so every link is
    polled about once per ``OHE_SAFETY_NET_INTERVAL`` and a silent webhook costs at most that.
    """
    interval = state().settings.safety_net_interval
    links = active_links()
    if not links:
        return 0
    last_success = dict(
        db.session.execute(
            select(SyncCursor.link_id, func.max(SyncCursor.last_success_at)).group_by(
                SyncCursor.link_id
            )
        ).all()
    )
    busy = set(
        db.session.scalars(
            select(SyncStatus.link_id).where(
                SyncStatus.status.in_([SyncState.PENDING.value, SyncState.RUNNING.value]),
                SyncStatus.sync_type == "schedule",
            )
        )
    )
    cutoff = utcnow() - timedelta(seconds=interval)
    due = sorted(
        (
            link
            for link in links
            if link.id not in busy and (last_success.get(link.id) or link.linked_at) < cutoff
        ),
        key=lambda link: last_success.get(link.id) or link.linked_at,
    )
    share = math.ceil(len(links) * SAFETY_NET_TICK / interval)
    for link in due[:share]:
        sync_link(link, trigger="schedule")
    db.session.commit()
    return min(len(due), share)


@shared_task(name="ohe.maintenance.resume_parked")
def resume_parked() -> int:
    """Pages whose wait was too long for the broker: re-enqueue the stage they stopped at."""
    now = utcnow()
    due = db.session.execute(
        select(SyncPage, SyncStatus)
        .join(SyncStatus, SyncStatus.id == SyncPage.run_id)
        .where(SyncPage.retry_at.is_not(None), SyncPage.retry_at <= now)
    ).all()
    for page, run in due:
        _resume(page, run)
    db.session.commit()
    return len(due)


@shared_task(name="ohe.maintenance.sweep_stuck")
def sweep_stuck() -> int:
    """Pages nobody is working on (lost publish, worker lost beyond the cap): start them again.

    Also deletion checks of finished window runs that never completed (see ``deletions``).
    """
    stale = utcnow() - STUCK_AFTER
    stuck = db.session.execute(
        select(SyncPage, SyncStatus)
        .join(SyncStatus, SyncStatus.id == SyncPage.run_id)
        .where(
            SyncPage.state != "pushed",
            SyncPage.retry_at.is_(None),
            SyncPage.updated_at < stale,
            or_(
                SyncStatus.status.in_([SyncState.PENDING.value, SyncState.RUNNING.value]),
                SyncPage.state == "fetched",
            ),
        )
    ).all()
    for page, run in stuck:
        _resume(page, run)
    unchecked = db.session.scalars(
        select(SyncStatus.id).where(
            SyncStatus.status == SyncState.SUCCESS.value,
            SyncStatus.checks_deletions.is_(True),
            SyncStatus.deletions_checked_at.is_(None),
            SyncStatus.finished_at < stale,
            SyncStatus.finished_at > utcnow() - DELETION_CHECK_GIVE_UP,
        )
    ).all()
    for run_id in unchecked:  # its check was lost or failed for good: try again, for a day
        enqueue(void_deleted.si(run_id))
    db.session.commit()
    return len(stuck) + len(unchecked)


def _resume(page: SyncPage, run: SyncStatus) -> None:
    db.session.execute(
        update(SyncPage).where(SyncPage.id == page.id).values(retry_at=None, updated_at=utcnow())
    )
    entries = {"key": pages.key("entries", run.id, page.number)}
    if page.state == "fetched" and pages.exists(entries):
        enqueue(push_only({"run": run.id, "page": page.number, "entries": entries}, run.queue))
    else:
        enqueue(page_chain(run.id, page.number, run.queue))


@shared_task(name="ohe.maintenance.retry_failed_streams")
def retry_failed_streams() -> int:
    """Streams whose last run failed with a retryable error: sync them again when due."""
    now = utcnow()
    cursors = db.session.scalars(
        select(SyncCursor).where(
            SyncCursor.next_attempt_at.is_not(None), SyncCursor.next_attempt_at <= now
        )
    ).all()
    for cursor in cursors:
        cursor.next_attempt_at = None
        if cursor.link.status == LinkStatus.ACTIVE.value:
            sync_link(cursor.link, trigger="retry", streams=(cursor.data_type,))
    db.session.commit()
    return len(cursors)


periodic(
    "safety-net-sync",
    "ohe.maintenance.safety_net",
    timedelta(seconds=SAFETY_NET_TICK),
    expires=SAFETY_NET_TICK - 10,
)
periodic("resume-parked-pages", "ohe.maintenance.resume_parked", timedelta(minutes=1), expires=50)
periodic("sweep-stuck-pages", "ohe.maintenance.sweep_stuck", timedelta(minutes=5), expires=290)
periodic(
    "retry-failed-streams",
    "ohe.maintenance.retry_failed_streams",
    timedelta(minutes=5),
    expires=290,
)
