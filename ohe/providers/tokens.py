"""Access tokens of a link: refreshed before they expire, serialized across every process.

Withings rotates refresh tokens on every refresh, and the old one dies soon after the new pair
is used; two workers refreshing the same link at once would strand one of them. So a refresh
happens under a per-link lock, re-reads the link inside the lock (another process may have just
refreshed it), and stores the new pair in its own committed transaction *before* the new access
token is used. ``invalid_grant`` marks the link ``needs_reauth`` (never revoked on the first
failure); other refresh failures are retried by the caller.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from ohe.coordination import Coordination
from ohe.extensions import db
from ohe.models import LinkStatus, ProviderLink, utcnow
from ohe.providers.base import InvalidGrant, Provider
from ohe.resilience.errors import AuthError

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)  # refresh when less than this is left
LOCK_TTL = 60.0


class LinkTokens:
    """The ``TokenSource`` of one link (``ohe.providers.base.TokenSource``)."""

    def __init__(
        self,
        link_id: int,
        provider: Provider,
        coordination: Coordination,
        *,
        require_active: bool = True,
    ) -> None:
        self.link_id = link_id
        self.provider = provider
        self._coordination = coordination
        self._require_active = require_active  # False only for the unlink cleanup

    def current(self) -> str:
        with Session(db.engine) as session:
            link = self._load(session)
            if not _expiring(link):
                return link.access_token  # type: ignore[return-value]
            stale = link.access_token
        return self._refresh(stale)

    def refreshed(self, rejected: str) -> str:
        return self._refresh(rejected)

    def refresh_now(self) -> None:
        """Proactive refresh (beat): refresh if the token expires within the margin."""
        self.current()

    def _refused(self, session: Session, link: ProviderLink) -> None:
        """The provider refused the refresh token: the patient must link again — usually.

        Withings answers a wrong client secret exactly like a dead refresh token. When several
        links are refused within minutes, it is our configuration, not the patients: links are
        then left active and the error says what to check.
        """
        refused = self._coordination.incr(f"invalid-grants:{self.provider.name}", STORM_WINDOW)
        if refused > STORM_THRESHOLD:
            log.error(
                "%s refuses the refresh tokens of many links; check the client id and secret",
                self.provider.name,
                extra={
                    "operation": "token_refresh",
                    "provider": self.provider.name,
                    "link_id": self.link_id,
                    "error_type": "auth_error",
                    "refused": refused,
                },
            )
            return
        if link.status == LinkStatus.ACTIVE:
            link.status = LinkStatus.NEEDS_REAUTH.value
            link.status_reason = "the provider refused the refresh token; link again"
            session.commit()
        log.warning(
            "link needs re-authorisation",
            extra={
                "operation": "token_refresh",
                "provider": self.provider.name,
                "link_id": self.link_id,
                "error_type": "auth_error",
            },
        )

    def _load(self, session: Session) -> ProviderLink:
        link = session.get(ProviderLink, self.link_id)
        inactive = link is not None and self._require_active and link.status != LinkStatus.ACTIVE
        if link is None or inactive or not link.access_token:
            state = "missing" if link is None else link.status
            raise AuthError(f"link {self.link_id} is {state}; the patient must link again")
        return link

    def _refresh(self, stale: str | None) -> str:
        with (
            self._coordination.lock(f"token-refresh:{self.link_id}", ttl=LOCK_TTL, wait=LOCK_TTL),
            Session(db.engine) as session,
        ):
            link = self._load(session)
            if link.access_token != stale and not _expiring(link):
                return link.access_token  # type: ignore[return-value]  # refreshed meanwhile
            if not link.refresh_token:
                raise AuthError(f"link {self.link_id} has no refresh token")
            try:
                tokens = self.provider.refresh(link.refresh_token)
            except InvalidGrant as exc:
                self._refused(session, link)
                raise AuthError(str(exc)) from None
            link.access_token = tokens.access_token
            if tokens.refresh_token:
                link.refresh_token = tokens.refresh_token
            link.token_expires_at = tokens.expires_at
            if tokens.scopes:
                link.scopes = ",".join(tokens.scopes)
            session.commit()  # stored before anyone uses the new access token
            log.info(
                "tokens refreshed",
                extra={
                    "operation": "token_refresh",
                    "provider": self.provider.name,
                    "link_id": self.link_id,
                },
            )
            return tokens.access_token


STORM_THRESHOLD = 3  # refused refresh tokens of different links within STORM_WINDOW
STORM_WINDOW = 600.0


def _expiring(link: ProviderLink) -> bool:
    return link.token_expires_at is None or link.token_expires_at - utcnow() < REFRESH_MARGIN
