"""What every stream shares: the plan of a first page, offset paging and cursor positions.

Cursors are unix seconds as strings. The orchestrator stores the ``next_cursor`` of a run's
*first* page once every page is written, so each page reports a position valid for the whole
run, known before the later pages are read:

- ``measures``: Withings' ``updatetime`` (server time when the page was read);
- ``activity``, ``sleep``, ``intraday``: the run's planned end (``FetchRequest.end``, the
  orchestrator's "now" when it planned the run) - their rows are date-ordered, so no single
  page knows the latest ``modified``; the overlap re-read absorbs clock differences;
- ``ecg``: the newest recording's ``timestamp`` (the list is newest-first).

An incremental request never moves its cursor backwards. A window request reports
``min(position, window end, now)``: a window says nothing about changes after its end (and a
webhook window may end tomorrow at midnight), so it cannot push the stored cursor into the
future. It can still move it forward over changes outside the window: the orchestrator should
take a window run's cursor only when the stream has none yet (the link's first backfill). A
page without any position keeps the request's cursor (None for a window).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ohe.providers.base import FetchRequest, FetchResult

log = logging.getLogger(__name__)

DAY = 86400

#: One authenticated Withings call: (path, action, params) → the envelope's ``body``.
Call = Callable[[str, str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Plan:
    """``first_request``'s arguments in unix seconds; ``end`` is always set (default: now)."""

    stream: str
    cursor: int | None
    start: int | None
    end: int


def unix(value: str | int) -> int:
    """A cursor or page position as whole unix seconds (a malformed one is a caller bug)."""
    try:
        return int(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a unix-seconds position: {value!r}") from None


def since(request: FetchRequest, overlap: int) -> int:
    """``lastupdate``/``startdate`` of an incremental request: the cursor minus an overlap.

    Boundary inclusivity is undocumented and servers' clocks differ by a little; re-reading
    a few minutes is free (every write is idempotent), missing a change is not.
    """
    return max(unix(request.cursor or 0) - overlap, 0)


def ymd_window(request: FetchRequest) -> dict[str, str]:
    """``startdateymd``/``enddateymd`` covering [start, end] in *any* user time zone.

    Days are the user's local days but the zone is not known before the first answer; every
    zone is within a day of UTC, so the UTC dates widened by one day on each side cover it.
    """
    start = datetime.fromtimestamp(request.start or 0, UTC) - timedelta(days=1)
    end = datetime.fromtimestamp(request.end or request.start or 0, UTC) + timedelta(days=1)
    return {"startdateymd": start.date().isoformat(), "enddateymd": end.date().isoformat()}


def window_or_lastupdate(request: FetchRequest, overlap: int) -> dict[str, Any]:
    """``lastupdate`` or a date window, never both (Withings rejects the mix), and the offset."""
    query: dict[str, Any] = {"offset": page_offset(request) or None}
    if request.cursor is not None:
        query["lastupdate"] = since(request, overlap)
    else:
        query.update(ymd_window(request))
    return query


def fetch_dated(
    call: Call, request: FetchRequest, path: str, action: str, query: dict[str, Any], *, key: str
) -> FetchResult:
    """One offset page of date-ordered rows (``activities``, ``series``) under ``key``."""
    body = call(path, action, query)
    rows = body.get(key) or []
    position = planned_position(request, [r.get("modified") for r in rows])
    return FetchResult(
        payload=body,
        records=len(rows),
        next_request=next_offset_page(request, body),
        next_cursor=next_cursor(request, position),
    )


def page_offset(request: FetchRequest) -> int:
    return unix(request.page) if request.page else 0


def next_offset_page(request: FetchRequest, body: dict[str, Any]) -> FetchRequest | None:
    """The same query at the next ``offset`` while ``more`` is set (int 0/1 or boolean)."""
    more, offset = body.get("more"), body.get("offset")
    if not more:
        return None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset <= page_offset(request):
        log.warning(
            "Withings said more=%s without a forward offset; paging stopped",
            more,
            extra={"operation": "fetch", "provider": "withings", "stream": request.stream},
        )
        return None
    return dataclasses.replace(request, page=str(offset))


def next_cursor(request: FetchRequest, position: int | None) -> str | None:
    """The cursor to store once the run is written (see the module docstring)."""
    if request.cursor is not None:
        current = unix(request.cursor)
        return str(max(current, position)) if position is not None else str(current)
    if position is None:
        return None
    # never past the window's end, nor past now (a webhook window may end tomorrow midnight)
    ceiling = min(request.end, int(time.time())) if request.end is not None else int(time.time())
    return str(min(position, ceiling))


def planned_position(request: FetchRequest, modified: list[Any]) -> int | None:
    """The run's planned end; the latest ``modified`` only for a request planned elsewhere."""
    return request.end if request.end is not None else latest(modified)


def latest(values: list[Any]) -> int | None:
    """The largest integer among ``values`` (ignoring anything that is not one)."""
    numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return max(numbers) if numbers else None
