"""Records deleted at the provider: their Observations become ``entered-in-error``.

Withings notifies a deletion like any other change, and a re-fetch of the notified window no
longer returns the group (provider-apis.md §1.10, fhir-mapping.md §9.4). A stream whose window
fetch is complete (``Stream.complete_kinds``) thus proves a deletion by absence. When a window
run of such a stream has written its last page, this task looks at the link's Observations of
those kinds in the window and voids the ones whose record is gone.

A wrong void hides a real measurement from clinicians, so every step errs towards keeping:

- only Observations of this link, of the run's record kinds and of the data types the run
  fetched (a type the deployment excluded later is absent without being deleted), effective
  strictly inside the window the provider was asked about, and not already voided;
- a candidate is one the run's pages did not return; before anything is voided the window is
  fetched again, *after* the candidates were read, and only what is still absent is voided.
  That second look closes the race with a concurrent run that wrote a record created after
  this run's fetch, and makes the pages' record of what they saw an optimisation only (a page
  re-pushed by the sweeper has none: everything is then checked again);
- the status changes, nothing is deleted; a later sync that sees the record writes it back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery import Task, shared_task
from sqlalchemy import select

from ohe.extensions import db, state
from ohe.fhir import bundle, identifiers
from ohe.fhir.builders import BuildContext
from ohe.fhir.elements import data_type_of
from ohe.models import LinkStatus, ProviderLink, SyncPage, SyncState, SyncStatus, utcnow
from ohe.observability.context import bind
from ohe.observability.metrics import OBSERVATIONS_VOIDED
from ohe.providers import provider as provider_named
from ohe.providers.base import Provider
from ohe.providers.tokens import LinkTokens
from ohe.resilience.errors import classify
from ohe.tasks.chain import POLICIES, fhir_client, fhir_write_lock, wanted_types
from ohe.tasks.transform import LinkInfo, build_context, keep

log = logging.getLogger(__name__)

# Observations per search page when reading a window back: servers cap ``_count`` at their own
# maximum and page on, but a small default page (HAPI 20, ours 50) makes a year-long window
# hundreds of round trips.
SEARCH_PAGE = 1000


@shared_task(name="ohe.sync.void_deleted", bind=True, max_retries=None)
def void_deleted(self: Task, run_id: int) -> int:
    """Void this finished window run's deleted records; returns how many. Idempotent."""
    run = db.session.get(SyncStatus, run_id)
    if (
        run is None
        or run.status != SyncState.SUCCESS.value
        or not run.checks_deletions
        or run.deletions_checked_at is not None
    ):
        return 0
    link = db.session.get(ProviderLink, run.link_id) if run.link_id else None
    voided = 0
    if link is not None and link.status == LinkStatus.ACTIVE.value:
        info = LinkInfo.of(link)
        with bind(user_id=info.ehr_user_id, provider=run.provider, operation="void_deleted"):
            try:
                voided = _void(run, link, build_context(state().settings, info))
            except Exception as exc:
                policy, attempt = POLICIES["push"], self.request.retries or 0
                if not policy.should_retry(exc, attempt):
                    raise  # counted, logged and kept by the task base; the sweeper tries again
                log.warning(
                    "deletion check failed, retrying: %s",
                    exc,
                    extra={"run_id": run_id, "error_type": classify(exc).value},
                )
                raise self.retry(countdown=policy.delay(attempt, exc), exc=exc) from None
    run.deletions_checked_at = utcnow()
    run.resources_voided = voided
    db.session.commit()
    return voided


def _void(run: SyncStatus, link: ProviderLink, ctx: BuildContext) -> int:
    provider = provider_named(run.provider)
    wanted = wanted_types(run)
    seen = _seen(run)
    candidates = [c for c in _stored(run, provider, ctx, wanted) if c[0] not in seen]
    if not candidates:
        return 0
    still_there = _fetch_again(run, link, provider, wanted)
    gone = [resource for key, resource in candidates if key not in still_there]
    if gone:
        with fhir_write_lock(ctx.scope):
            fhir_client().write([bundle.void_entry(resource) for resource in gone])
        OBSERVATIONS_VOIDED.labels(run.provider, "deleted_at_provider").inc(len(gone))
        log.info(
            "observations of records deleted at the provider marked entered-in-error",
            extra={"run_id": run.id, "stream": run.stream, "voided": len(gone)},
        )
    return len(gone)


def _seen(run: SyncStatus) -> set[str]:
    seen: set[str] = set()
    for page_seen in db.session.scalars(select(SyncPage.seen).where(SyncPage.run_id == run.id)):
        seen.update(page_seen or ())
    return seen


def _stored(
    run: SyncStatus, provider: Provider, ctx: BuildContext, wanted: frozenset[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(source id, Observation) of this link, of the run's kinds and types, inside its window."""
    stream = provider.streams[run.stream]
    start, end = run.window_start, run.window_end
    if start is None or end is None:
        return []
    found = []
    for kind in sorted(stream.complete_kinds):
        id_system = ctx.systems[kind]
        query = {
            "subject": ctx.patient,
            "identifier": f"{id_system}|",
            "date": [f"ge{_z(start)}", f"le{_z(end)}"],
            "_count": str(SEARCH_PAGE),
        }
        for resource in fhir_client().search("Observation", query):
            key = identifiers.natural_key(resource, id_system, ctx.scope)
            effective = _effective(resource)
            if (
                key is not None
                and resource.get("status") != "entered-in-error"
                and effective is not None
                and start < effective < end
                and data_type_of(resource.get("code", {}), wanted, ctx.local_system) is not None
            ):
                found.append((key, resource))
    return found


def _fetch_again(
    run: SyncStatus, link: ProviderLink, provider: Provider, wanted: frozenset[str]
) -> set[str]:
    """Source ids the provider returns for the run's window now (every page)."""
    session = provider.session(LinkTokens(link.id, provider, state().coordination))
    request = provider.first_request(
        run.stream, cursor=None, start=run.window_start, end=run.window_end
    )
    present: set[str] = set()
    while request is not None:
        result = session.fetch(request)
        kept, _ = keep(provider.parse(request, result.payload), wanted)
        present.update(sample.source_id for sample in kept)
        request = result.next_request
    return present


def _effective(resource: dict[str, Any]) -> datetime | None:
    value = resource.get("effectiveDateTime") or resource.get("effectivePeriod", {}).get("start")
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
