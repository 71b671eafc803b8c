"""Coordination primitives shared by every process: locks, rate windows, dedup keys, counters.

Production keeps them in Redis so any number of web and worker processes on any number of hosts
agree (one token refresh per link, one shared provider rate limit, one breaker state). The
embedded default (`make run`) has no Redis: a single worker process runs every task, so an
in-process implementation with the same interface is enough there. The same code calls both;
only settings choose. Tests run the Redis implementation against the real Redis.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import pybreaker
import redis

PREFIX = "ohe:"


class LockNotAcquired(RuntimeError):
    """Another process holds the lock longer than we were willing to wait."""


class Coordination(ABC):
    """The interface; see the two implementations below."""

    backend: str

    @abstractmethod
    @contextmanager
    def lock(self, name: str, *, ttl: float, wait: float) -> Iterator[None]:
        """Hold ``name`` exclusively; raise :class:`LockNotAcquired` after ``wait`` seconds.

        ``ttl`` bounds how long a crashed holder can block others.
        """

    @abstractmethod
    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set ``key`` only if absent (dedup, single-use nonces); True if this call set it."""

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def put(self, key: str, value: bytes, ttl: float) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def incr(self, key: str, ttl: float) -> int:
        """Increment a counter that expires ``ttl`` seconds after its first increment."""

    @abstractmethod
    def acquire_rate(self, key: str, limit: int, window: float) -> float:
        """Take one call from a sliding window shared by all processes.

        Returns 0.0 when the call may proceed now, else the seconds until a slot frees up (the
        call was not counted). A sliding-window log is exact for "N calls per rolling window",
        which is how providers count; a token bucket with burst capacity can exceed it.
        """

    @abstractmethod
    def ping(self) -> None:
        """Raise if the backend is unreachable."""

    @abstractmethod
    def breaker_storage(self, name: str) -> pybreaker.CircuitBreakerStorage: ...

    def connection_count(self) -> int | None:
        """Connected clients of the backing server (None when there is none)."""
        return None


class MemoryCoordination(Coordination):
    """In-process implementation for the embedded single-worker default and unit tests."""

    backend = "memory"

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._values: dict[str, tuple[bytes, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._windows: dict[str, deque[float]] = {}
        self._breakers: dict[str, pybreaker.CircuitMemoryStorage] = {}

    def _alive(self, key: str, now: float) -> bytes | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._values[key]
            return None
        return item[0]

    @contextmanager
    def lock(self, name: str, *, ttl: float, wait: float) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        if not lock.acquire(timeout=wait):
            raise LockNotAcquired(name)
        try:
            yield
        finally:
            lock.release()

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        now = time.monotonic()
        with self._guard:
            if self._alive(key, now) is not None:
                return False
            self._values[key] = (value, now + ttl)
            return True

    def get(self, key: str) -> bytes | None:
        with self._guard:
            return self._alive(key, time.monotonic())

    def put(self, key: str, value: bytes, ttl: float) -> None:
        with self._guard:
            self._values[key] = (value, time.monotonic() + ttl)

    def delete(self, key: str) -> None:
        with self._guard:
            self._values.pop(key, None)

    def incr(self, key: str, ttl: float) -> int:
        now = time.monotonic()
        with self._guard:
            current = self._alive(key, now)
            expires = self._values[key][1] if current is not None else now + ttl
            value = int(current or b"0") + 1
            self._values[key] = (str(value).encode(), expires)
            return value

    def acquire_rate(self, key: str, limit: int, window: float) -> float:
        now = time.monotonic()
        with self._guard:
            calls = self._windows.setdefault(key, deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) < limit:
                calls.append(now)
                return 0.0
            return max(calls[0] + window - now, 0.001)

    def ping(self) -> None:
        return None

    def breaker_storage(self, name: str) -> pybreaker.CircuitBreakerStorage:
        with self._guard:
            return self._breakers.setdefault(
                name, pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
            )


# Sliding-window log in one atomic step, on the Redis server's clock so hosts need not agree.
_RATE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(math.max(tonumber(oldest[2]) + window - now, 0.001))
"""

_INCR_SCRIPT = """
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
"""


class RedisCoordination(Coordination):
    """Redis implementation: what every production process shares."""

    backend = "redis"

    def __init__(self, url: str) -> None:
        # One bytes client (pybreaker's storage decodes bytes itself and breaks on str).
        self.client = redis.Redis.from_url(
            url,
            socket_keepalive=True,
            socket_timeout=5,
            socket_connect_timeout=5,
            health_check_interval=30,
            retry_on_timeout=True,
        )
        self._rate = self.client.register_script(_RATE_SCRIPT)
        self._incr = self.client.register_script(_INCR_SCRIPT)

    @contextmanager
    def lock(self, name: str, *, ttl: float, wait: float) -> Iterator[None]:
        lock = self.client.lock(PREFIX + "lock:" + name, timeout=ttl, blocking_timeout=wait)
        if not lock.acquire():
            raise LockNotAcquired(name)
        try:
            yield
        finally:
            # LockError: the ttl ran out while we held it; the work is idempotent, nothing to undo.
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return bool(self.client.set(PREFIX + key, value, nx=True, px=max(int(ttl * 1000), 1)))

    def get(self, key: str) -> bytes | None:
        return self.client.get(PREFIX + key)

    def put(self, key: str, value: bytes, ttl: float) -> None:
        self.client.set(PREFIX + key, value, px=max(int(ttl * 1000), 1))

    def delete(self, key: str) -> None:
        self.client.delete(PREFIX + key)

    def incr(self, key: str, ttl: float) -> int:
        return int(self._incr(keys=[PREFIX + key], args=[max(int(ttl * 1000), 1)]))

    def acquire_rate(self, key: str, limit: int, window: float) -> float:
        member = uuid.uuid4().hex
        return float(self._rate(keys=[PREFIX + "rate:" + key], args=[limit, window, member]))

    def ping(self) -> None:
        self.client.ping()

    def breaker_storage(self, name: str) -> pybreaker.CircuitBreakerStorage:
        return pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED,
            self.client,
            namespace=PREFIX + "breaker:" + name,
            fallback_circuit_state=pybreaker.STATE_CLOSED,
        )

    def connection_count(self) -> int | None:
        return int(self.client.info("clients")["connected_clients"])


def build_coordination(redis_url: str | None) -> Coordination:
    return RedisCoordination(redis_url) if redis_url else MemoryCoordination()
