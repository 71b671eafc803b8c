"""Correlation context carried from a request into the tasks it enqueues, and into log lines.

A ``contextvars`` variable holds the request id and the operation's log fields (user, provider,
operation). The web layer sets it per request; the task base sets it from the message headers,
so a webhook's request id appears on every log line of the sync it caused.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_REQUEST_ID_FORMAT = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_request_id: ContextVar[str | None] = ContextVar("ohe_request_id", default=None)
_fields: ContextVar[dict[str, Any]] = ContextVar("ohe_log_fields", default={})  # noqa: B039

HEADER = "ohe_request_id"


def accept_request_id(candidate: str | None) -> str:
    """The caller's X-Request-ID if it is a sane token, else a fresh one (never echo junk)."""
    if candidate and _REQUEST_ID_FORMAT.match(candidate):
        return candidate
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> Any:
    return _request_id.set(value)


def reset_request_id(token: Any) -> None:
    _request_id.reset(token)


def log_fields() -> dict[str, Any]:
    return _fields.get()


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add log fields (user_id, provider, operation, ...) for the duration of a block."""
    token = _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


_rate_waits: ContextVar[list[int] | None] = ContextVar("ohe_rate_waits", default=None)


@contextmanager
def counting_rate_waits() -> Iterator[list[int]]:
    """Count the rate-limit waits of the calls made inside the block (per sync page)."""
    counter = [0]
    token = _rate_waits.set(counter)
    try:
        yield counter
    finally:
        _rate_waits.reset(token)


def rate_wait() -> None:
    counter = _rate_waits.get()
    if counter is not None:
        counter[0] += 1


#: Rate-limit lanes, most urgent first. ``live``: webhook-driven fetches (a patient's fresh
#: measurement) and the code exchange (a patient's browser waits): the whole limit; ``setup``:
#: subscriptions of new links, all but a reserve kept for live; ``bulk``: backfills and polls,
#: ``OHE_BULK_RATE_SHARE`` of the limit.
LIVE, SETUP, BULK = "live", "setup", "bulk"
_lane: ContextVar[str] = ContextVar("ohe_rate_lane", default=BULK)
_patience: ContextVar[float | None] = ContextVar("ohe_rate_patience", default=None)


@contextmanager
def rate_lane(lane: str, *, patience: float | None = None) -> Iterator[None]:
    """Provider calls made in the block take their rate-limit slot in ``lane``.

    ``patience``: how long a call may wait for a slot before failing, when someone is waiting
    on it and a retry later is no use (the OAuth code exchange: the patient's browser waits,
    and the code dies in 30 s). Default: the limiter's own.
    """
    tokens = _lane.set(lane), _patience.set(patience)
    try:
        yield
    finally:
        _patience.reset(tokens[1])
        _lane.reset(tokens[0])


def current_lane() -> str:
    return _lane.get()


def rate_patience() -> float | None:
    return _patience.get()
