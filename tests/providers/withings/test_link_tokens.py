"""The Withings provider under the real ``LinkTokens`` (PostgreSQL row, Redis lock).

The issue's acceptance check: ten concurrent refreshes of one expired token make one refresh
call and the link stays active. Also: a dead refresh token marks the link ``needs_reauth``, and
an access token Withings expired early (401) is refreshed exactly once and the call succeeds.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from ohe.extensions import db
from ohe.models import EHRUser, LinkStatus, ProviderLink
from ohe.providers.base import TokenSet
from ohe.providers.rows import provider_row
from ohe.providers.tokens import LinkTokens
from ohe.providers.withings import WithingsProvider
from ohe.resilience.errors import AuthError
from tests.sandbox.withings_fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    SandboxServer,
)


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    server = SandboxServer()
    yield server
    server.close()


@pytest.fixture
def provider(app: Flask, sb: SandboxServer) -> WithingsProvider:
    """Built like ``ohe.providers.provider("withings")``, pointed at this test's sandbox."""
    runtime = app.extensions["ohe"]
    settings = dataclasses.replace(
        runtime.settings,
        withings_api_url=sb.url,
        withings_client_id=CLIENT_ID,
        withings_client_secret=CLIENT_SECRET,
    )
    breaker = runtime.breakers.get_breaker(WithingsProvider.breaker)
    return WithingsProvider(settings, runtime.coordination, breaker)


@pytest.fixture
def make_link(
    app: Flask, sb: SandboxServer, provider: WithingsProvider
) -> Callable[..., tuple[int, TokenSet]]:
    def make(*, expires_at: datetime, refresh_token: str | None = None) -> tuple[int, TokenSet]:
        userid = sb.new_user(history_days=3)
        tokens = provider.exchange_code(sb.code(userid), REDIRECT_URI, None)
        with app.app_context():
            link = ProviderLink(
                ehr_user=EHRUser(ehr_user_id=f"patient-{userid}"),
                provider=provider_row("withings"),
                external_user_id=tokens.external_user_id,
                access_token=tokens.access_token,
                refresh_token=refresh_token or tokens.refresh_token,
                token_expires_at=expires_at,
                scopes=",".join(tokens.scopes),
            )
            db.session.add(link)
            db.session.commit()
            return link.id, tokens

    return make


def test_ten_concurrent_refreshes_of_one_expired_token_make_one_refresh_call(
    app: Flask, sb: SandboxServer, provider: WithingsProvider, make_link: Callable[..., tuple]
) -> None:
    link_id, old = make_link(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    coordination = app.extensions["ohe"].coordination
    start = threading.Barrier(10)
    results: list[str] = []
    failures: list[BaseException] = []

    def refresh() -> None:
        try:
            with app.app_context():
                tokens = LinkTokens(link_id, provider, coordination)
                start.wait(10)
                results.append(tokens.current())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=refresh) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert len(results) == 10
    assert len(set(results)) == 1  # every thread got the same new access token
    assert results[0] != old.access_token
    assert sb.admin("GET", "/stats")["token_requests"]["refresh_token"] == {"ok": 1, "failed": 0}
    with app.app_context():
        link = db.session.get(ProviderLink, link_id)
        assert link is not None
        assert link.status == LinkStatus.ACTIVE.value
        assert link.access_token == results[0]
        assert link.refresh_token not in (None, old.refresh_token)
        assert link.token_expires_at is not None
        assert link.token_expires_at > datetime.now(UTC) + timedelta(hours=2)
    # the stored pair is the live one: the new access token works and the new refresh rotates
    sb.call("/v2/user", results[0], action="getdevice")
    assert provider.refresh(link.refresh_token).access_token


def test_a_dead_refresh_token_marks_the_link_needs_reauth(
    app: Flask, sb: SandboxServer, provider: WithingsProvider, make_link: Callable[..., tuple]
) -> None:
    link_id, tokens = make_link(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    rotated = provider.refresh(tokens.refresh_token)  # e.g. another deployment rotated it...
    sb.call("/v2/user", rotated.access_token, action="getdevice")  # ...and used the new pair
    with app.app_context():
        link_tokens = LinkTokens(link_id, provider, app.extensions["ohe"].coordination)
        with pytest.raises(AuthError, match="refused the refresh token"):
            link_tokens.current()
        link = db.session.get(ProviderLink, link_id)
        assert link is not None
        assert link.status == LinkStatus.NEEDS_REAUTH.value
        with pytest.raises(AuthError, match="needs_reauth"):
            link_tokens.current()  # no further calls to Withings for a dead link
    assert sb.admin("GET", "/stats")["token_requests"]["refresh_token"] == {"ok": 1, "failed": 1}


def test_an_access_token_withings_expired_early_is_refreshed_once_and_the_call_succeeds(
    app: Flask, sb: SandboxServer, provider: WithingsProvider, make_link: Callable[..., tuple]
) -> None:
    link_id, tokens = make_link(expires_at=datetime.now(UTC) + timedelta(hours=3))
    sb.admin("POST", f"/users/{tokens.external_user_id}/expire-token")
    now = datetime.now(UTC)
    request = provider.first_request(
        "measures", cursor=None, start=now - timedelta(days=4), end=now
    )
    with app.app_context():
        session = provider.session(
            LinkTokens(link_id, provider, app.extensions["ohe"].coordination)
        )
        result = session.fetch(request)
        assert result.records > 0
        link = db.session.get(ProviderLink, link_id)
        assert link is not None and link.access_token != tokens.access_token
        assert link.status == LinkStatus.ACTIVE.value
    stats = sb.admin("GET", "/stats")
    assert stats["token_requests"]["refresh_token"] == {"ok": 1, "failed": 0}
    assert stats["calls"]["by_action"]["/measure getmeas"] == 2  # refused once, then served


def test_many_refused_refresh_tokens_at_once_are_a_configuration_error_not_dead_links(
    app: Flask, sb: SandboxServer, make_link: Callable[..., tuple]
) -> None:
    """Withings answers a wrong client secret like a dead refresh token: don't strand patients."""
    runtime = app.extensions["ohe"]
    wrong = dataclasses.replace(
        runtime.settings,
        withings_api_url=sb.url,
        withings_client_id=CLIENT_ID,
        withings_client_secret="wrong",
    )
    misconfigured = WithingsProvider(
        wrong, runtime.coordination, runtime.breakers.get_breaker("withings_api")
    )
    links = [make_link(expires_at=datetime.now(UTC) - timedelta(minutes=1))[0] for _ in range(5)]
    with app.app_context():
        for link_id in links:
            with pytest.raises(AuthError):
                LinkTokens(link_id, misconfigured, runtime.coordination).current()
        statuses = [db.session.get(ProviderLink, link_id).status for link_id in links]
    assert statuses[:3] == [LinkStatus.NEEDS_REAUTH.value] * 3
    assert statuses[3:] == [LinkStatus.ACTIVE.value] * 2  # the storm is recognised: left active
