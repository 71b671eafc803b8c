"""Link lifecycle around the provider: subscriptions, proactive token refresh, unlink cleanup.

Everything here calls the provider, so it runs in workers, never in a web request. A link that
stops working is never revoked on one failure: ``needs_reauth`` is the state for refused tokens,
``revoked`` only follows the patient's (or the provider's) explicit unlink.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from sqlalchemy import select

from ohe.extensions import db, state
from ohe.models import LinkStatus, ProviderLink, utcnow
from ohe.observability.context import SETUP, bind, rate_lane
from ohe.observability.metrics import PROVIDER_API_ERRORS
from ohe.providers import provider as provider_named
from ohe.providers.tokens import LinkTokens
from ohe.resilience.errors import ErrorClass, ValidationError, classify
from ohe.resilience.retry import turn_after
from ohe.tasks.base import enqueue
from ohe.tasks.schedule import periodic

log = logging.getLogger(__name__)

TOKEN_HORIZON = timedelta(hours=1)  # proactive refresh when a token expires within this


def callback_url(provider: str) -> str:
    settings = state().settings
    url = f"{settings.webhook_base_url}{provider}/"
    if settings.webhook_secret_segment:
        url += f"{settings.webhook_secret_segment}/"
    return url


def categories(provider: str) -> tuple[str, ...]:
    settings = state().settings
    return settings.withings_notify_categories if provider == "withings" else ()


def _session(link: ProviderLink):
    provider = provider_named(link.provider.provider_type)
    return provider.session(LinkTokens(link.id, provider, state().coordination))


@shared_task(name="ohe.maintenance.subscribe", bind=True, max_retries=5)
def subscribe(self, link_id: int) -> list[str]:
    """Subscribe the link's notification categories (on link, and to repair)."""
    link = db.session.get(ProviderLink, link_id)
    if link is None or link.status != LinkStatus.ACTIVE or not link.provider.webhooks_enabled:
        return []
    name = link.provider.provider_type
    with bind(user_id=link.ehr_user.ehr_user_id, provider=name, operation="subscribe"):
        try:
            with rate_lane(SETUP):  # not in the live reserve: webhook fetches come first
                done = _session(link).subscribe(
                    callback_url(name), categories(name), f"ohe link {link.id}"
                )
        except ValidationError as exc:  # e.g. Withings 293: callback URL rejected
            link.status_reason = f"webhook subscription refused: {exc}"[:255]
            db.session.commit()
            log.error(
                "webhook subscription refused",
                extra={
                    "operation": "subscribe",
                    "provider": name,
                    "error_type": "validation_error",
                    "reason": str(exc),
                },
            )
            return []
        except Exception as exc:
            if classify(exc) is ErrorClass.RATE_LIMIT:  # busy, not broken: as long as it takes
                wait = turn_after(exc, 30.0, 5.0)
                raise self.retry(countdown=wait, exc=exc, max_retries=None) from None
            if classify(exc).value in ("api_error", "network_error"):
                raise self.retry(countdown=60 * (self.request.retries + 1), exc=exc) from None
            raise
    return done


@shared_task(name="ohe.maintenance.reconcile_subscriptions")
def reconcile_subscriptions() -> int:
    """Daily: re-subscribe categories the provider lost (it drops them after failed deliveries)."""
    repaired = 0
    for link in db.session.scalars(
        select(ProviderLink).where(ProviderLink.status == LinkStatus.ACTIVE.value)
    ).all():
        name = link.provider.provider_type
        if name not in state().settings.providers or not link.provider.webhooks_enabled:
            continue
        try:
            present = {
                s.category
                for s in _session(link).subscriptions()
                if s.callback_url == callback_url(name)
            }
        except Exception as exc:
            PROVIDER_API_ERRORS.labels(name, classify(exc).value).inc()
            log.warning(
                "could not list subscriptions",
                extra={
                    "operation": "reconcile_subscriptions",
                    "provider": name,
                    "link_id": link.id,
                    "error_type": classify(exc).value,
                },
            )
            continue
        if set(categories(name)) - present:
            enqueue(subscribe.si(link.id).set(queue="maintenance"))
            repaired += 1
    db.session.commit()
    return repaired


@shared_task(name="ohe.maintenance.refresh_tokens")
def refresh_tokens() -> int:
    """Refresh tokens that expire within the hour, so webhook syncs never wait for a refresh."""
    horizon = utcnow() + TOKEN_HORIZON
    refreshed = 0
    for link in db.session.scalars(
        select(ProviderLink).where(
            ProviderLink.status == LinkStatus.ACTIVE.value, ProviderLink.token_expires_at < horizon
        )
    ).all():
        provider = provider_named(link.provider.provider_type)
        try:
            LinkTokens(link.id, provider, state().coordination).refresh_now()
            refreshed += 1
        except Exception as exc:  # counted and logged; the next pass or a sync tries again
            PROVIDER_API_ERRORS.labels(provider.name, classify(exc).value).inc()
            log.warning(
                "proactive token refresh failed",
                extra={
                    "operation": "token_refresh",
                    "provider": provider.name,
                    "link_id": link.id,
                    "error_type": classify(exc).value,
                },
            )
    return refreshed


def revoke_link(link: ProviderLink, *, reason: str, purge: bool = False) -> None:
    """Stop syncing now; the provider-side cleanup runs in a worker after the commit."""
    link.status = LinkStatus.REVOKED.value
    link.status_reason = reason[:255]
    from ohe.tasks.devices import unlink_cleanup

    enqueue(unlink_cleanup.si(link.id, purge).set(queue="maintenance"))


periodic(
    "reconcile-subscriptions",
    "ohe.maintenance.reconcile_subscriptions",
    timedelta(days=1),
    expires=3600,
)
periodic("refresh-tokens", "ohe.maintenance.refresh_tokens", timedelta(minutes=30), expires=1500)
