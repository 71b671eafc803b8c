"""Linking a patient's provider account: signed link URL → consent → callback → link.

The EHR backend (with its API key) asks for a link URL for one patient; the URL is signed and
short-lived, so the patient's browser needs no credentials and nobody can forge one for another
patient. The OAuth ``state`` is signed too and single-use (claimed with a conditional UPDATE).
Only a successful code exchange creates or updates the link, in one transaction together with
the work it starts (subscriptions, device sync, initial or gap backfill, published after the
commit): a failure at any step leaves nothing half-linked.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from ohe.extensions import db, state
from ohe.models import EHRUser, LinkAttempt, LinkStatus, ProviderLink, SyncCursor, utcnow
from ohe.observability.context import LIVE, rate_lane
from ohe.providers import provider as provider_named
from ohe.providers.base import TokenSet
from ohe.providers.rows import provider_row
from ohe.resilience.errors import OheError
from ohe.tasks.base import enqueue
from ohe.tasks.devices import sync_devices
from ohe.tasks.links import subscribe
from ohe.tasks.sync import sync_link

log = logging.getLogger(__name__)

RELINK_OVERLAP = timedelta(hours=1)
CODE_EXCHANGE_PATIENCE = 20.0  # seconds; the code lives 30 s, the web worker 60 s


@dataclass
class LinkFailure(Exception):
    """Why linking stopped, in words for the patient; ``code`` is machine-readable."""

    code: str
    message: str
    status: int
    attempt: LinkAttempt | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _signer(kind: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state().settings.secret_key, salt=f"ohe-{kind}")


def redirect_uri(provider: str) -> str:
    return f"{state().settings.public_url}/link/{provider}/callback/"


def ehr_user(ehr_user_id: str) -> EHRUser:
    """The EHR user, created on first use (the EHR backend is trusted to name its patients)."""
    user = db.session.scalar(select(EHRUser).where(EHRUser.ehr_user_id == ehr_user_id))
    if user is None:
        user = EHRUser(ehr_user_id=ehr_user_id)
        db.session.add(user)
        db.session.flush()
    return user


def start_attempt(
    user: EHRUser, provider: str, success_url: str | None, error_url: str | None
) -> tuple[LinkAttempt, str]:
    """A new link attempt and its signed URL for the patient's browser."""
    ttl = state().settings.link_url_ttl
    row = provider_row(provider)
    attempt = LinkAttempt(
        id=str(uuid.uuid4()),
        ehr_user_id=user.id,
        provider=provider,
        success_url=success_url or row.success_deeplink_url,
        error_url=error_url or row.error_deeplink_url,
        expires_at=utcnow() + timedelta(seconds=ttl),
    )
    db.session.add(attempt)
    token = _signer("link").dumps(attempt.id)
    return attempt, f"{state().settings.public_url}/link/{token}/"


def open_link(token: str) -> tuple[LinkAttempt, str]:
    """The attempt behind a link URL and where to send the browser to consent."""
    settings = state().settings
    try:
        attempt_id = _signer("link").loads(token, max_age=settings.link_url_ttl)
    except SignatureExpired:
        raise LinkFailure(
            "link_expired", "This link has expired; ask for a new one.", 410
        ) from None
    except BadSignature:
        raise LinkFailure("invalid_link", "This link is not valid.", 400) from None
    attempt = db.session.get(LinkAttempt, attempt_id)
    if attempt is None or attempt.completed_at is not None:
        raise LinkFailure(
            "link_used", "This link was already used; ask for a new one.", 400, attempt
        )
    attempt.started_at = attempt.started_at or utcnow()
    state_token = _signer("state").dumps(attempt.id)
    url = provider_named(attempt.provider).authorize_url(
        state_token, redirect_uri(attempt.provider), None
    )
    return attempt, url


def complete_link(
    provider: str, state_token: str | None, code: str | None, error: str | None
) -> LinkAttempt:
    """The callback: verify and claim the state, exchange the code, create or update the link."""
    attempt = _claim(provider, state_token)
    if error:
        reason = (
            "You declined to share your data."
            if error == "access_denied"
            else (f"{attempt.provider.title()} reported an error ({error[:40]}).")
        )
        raise LinkFailure(error[:40], reason, 400 if error != "access_denied" else 403, attempt)
    if not code:
        raise LinkFailure(
            "invalid_request", "The provider sent no authorisation code.", 400, attempt
        )
    try:
        # The code dies in 30 s and a browser waits: live work, never queued behind backfills
        # or behind the subscriptions of patients who linked a moment ago, and it waits for a
        # slot of a saturated limit rather than fail the patient's linking.
        with rate_lane(LIVE, patience=CODE_EXCHANGE_PATIENCE):
            tokens = provider_named(provider).exchange_code(code, redirect_uri(provider), None)
    except OheError as exc:
        log.warning(
            "code exchange failed",
            extra={"operation": "link", "provider": provider, "error_type": exc.error_type},
        )
        raise LinkFailure(
            "token_error",
            f"{provider.title()} did not confirm the authorisation; please try again.",
            502,
            attempt,
        ) from None
    _save_link(attempt, tokens)
    return attempt


def _claim(provider: str, state_token: str | None) -> LinkAttempt:
    settings = state().settings
    try:
        attempt_id = _signer("state").loads(state_token or "", max_age=settings.link_url_ttl)
    except SignatureExpired:
        raise LinkFailure(
            "link_expired", "The linking took too long; please start again.", 410
        ) from None
    except BadSignature:
        raise LinkFailure("invalid_state", "The linking request is not valid.", 400) from None
    claimed = db.session.execute(
        update(LinkAttempt)
        .where(LinkAttempt.id == attempt_id, LinkAttempt.completed_at.is_(None),
               LinkAttempt.provider == provider)
        .values(completed_at=utcnow())
    ).rowcount  # fmt: skip
    attempt = db.session.get(LinkAttempt, attempt_id)
    if not claimed or attempt is None:
        raise LinkFailure("state_reused", "This linking request was already used.", 400, attempt)
    db.session.commit()  # single use, whatever happens next
    return attempt


def _save_link(attempt: LinkAttempt, tokens: TokenSet) -> ProviderLink:
    row = provider_row(attempt.provider)
    external = tokens.external_user_id or ""
    elsewhere = db.session.scalar(
        select(ProviderLink).where(
            ProviderLink.provider_id == row.id,
            ProviderLink.external_user_id == external,
            ProviderLink.ehr_user_id != attempt.ehr_user_id,
            ProviderLink.status != LinkStatus.REVOKED.value,
        )
    )
    if elsewhere is not None:
        raise LinkFailure(
            "account_linked_elsewhere",
            f"This {row.name} account is already linked to another patient record; "
            "unlink it there first.",
            409,
            attempt,
        )
    link = db.session.scalar(
        select(ProviderLink).where(
            ProviderLink.ehr_user_id == attempt.ehr_user_id, ProviderLink.provider_id == row.id
        )
    )
    gap_from = _gap_start(link, external)
    if link is None:
        link = ProviderLink(ehr_user_id=attempt.ehr_user_id, provider_id=row.id)
        db.session.add(link)
    elif link.external_user_id != external:
        link.cursors.clear()  # another account: the old positions mean nothing for it
    link.external_user_id = external
    link.access_token = tokens.access_token
    link.refresh_token = tokens.refresh_token
    link.token_expires_at = tokens.expires_at
    link.scopes = ",".join(tokens.scopes) or None
    link.status = LinkStatus.ACTIVE.value
    link.status_reason = None
    link.linked_at = utcnow()
    attempt.outcome = "linked"
    db.session.flush()
    _start_work(link, gap_from)
    db.session.commit()
    log.info(
        "provider account linked",
        extra={
            "operation": "link",
            "provider": attempt.provider,
            "link_id": link.id,
            "relink": gap_from is not None,
        },
    )
    return link


def _gap_start(link: ProviderLink | None, external: str) -> datetime | None:
    """Re-linking the same account: only the gap since the last successful sync is fetched."""
    if link is None or link.external_user_id != external:
        return None
    last = db.session.scalar(
        select(func.min(SyncCursor.last_success_at)).where(SyncCursor.link_id == link.id)
    )
    return last - RELINK_OVERLAP if last else None


def _start_work(link: ProviderLink, gap_from: datetime | None) -> None:
    # On the live queue: a patient who measures right after linking must be notified.
    enqueue(subscribe.si(link.id).set(queue="webhooks"))
    enqueue(sync_devices.si(link.id).set(queue="sync"))
    now = utcnow()
    if gap_from is not None:
        sync_link(link, trigger="relink", start=gap_from, end=now)
    else:
        days = state().settings.initial_backfill_days
        sync_link(link, trigger="link", start=now - timedelta(days=days), end=now)


def record_failure(failure: LinkFailure) -> None:
    if failure.attempt is not None:
        db.session.rollback()
        db.session.execute(
            update(LinkAttempt)
            .where(LinkAttempt.id == failure.attempt.id)
            .values(outcome=failure.code)
        )
        db.session.commit()
