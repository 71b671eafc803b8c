"""Fixtures for the Withings provider: a real sandbox over HTTP, real Redis, real breakers.

Sandbox tests build the provider exactly as the app does (settings, Redis coordination, the
``withings_api`` breaker from the registry) against an in-process Withings sandbox on a free
port. They use their own Redis database (flushed around each test) so the shared rate-limit
window and the breaker state of one test never leak into the next; the tests that need the
app's database use the root ``app`` fixture instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ohe.coordination import MemoryCoordination, RedisCoordination
from ohe.providers.base import TokenSet
from ohe.providers.withings import WithingsProvider
from ohe.resilience.breakers import BreakerRegistry
from ohe.settings import Settings
from tests.conftest import REDIS_DB, REDIS_URL
from tests.helpers import TEST_SECRET_KEY
from tests.sandbox.withings_fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    SandboxServer,
)

PROVIDER_REDIS_DB = (REDIS_DB + 1) % 16  # not the app fixture's: these tests flush it freely
UNLIMITED = 100_000  # calls per window, for tests that are not about the rate limit


def provider_settings(data_dir: Path, api_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "secret_key": TEST_SECRET_KEY,
        "withings_api_url": api_url,
        "withings_authorize_url": f"{api_url}/oauth2_user/authorize2",
        "withings_client_id": CLIENT_ID,
        "withings_client_secret": CLIENT_SECRET,
        "withings_rate_limit": UNLIMITED,
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


@pytest.fixture
def coordination() -> Iterator[RedisCoordination]:
    coord = RedisCoordination(f"{REDIS_URL}/{PROVIDER_REDIS_DB}")
    coord.client.flushdb()
    yield coord
    coord.client.flushdb()
    coord.client.close()


@pytest.fixture
def offline_provider(tmp_path: Path) -> WithingsProvider:
    """For pure functions (parse, planning, webhooks): no network is ever touched."""
    settings = provider_settings(tmp_path, "http://127.0.0.1:9")
    coord = MemoryCoordination()
    return WithingsProvider(
        settings, coord, BreakerRegistry(settings, coord).get_breaker("withings_api")
    )


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start a sandbox with ``SandboxConfig`` overrides (default: no effective rate limit)."""
    running: list[SandboxServer] = []

    def start(**overrides: Any) -> SandboxServer:
        running.append(SandboxServer(**{"rate_limit": UNLIMITED, **overrides}))
        return running[-1]

    yield start
    for sb in running:
        sb.close()


@pytest.fixture
def make_provider(
    coordination: RedisCoordination, tmp_path: Path
) -> Callable[..., WithingsProvider]:
    """A provider wired like the app's, pointed at ``sb``; keywords override settings."""

    def make(sb: SandboxServer, **overrides: Any) -> WithingsProvider:
        settings = provider_settings(tmp_path / "var", sb.url, **overrides)
        breakers = BreakerRegistry(settings, coordination)
        return WithingsProvider(settings, coordination, breakers.get_breaker("withings_api"))

    return make


class MemoryTokens:
    """A ``TokenSource`` kept in memory for tests without a database (LinkTokens needs one).

    Same contract as the real one: ``refreshed`` refreshes once per rejected token, under a
    lock, and hands every caller the new access token.
    """

    def __init__(self, provider: WithingsProvider, tokens: TokenSet) -> None:
        self.provider = provider
        self.tokens = tokens
        self.refreshes = 0
        self._lock = threading.Lock()

    def current(self) -> str:
        return self.tokens.access_token

    def refreshed(self, rejected: str) -> str:
        with self._lock:
            if self.tokens.access_token == rejected:
                assert self.tokens.refresh_token is not None
                self.tokens = self.provider.refresh(self.tokens.refresh_token)
                self.refreshes += 1
            return self.tokens.access_token


@dataclass
class Linked:
    """A sandbox user linked through the real OAuth exchange."""

    sb: SandboxServer
    provider: WithingsProvider
    userid: int
    tokens: MemoryTokens
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def session(self) -> Any:
        return self.provider.session(self.tokens)


@pytest.fixture
def link(
    start_sandbox: Callable[..., SandboxServer], make_provider: Callable[..., WithingsProvider]
) -> Callable[..., Linked]:
    """``link(history_days=..., timezone=..., sandbox={...}, **settings)`` → a linked user."""

    def make(
        history_days: int = 30,
        timezone: str | None = None,
        sandbox: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Linked:
        sb = start_sandbox(**(sandbox or {}))
        provider = make_provider(sb, **settings)
        userid = sb.new_user(history_days=history_days, timezone=timezone)
        tokens = provider.exchange_code(sb.code(userid), REDIRECT_URI, None)
        return Linked(sb, provider, userid, MemoryTokens(provider, tokens))

    return make
