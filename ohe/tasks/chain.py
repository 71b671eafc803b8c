"""The page chain: fetch → transform → push, one chain per page of a sync run.

- **fetch** calls the provider (shared rate limit, breaker, serialized token refresh), keeps the
  raw page (inline or by Redis reference), records it, and plans the next page — which starts
  its own chain at once, so pages of one run flow through the queue in order and pages of many
  runs interleave fairly.
- **transform** is pure: provider JSON → samples → validated FHIR entries.
- **push** writes one transaction per batch, serialized per (patient, provider) by a lock, and
  retries on its own: a FHIR outage never re-fetches from the provider (provider quota is the
  scarce resource). The run's cursor moves only after its last page is written.

Every stage is idempotent (see ``runs``); messages carry ids and references, never health data
or tokens. Retries follow the guide's ``RetryHandler`` by error class; a wait longer than
``LONG_WAIT`` is parked in the database for beat (``resume_parked``), not held as a broker ETA.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import Task, chain, shared_task
from celery.canvas import Signature
from sqlalchemy import update

from ohe.extensions import db, state
from ohe.fhir.client import client_factory
from ohe.models import LinkStatus, ProviderLink, SyncPage, SyncStatus, utcnow
from ohe.observability import context
from ohe.providers import provider as provider_named
from ohe.providers.base import FetchRequest
from ohe.providers.rows import provider_row
from ohe.providers.tokens import LinkTokens
from ohe.resilience.errors import AuthError, ErrorClass, classify
from ohe.resilience.retry import LONG_WAIT, RetryHandler, turn_after
from ohe.tasks import pages, runs
from ohe.tasks.base import enqueue
from ohe.tasks.transform import LinkInfo, build_context, transform_page

log = logging.getLogger(__name__)

#: Retry policy per stage (the guide's RetryHandler); transform is pure, so it never retries.
POLICIES: dict[str, RetryHandler] = {
    "fetch": RetryHandler(max_retries=6, base_delay=5.0, max_delay=300.0, backoff_factor=2.0),
    "transform": RetryHandler(max_retries=0),
    "push": RetryHandler(max_retries=8, base_delay=2.0, max_delay=300.0, backoff_factor=2.0),
}


@contextmanager
def fhir_write_lock(scope: str) -> Iterator[None]:
    """Writes of one (patient, provider) never interleave: FHIR servers race on conditional ops.

    The lock lives at most as long as a task can (a killed holder frees it by then), and a
    waiter gives up well before its own soft time limit; ``LockNotAcquired`` is retried.
    """
    settings = state().settings
    with state().coordination.lock(
        f"fhir-write:{scope}",
        ttl=float(settings.task_time_limit),
        wait=settings.task_soft_time_limit / 2,
    ):
        yield


def page_chain(run_id: int, number: int, queue: str) -> Signature:
    return chain(
        fetch.si(run_id, number).set(queue=queue),
        transform.s().set(queue=queue),
        push.s().set(queue=queue),
    )


def push_only(transformed: dict[str, Any], queue: str) -> Signature:
    return push.si(transformed).set(queue=queue)


def fhir_client() -> Any:
    runtime = state()
    return runtime.service(
        "fhir_client", client_factory(runtime.settings, runtime.breakers.get_breaker("fhir_server"))
    )


def _link(link_id: int | None) -> ProviderLink:
    link = db.session.get(ProviderLink, link_id) if link_id else None
    if link is None or link.status != LinkStatus.ACTIVE:
        status = "gone" if link is None else link.status
        raise AuthError(f"the link is {status}; the patient must link again")
    return link


def _retry_or_fail(task: Task, run_id: int, number: int, exc: Exception, stage: str) -> None:
    """Retry soon, park for beat, or fail the run — by error class and attempt."""
    policy = POLICIES[stage]
    attempt = task.request.retries or 0
    if classify(exc) is ErrorClass.AUTH or not policy.should_retry(exc, attempt):
        db.session.rollback()
        runs.fail_run(run_id, exc, stage=stage)
        db.session.commit()
        return
    delay = policy.delay(attempt, exc)
    if delay > LONG_WAIT:
        db.session.rollback()
        retry_at = utcnow() + timedelta(seconds=delay)
        runs.park(run_id, number, retry_at)
        db.session.commit()
        log.warning(
            "page parked until %s",
            retry_at.isoformat(),
            extra={
                "operation": f"sync_{stage}",
                "run_id": run_id,
                "page": number,
                "error_type": classify(exc).value,
            },
        )
        return
    log.warning(
        "%s failed, retrying in %.1f s",
        stage,
        delay,
        extra={
            "operation": f"sync_{stage}",
            "run_id": run_id,
            "page": number,
            "error_type": classify(exc).value,
            "attempt": attempt + 1,
        },
    )
    raise task.retry(countdown=delay, exc=exc, max_retries=None)


def _wait_turn(run_id: int, number: int, queue: str, exc: BaseException) -> None:
    """The shared rate limit is busy, not broken: the page waits its turn as long as it takes.

    A fresh chain later rather than a retry, so waiting never uses up the attempts real
    failures are allowed (a year-long backfill of many patients waits for hours in total).
    The page is touched so the stuck-page sweeper leaves it alone.
    """
    db.session.rollback()
    db.session.execute(
        update(SyncPage)
        .where(SyncPage.run_id == run_id, SyncPage.number == number)
        .values(updated_at=utcnow())
    )
    enqueue(page_chain(run_id, number, queue).set(countdown=turn_after(exc, 5.0, 2.0)))
    db.session.commit()


@shared_task(name="ohe.sync.fetch", bind=True, max_retries=None)
def fetch(self: Task, run_id: int, number: int) -> dict[str, Any] | None:
    found = runs.page(run_id, number)
    if found is None:
        return None
    run, page = found
    if page.state == "pushed" or run.status == "failed":
        return None
    request = FetchRequest.from_json(page.request)
    try:
        link = _link(run.link_id)
        provider = provider_named(run.provider)
        with (
            context.bind(
                user_id=link.ehr_user.ehr_user_id,
                provider=run.provider,
                operation=f"{run.stream}_fetch",
            ),
            context.counting_rate_waits() as waits,
        ):
            tokens = LinkTokens(link.id, provider, state().coordination)
            result = provider.session(tokens).fetch(request)
    except Exception as exc:
        if classify(exc) is ErrorClass.RATE_LIMIT:
            return _wait_turn(run.id, number, run.queue, exc)
        return _retry_or_fail(self, run_id, number, exc, "fetch")
    raw = pages.put(
        "raw", run_id, number, {"request": request.to_json(), "payload": result.payload}
    )
    planned = runs.record_fetch(run_id, number, result, waits[0])
    if planned is not None:
        enqueue(page_chain(run_id, planned, run.queue))
    db.session.commit()
    return {"run": run_id, "page": number, "raw": raw}


@shared_task(name="ohe.sync.transform", bind=True, max_retries=0)
def transform(self: Task, fetched: dict[str, Any] | None) -> dict[str, Any] | None:
    if fetched is None:
        return None
    run_id, number = fetched["run"], fetched["page"]
    found = runs.page(run_id, number)
    if found is None:
        return None
    run, _ = found
    settings = state().settings
    try:
        link = LinkInfo.of(_link(run.link_id))
        provider = provider_named(run.provider)
        document = pages.get(fetched["raw"])
        with context.bind(
            user_id=link.ehr_user_id, provider=run.provider, operation=f"{run.stream}_transform"
        ):
            output = transform_page(
                provider,
                FetchRequest.from_json(document["request"]),
                document["payload"],
                ctx=build_context(settings, link),
                wanted=wanted_types(run),
                validation_mode=settings.fhir_validation,
            )
    except Exception as exc:
        return _retry_or_fail(self, run_id, number, exc, "transform")
    transformed = {
        "run": run_id,
        "page": number,
        "entries": pages.put("entries", run_id, number, output.entries),
        "count": len(output.entries),
        "queue": run.queue,
    }
    if run.checks_deletions:
        transformed["seen"] = pages.put("seen", run_id, number, output.seen)
    return transformed


@shared_task(name="ohe.sync.push", bind=True, max_retries=None)
def push(self: Task, transformed: dict[str, Any] | None) -> dict[str, Any] | None:
    if transformed is None:
        return None
    run_id, number = transformed["run"], transformed["page"]
    found = runs.page(run_id, number)
    if found is None or found[1].state == "pushed":
        return None
    run, _ = found
    written = 0
    try:
        link = LinkInfo.of(_link(run.link_id))
        entries = pages.get(transformed["entries"])
        if entries:
            settings = state().settings
            scope = build_context(settings, link).scope
            with (
                context.bind(
                    user_id=link.ehr_user_id, provider=run.provider, operation=f"{run.stream}_push"
                ),
                fhir_write_lock(scope),
            ):
                result = fhir_client().write(entries)
            written = result.written
            if result.rejected:
                log.warning(
                    "FHIR server rejected %d resources",
                    len(result.rejected),
                    extra={
                        "operation": f"{run.stream}_push",
                        "run_id": run_id,
                        "error_type": "validation_error",
                    },
                )
    except Exception as exc:
        return _retry_or_fail(self, run_id, number, exc, "push")
    # A page re-pushed by the sweeper carries no ``seen``: deletions then re-check everything.
    seen = pages.get(transformed["seen"]) if "seen" in transformed else None
    if runs.record_push(run_id, number, written, seen) and run.checks_deletions:
        from ohe.tasks.deletions import void_deleted  # it builds on this module

        enqueue(void_deleted.si(run_id).set(queue=run.queue))
    db.session.commit()
    return {"run": run_id, "page": number, "written": written}


def wanted_types(run: SyncStatus) -> frozenset[str]:
    """The data types a run writes: those it asked for (or its stream's), minus exclusions."""
    stream = provider_named(run.provider).streams[run.stream]
    wanted = set(run.data_types) if run.data_types else set(stream.data_types)
    return frozenset(wanted - set(provider_row(run.provider).excluded_data_types or []))
