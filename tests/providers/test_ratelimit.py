"""The shared rate limit keeps room for live work however big the bulk work is."""

from __future__ import annotations

import pytest

from ohe.coordination import MemoryCoordination
from ohe.observability.context import LIVE, SETUP, rate_lane
from ohe.providers.ratelimit import SharedRateLimit
from ohe.resilience.errors import RateLimitError
from ohe.resilience.retry import APIClientConfig, turn_after


def test_bulk_work_leaves_the_reserved_share_to_live_work() -> None:
    limit = SharedRateLimit(
        MemoryCoordination(), "withings", APIClientConfig(10, 60), max_wait=0.1, bulk_share=0.6
    )
    for _ in range(6):
        assert limit.acquire() == 0.0
    with pytest.raises(RateLimitError) as waited:
        limit.acquire()  # bulk: its 60 % are used up
    assert 0 < waited.value.retry_after <= 60
    with rate_lane(LIVE):
        for _ in range(4):
            assert limit.acquire() == 0.0  # live: the reserved 40 % are there
        with pytest.raises(RateLimitError):
            limit.acquire()  # and the whole window is never exceeded


def test_linking_new_patients_cannot_take_the_last_slots_from_webhook_fetches() -> None:
    """Twenty patients linking at once make ~100 setup calls (subscriptions):
    they queue behind each other, not in front of a fresh measurement's fetch."""
    limit = SharedRateLimit(
        MemoryCoordination(), "withings", APIClientConfig(10, 60), max_wait=0.1, bulk_share=0.6
    )
    with rate_lane(SETUP):
        for _ in range(8):  # halfway between bulk (6) and the whole window (10)
            assert limit.acquire() == 0.0
        with pytest.raises(RateLimitError):
            limit.acquire()
    with rate_lane(LIVE):
        assert limit.acquire() == limit.acquire() == 0.0


def test_a_waiting_human_gets_more_patience_than_a_task() -> None:
    """A task fails fast and retries later; the code exchange (a browser waits, the code dies
    in 30 s) waits for the next free slot instead."""
    limit = SharedRateLimit(
        MemoryCoordination(), "withings", APIClientConfig(1, 0.5), max_wait=0.05
    )
    assert limit.acquire() == 0.0
    with pytest.raises(RateLimitError):
        limit.acquire()
    with rate_lane(LIVE, patience=2.0):
        assert 0 < limit.acquire() <= 2.0


def test_a_rate_limited_call_returns_after_the_hint_plus_jitter() -> None:
    """Waiting one's turn honours the limiter's hint, else the default, and spreads waiters."""
    hinted = RateLimitError("busy", retry_after=12.0)
    assert all(12.0 <= turn_after(hinted, 5.0, 2.0) <= 14.0 for _ in range(50))
    unhinted = RateLimitError("busy")
    waits = {turn_after(unhinted, 30.0, 5.0) for _ in range(50)}
    assert all(30.0 <= w <= 35.0 for w in waits) and len(waits) > 1
