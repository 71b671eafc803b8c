"""Both coordination backends keep the same promises (Redis against the real Redis)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pybreaker
import pytest
import redis as redis_lib

from ohe.coordination import (
    Coordination,
    LockNotAcquired,
    MemoryCoordination,
    RedisCoordination,
)


@pytest.fixture(params=["memory", "redis"])
def coordination(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Coordination]:
    if request.param == "memory":
        yield MemoryCoordination()
        return
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    yield RedisCoordination(redis_url)
    client.flushdb()


def test_lock_is_exclusive_and_times_out(coordination: Coordination) -> None:
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with coordination.lock("refresh:link:1", ttl=10, wait=1):
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert entered.wait(5)
    started = time.monotonic()
    with pytest.raises(LockNotAcquired), coordination.lock("refresh:link:1", ttl=10, wait=0.3):
        pass
    assert time.monotonic() - started >= 0.15  # it waited instead of failing at once
    with coordination.lock("refresh:link:2", ttl=10, wait=0.1):
        pass  # another name is free
    release.set()
    thread.join()
    with coordination.lock("refresh:link:1", ttl=10, wait=1):
        pass


def test_add_sets_only_once_until_expiry(coordination: Coordination) -> None:
    assert coordination.add("nonce:a", b"1", ttl=0.3) is True
    assert coordination.add("nonce:a", b"2", ttl=0.3) is False
    assert coordination.get("nonce:a") == b"1"
    time.sleep(0.4)
    assert coordination.get("nonce:a") is None
    assert coordination.add("nonce:a", b"3", ttl=1) is True


def test_put_get_delete_and_incr(coordination: Coordination) -> None:
    coordination.put("page:1", b"x" * 1000, ttl=5)
    assert coordination.get("page:1") == b"x" * 1000
    coordination.delete("page:1")
    assert coordination.get("page:1") is None
    assert [coordination.incr("deliveries:t", ttl=0.3) for _ in range(3)] == [1, 2, 3]
    time.sleep(0.4)
    assert coordination.incr("deliveries:t", ttl=1) == 1


def test_rate_window_admits_exactly_the_limit_then_frees_slots(coordination: Coordination) -> None:
    results = [coordination.acquire_rate("withings", limit=5, window=0.5) for _ in range(8)]
    assert results[:5] == [0.0] * 5
    assert all(0 < wait <= 0.5 for wait in results[5:])
    time.sleep(max(results[5:]) + 0.02)
    assert coordination.acquire_rate("withings", limit=5, window=0.5) == 0.0


def test_rate_window_is_shared_between_instances(redis_url: str) -> None:
    redis_lib.Redis.from_url(redis_url).flushdb()
    first, second = RedisCoordination(redis_url), RedisCoordination(redis_url)
    admitted = sum(
        c.acquire_rate("shared", limit=10, window=5) == 0.0 for c in [first, second] * 10
    )
    assert admitted == 10


def test_breaker_storage_is_shared_through_redis(redis_url: str) -> None:
    redis_lib.Redis.from_url(redis_url).flushdb()
    one = pybreaker.CircuitBreaker(
        fail_max=1,
        reset_timeout=60,
        state_storage=RedisCoordination(redis_url).breaker_storage("x"),
    )
    other = pybreaker.CircuitBreaker(
        fail_max=1,
        reset_timeout=60,
        state_storage=RedisCoordination(redis_url).breaker_storage("x"),
    )
    with pytest.raises(pybreaker.CircuitBreakerError):
        one.call(_fail)
    assert other.current_state == "open"


def _fail() -> None:
    raise RuntimeError("upstream down")
