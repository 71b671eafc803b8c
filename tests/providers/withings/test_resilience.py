"""Failures against real servers: 601, outages and the breaker, status groups, HTTP errors, the
shared rate limit across threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ohe.coordination import RedisCoordination
from ohe.providers.base import FetchRequest
from ohe.providers.withings import WithingsProvider
from ohe.resilience.breakers import BreakerRegistry
from ohe.resilience.errors import (
    ApiError,
    CircuitOpenError,
    NetworkError,
    RateLimitError,
    ValidationError,
)
from tests.helpers import free_port
from tests.providers.withings.conftest import Linked, MemoryTokens, provider_settings
from tests.sandbox.withings_fixtures import REDIRECT_URI, SandboxServer

MEASURES = FetchRequest("measures", cursor="0")


def errors(error_type: str) -> float:
    value = REGISTRY.get_sample_value(
        "ohe_provider_api_errors_total", {"provider": "withings", "error_type": error_type}
    )
    return value or 0.0


def calls(endpoint: str, outcome: str) -> float:
    labels = {"provider": "withings", "endpoint": endpoint, "outcome": outcome}
    return REGISTRY.get_sample_value("ohe_provider_api_calls_total", labels) or 0.0


def test_status_601_is_a_rate_limit_error_with_a_minute_to_wait(
    link: Callable[..., Linked],
) -> None:
    # The sandbox allows 3 calls a minute; our own limiter is set far higher, so the third
    # data call reaches Withings and is refused there (the code exchange was call 1).
    linked = link(history_days=2, sandbox={"rate_limit": 3})
    before, limited_before = (
        errors("rate_limit_error"),
        calls("measure.getmeas", "rate_limit_error"),
    )
    linked.session.fetch(MEASURES)
    linked.session.fetch(MEASURES)
    with pytest.raises(RateLimitError) as caught:
        linked.session.fetch(MEASURES)
    assert caught.value.retry_after == 60.0
    assert "status 601 (too many requests)" in str(caught.value)
    assert errors("rate_limit_error") == before + 1
    assert calls("measure.getmeas", "rate_limit_error") == limited_before + 1
    assert linked.sb.admin("GET", "/stats")["rate_limited"] == 1


def test_an_outage_opens_the_breaker_after_three_failures(link: Callable[..., Linked]) -> None:
    linked = link(history_days=2)
    breaker = linked.provider.api.breaker
    linked.sb.admin("POST", "/faults", {"outage": True})
    for _ in range(3):
        with pytest.raises(ApiError, match="HTTP 503"):
            linked.session.fetch(MEASURES)
    assert breaker.state == "open"
    short = calls("measure.getmeas", "circuit_breaker")
    with pytest.raises(CircuitOpenError) as caught:
        linked.session.fetch(MEASURES)
    assert caught.value.retryable and caught.value.retry_after == 30
    assert calls("measure.getmeas", "circuit_breaker") == short + 1
    linked.sb.admin("DELETE", "/faults")
    with pytest.raises(CircuitOpenError):  # open until the reset timeout, outage or not
        linked.session.fetch(MEASURES)


@pytest.mark.parametrize(
    "case",
    [
        (522, ApiError, True, True),
        (524, ApiError, True, True),
        (2554, ValidationError, False, False),
        (503, ValidationError, False, False),
        (4242, ApiError, True, True),
    ],
)
def test_status_groups_become_error_classes(
    link: Callable[..., Linked],
    caplog: pytest.LogCaptureFixture,
    case: tuple[int, type[Exception], bool, bool],
) -> None:
    status, error, retryable, counts_for_breaker = case
    caplog.set_level(logging.INFO, logger="ohe.providers.withings")
    linked = link(history_days=1)
    linked.sb.admin("POST", "/faults", {"status": status, "rate": 1.0})
    with pytest.raises(error) as caught:
        linked.session.fetch(MEASURES)
    assert caught.value.retryable is retryable  # type: ignore[attr-defined]
    assert f"status {status}" in str(caught.value)
    assert linked.provider.api.breaker.info()["failure_count"] == int(counts_for_breaker)
    unknown = [r for r in caplog.records if "no known group" in r.getMessage()]
    assert bool(unknown) is (status == 4242)


@contextmanager
def answering(status: int, body: bytes, headers: dict[str, str]) -> Iterator[str]:
    """A tiny HTTP server that answers every POST the same way (a misbehaving gateway)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    "case",
    [
        (429, b"", {"Retry-After": "7"}, RateLimitError, 7.0),
        (429, b"", {}, RateLimitError, 60.0),
        (502, b"bad gateway", {}, ApiError, None),
        (200, b"<html>maintenance</html>", {}, ApiError, None),
    ],
)
def test_http_level_failures(
    coordination: RedisCoordination,
    tmp_path: Path,
    case: tuple[int, bytes, dict[str, str], type[Exception], float | None],
) -> None:
    status, body, headers, error, retry_after = case
    with answering(status, body, headers) as url:
        settings = provider_settings(tmp_path, url)
        breaker = BreakerRegistry(settings, coordination).get_breaker("withings_api")
        provider = WithingsProvider(settings, coordination, breaker)
        with pytest.raises(error) as caught:
            provider.refresh("r")
    assert getattr(caught.value, "retry_after", None) == retry_after


def test_an_unreachable_withings_is_a_network_error(
    coordination: RedisCoordination, tmp_path: Path
) -> None:
    settings = provider_settings(tmp_path, f"http://127.0.0.1:{free_port()}")
    breaker = BreakerRegistry(settings, coordination).get_breaker("withings_api")
    with pytest.raises(NetworkError, match="unreachable") as caught:
        WithingsProvider(settings, coordination, breaker).refresh("r")
    assert caught.value.retryable
    assert breaker.info()["failure_count"] == 1


def test_two_sessions_in_two_threads_share_one_rate_limit(
    start_sandbox: Callable[..., SandboxServer],
    make_provider: Callable[..., WithingsProvider],
) -> None:
    limit, window, per_thread = 20, 1.0, 20
    sb = start_sandbox(rate_limit=limit, rate_window=window)
    provider = make_provider(sb, withings_rate_limit=limit, withings_rate_window=window)
    sessions = []
    for _ in range(2):
        tokens = provider.exchange_code(sb.code(sb.new_user(history_days=0)), REDIRECT_URI, None)
        sessions.append(provider.session(MemoryTokens(provider, tokens)))
    sb.admin("POST", "/stats/reset")
    failures: list[BaseException] = []

    def hammer(session: object) -> None:
        try:
            for _ in range(per_thread):
                session.devices()  # type: ignore[attr-defined]
        except BaseException as exc:
            failures.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=hammer, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    assert failures == []
    stats = sb.admin("GET", "/stats")
    assert stats["calls"]["by_action"] == {"/v2/user getdevice": 2 * per_thread}
    assert stats["rate_limited"] == 0  # no 601: our limiter kept every call inside the window
    assert stats["max_calls_in_window"] <= limit
    assert elapsed >= window  # 2 + 40 calls cannot fit in one window: the limiter waited
