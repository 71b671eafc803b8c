"""Sync commands: start syncs and backfills and follow them live, list links, replay webhooks.

The progress shown is read from the database the workers update (runs and pages), so it is
the Celery work itself being followed, from any host, not a local estimate.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

import click
from sqlalchemy import func, select

from ohe.cli import fail, ohe_cli
from ohe.extensions import db
from ohe.fhir.codes import SAMPLE_TYPES
from ohe.models import (
    EHRUser,
    LinkStatus,
    ProviderLink,
    SyncCursor,
    SyncPage,
    SyncStatus,
    WebhookEvent,
    utcnow,
)
from ohe.tasks.base import enqueue
from ohe.tasks.runs import FINISHED
from ohe.tasks.status import link_summary
from ohe.tasks.sync import active_links, sync_link
from ohe.tasks.webhooks import process


def _selected_links(
    ehr_user_id: str | None, all_links: bool, provider: str | None
) -> list[ProviderLink]:
    if bool(ehr_user_id) == all_links:
        fail("give either --ehr-user-id or --all")
    if all_links:
        return active_links(provider)
    links = [
        link
        for link in db.session.scalars(
            select(ProviderLink).join(EHRUser).where(EHRUser.ehr_user_id == ehr_user_id)
        ).all()
        if link.status == LinkStatus.ACTIVE
        and (provider is None or link.provider.provider_type == provider)
    ]
    if not links:
        fail(f"no active provider link for {ehr_user_id}")
    return links


def _data_types(value: str | None) -> list[str] | None:
    if not value:
        return None
    types = [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in types if t not in SAMPLE_TYPES]
    if unknown:
        fail(f"unknown data types: {', '.join(unknown)}")
    return types


selection = [
    click.option("--ehr-user-id", help="The patient (FHIR Patient id) whose links to sync."),
    click.option("--all", "all_links", is_flag=True, help="Every active link."),
    click.option("--provider", help="Only this provider."),
    click.option("--data-types", help="Comma-separated data types (default: all)."),
    click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the progress."),
    click.option("--timeout", type=float, default=None, help="Stop following after N seconds."),
]


def _with_selection(command):
    for option in reversed(selection):
        command = option(command)
    return command


@ohe_cli.command("sync")
@_with_selection
def sync(ehr_user_id, all_links, provider, data_types, wait, timeout) -> None:  # noqa: PLR0917
    """Incremental sync now (from each stream's cursor)."""
    runs = [
        run
        for link in _selected_links(ehr_user_id, all_links, provider)
        for run in sync_link(link, trigger="manual", data_types=_data_types(data_types))
    ]
    _started(runs, wait, timeout)


@ohe_cli.command("backfill")
@click.option("--days", type=click.IntRange(1, 3660), required=True, help="How far back.")
@_with_selection
def backfill(days, ehr_user_id, all_links, provider, data_types, wait, timeout) -> None:  # noqa: PLR0917
    """Fetch and write the last N days again (idempotent: nothing is written twice)."""
    now = utcnow()
    runs = [
        run
        for link in _selected_links(ehr_user_id, all_links, provider)
        for run in sync_link(
            link, trigger="backfill", data_types=_data_types(data_types),
            start=now - timedelta(days=days), end=now,
        )
    ]  # fmt: skip
    _started(runs, wait, timeout)


def _started(runs: list[SyncStatus], wait: bool, timeout: float | None) -> None:
    db.session.commit()
    click.echo(f"Started {len(runs)} sync runs: {', '.join(str(r.id) for r in runs) or '-'}")
    if wait and runs:
        failed = follow([r.id for r in runs], timeout=timeout)
        if failed:
            raise SystemExit(1)


def follow(run_ids: list[int], *, timeout: float | None = None, interval: float = 0.5) -> int:
    """Draw a live progress line until every run has finished; returns the number failed."""
    started = time.monotonic()
    tty = sys.stdout.isatty()
    last_print = 0.0
    while True:
        db.session.expire_all()
        runs = db.session.scalars(select(SyncStatus).where(SyncStatus.id.in_(run_ids))).all()
        planned = db.session.scalar(select(func.count()).where(SyncPage.run_id.in_(run_ids))) or 0
        done = sum(r.pages_done for r in runs)
        written = sum(r.resources_written for r in runs)
        waits = sum(r.rate_limit_waits for r in runs)
        finished = sum(r.status in FINISHED for r in runs)
        elapsed = time.monotonic() - started
        eta = "--:--:--" if not done else _clock(elapsed / done * max(planned - done, 0))
        width = 24
        filled = int(width * done / planned) if planned else 0
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {done}/{planned} pages  "
            f"{written} resources written  {waits} rate-limit waits  "
            f"runs {finished}/{len(runs)}  ETA {eta}"
        )
        if tty:
            click.echo(f"\r{line}", nl=False)
        elif time.monotonic() - last_print >= 5 or finished == len(runs):
            click.echo(line)
            last_print = time.monotonic()
        if finished == len(runs):
            break
        if timeout is not None and elapsed > timeout:
            click.echo("\nstopped following (the sync goes on in the workers)")
            return 0
        time.sleep(interval)
    if tty:
        click.echo("")
    failed = [r for r in runs if r.status == "failed"]
    for run in failed:
        click.echo(
            f"run {run.id} ({run.provider} {run.stream}) failed: "
            f"{run.error_class}: {run.error_message}"
        )
    click.echo(
        f"done in {_clock(time.monotonic() - started)}: "
        f"{len(runs) - len(failed)} succeeded, {len(failed)} failed"
    )
    return len(failed)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@ohe_cli.command("links")
@click.option("--provider", help="Only this provider.")
@click.option(
    "--status", type=click.Choice([s.value for s in LinkStatus]), help="Only this status."
)
def links(provider: str | None, status: str | None) -> None:
    """Every link with its status, last successful sync and last error."""
    rows = db.session.scalars(select(ProviderLink).order_by(ProviderLink.id)).all()
    last_success = dict(
        db.session.execute(
            select(SyncCursor.link_id, func.max(SyncCursor.last_success_at)).group_by(
                SyncCursor.link_id
            )
        ).all()
    )
    click.echo(
        f"{'ID':>5}  {'EHR USER':<20} {'PROVIDER':<9} {'EXTERNAL':<12} {'STATUS':<13} "
        f"{'LAST SUCCESS':<20} NOTE"
    )
    for link in rows:
        if (provider and link.provider.provider_type != provider) or (
            status and link.status != status
        ):
            continue
        success = last_success.get(link.id)
        note = link.status_reason or ""
        click.echo(
            f"{link.id:>5}  {link.ehr_user.ehr_user_id[:20]:<20} {link.provider.provider_type:<9} "
            f"{link.external_user_id[:12]:<12} {link.status:<13} "
            f"{success.strftime('%Y-%m-%d %H:%M:%S') if success else '-':<20} {note}"
        )


@ohe_cli.command("sync-status")
@click.option("--ehr-user-id", required=True)
def sync_status(ehr_user_id: str) -> None:
    """The status API's view of a patient's links, as JSON."""
    user = db.session.scalar(select(EHRUser).where(EHRUser.ehr_user_id == ehr_user_id))
    if user is None:
        fail(f"EHR user {ehr_user_id} not found")
    body = {link.provider.provider_type: link_summary(link) for link in user.links}  # type: ignore[union-attr]
    click.echo(json.dumps({"ehr_user_id": ehr_user_id, "providers": body}, indent=2))


@ohe_cli.command("replay-webhook")
@click.argument("event_id", type=int)
def replay_webhook(event_id: int) -> None:
    """Process a recorded notification again (e.g. after fixing a link)."""
    event = db.session.get(WebhookEvent, event_id)
    if event is None:
        fail(f"no webhook event {event_id}")
        return
    replay = WebhookEvent(
        provider=event.provider,
        fingerprint=event.fingerprint,
        external_user_id=event.external_user_id,
        category=event.category,
        action=event.action,
        window_start=event.window_start,
        window_end=event.window_end,
        link_id=event.link_id,
        status="pending",
    )  # fmt: skip
    db.session.add(replay)
    db.session.flush()
    enqueue(process.si(replay.id).set(queue="webhooks"))
    db.session.commit()
    click.echo(
        f"Replaying webhook {event_id} as event {replay.id} ({event.provider}, "
        f"category {event.category})"
    )
