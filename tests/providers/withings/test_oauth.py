"""OAuth against the sandbox: code exchange, refresh rotation, and no secret anywhere visible."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY, generate_latest

from ohe.providers.base import InvalidGrant
from ohe.providers.withings import WithingsProvider
from ohe.resilience.errors import AuthError
from tests.sandbox.withings_fixtures import CLIENT_SECRET, REDIRECT_URI, SandboxServer


def test_exchange_code_returns_tokens_with_the_withings_user_id(
    start_sandbox: Callable[..., SandboxServer],
    make_provider: Callable[..., WithingsProvider],
) -> None:
    sb = start_sandbox()
    provider = make_provider(sb)
    userid = sb.new_user(history_days=0)
    before = datetime.now(UTC)
    tokens = provider.exchange_code(sb.code(userid, "user.info,user.metrics"), REDIRECT_URI, None)
    assert tokens.external_user_id == str(userid)
    assert tokens.scopes == ("user.info", "user.metrics")
    assert tokens.access_token and tokens.refresh_token
    assert (
        before + timedelta(hours=3) <= tokens.expires_at <= datetime.now(UTC) + timedelta(hours=3)
    )
    assert tokens.access_token not in repr(tokens)
    stats = sb.admin("GET", "/stats")
    assert stats["token_requests"] == {"authorization_code": {"ok": 1, "failed": 0}}


def test_a_reused_code_or_wrong_redirect_is_a_clear_auth_error(
    start_sandbox: Callable[..., SandboxServer],
    make_provider: Callable[..., WithingsProvider],
) -> None:
    sb = start_sandbox()
    provider = make_provider(sb)
    code = sb.code(sb.new_user(history_days=0))
    provider.exchange_code(code, REDIRECT_URI, None)
    with pytest.raises(AuthError) as reused:
        provider.exchange_code(code, REDIRECT_URI, None)
    assert not isinstance(reused.value, InvalidGrant)
    assert "Withings refused the authorization code (status 503)" in str(reused.value)
    assert "already used or expired" in str(reused.value)
    assert code not in str(reused.value)
    other = sb.code(sb.new_user(history_days=0))
    with pytest.raises(AuthError, match="redirect URI differs"):
        provider.exchange_code(other, "https://elsewhere.example/cb", None)


def test_refresh_rotates_and_the_old_refresh_token_dies_once_the_new_pair_is_used(
    start_sandbox: Callable[..., SandboxServer],
    make_provider: Callable[..., WithingsProvider],
) -> None:
    sb = start_sandbox()
    provider = make_provider(sb)
    first = provider.exchange_code(sb.code(sb.new_user(history_days=2)), REDIRECT_URI, None)
    assert first.refresh_token is not None
    second = provider.refresh(first.refresh_token)
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.access_token != first.access_token
    # Until the new access token is used, the old refresh token still works (crash recovery)...
    grace = provider.refresh(first.refresh_token)
    assert grace.access_token
    # ...once a token it produced is used, it is dead: the patient must link again.
    sb.call("/v2/user", grace.access_token, action="getdevice")
    with pytest.raises(InvalidGrant, match="refused the refresh token"):
        provider.refresh(first.refresh_token)
    with pytest.raises(InvalidGrant):
        provider.refresh("not-a-refresh-token")
    stats = sb.admin("GET", "/stats")["token_requests"]["refresh_token"]
    assert stats == {"ok": 2, "failed": 2}


def test_no_token_code_or_secret_in_logs_metrics_or_errors(
    start_sandbox: Callable[..., SandboxServer],
    make_provider: Callable[..., WithingsProvider],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sb = start_sandbox()
    provider = make_provider(sb)
    code = sb.code(sb.new_user(history_days=1))
    tokens = provider.exchange_code(code, REDIRECT_URI, None)
    assert tokens.refresh_token is not None
    rotated = provider.refresh(tokens.refresh_token)
    sb.call("/v2/user", rotated.access_token, action="getdevice")
    messages = []
    for attempt in (
        lambda: provider.exchange_code(code, REDIRECT_URI, None),
        lambda: provider.refresh(tokens.refresh_token or ""),
    ):
        with pytest.raises(AuthError) as caught:
            attempt()
        messages.append(str(caught.value))
    secrets = [code, CLIENT_SECRET, tokens.access_token, tokens.refresh_token, rotated.access_token]
    secrets.append(rotated.refresh_token or "")
    logged = caplog.text + "".join(str(vars(r)) for r in caplog.records)
    exported = generate_latest(REGISTRY).decode()
    for secret in secrets:
        assert secret not in logged
        assert secret not in exported
        assert all(secret not in m for m in messages)
