"""The ``intraday`` stream: ``getintradayactivity`` heart rate and steps → hourly series (§1.7).

Withings returns at most 24 h per call (a longer window is silently truncated), so a request
is walked in windows of 24 h: ``first_request`` covers ``[start, start + 24 h)`` and each
``next_request`` the following window, up to the requested end. Windows start on a UTC hour:
an hour never straddles two pages, so the hour's resource is always built from all of its
points (a later partial page would otherwise overwrite it). Incremental syncs restart one hour
before the end of the previous run (its cursor), so an hour uploaded a little late is
completed on the next sync; later uploads arrive with an appli-16 webhook and its window.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any

from ohe.providers.base import FetchRequest, FetchResult
from ohe.providers.withings import paging
from ohe.providers.withings.values import MALFORMED, Skips, device, instant, number, virtual
from ohe.samples import DeviceRef, Sample, group_hourly

PATH, ACTION = "/v2/measure", "getintradayactivity"
HOUR = 3600
WINDOW = 24 * HOUR
OVERLAP = HOUR
MAX_BACKFILL_DAYS = 7

#: Withings field → (sample data type, identifier prefix, smallest meaningful value).
SERIES: dict[str, tuple[str, str, Decimal]] = {
    "heart_rate": ("heart_rate_intraday", "heart_rate", Decimal(1)),  # 0 = no reading
    "steps": ("steps_interval", "steps", Decimal(0)),
}
DATA_TYPES = frozenset(data_type for data_type, _, _ in SERIES.values())


def plan(p: paging.Plan) -> FetchRequest:
    oldest = p.end - MAX_BACKFILL_DAYS * 86400
    if p.cursor is not None:
        start = max(p.cursor - OVERLAP, oldest)
    else:
        start = max(p.start if p.start is not None else oldest, oldest)
    start -= start % HOUR
    cursor = str(p.cursor) if p.cursor is not None else None
    return FetchRequest(p.stream, start=start, end=p.end, cursor=cursor)


def fetch(call: paging.Call, request: FetchRequest) -> FetchResult:
    start, end = request.start or 0, request.end if request.end is not None else 0
    if start > end:  # a cursor ahead of our clock: nothing to ask yet
        return FetchResult({"series": {}}, 0, None, paging.next_cursor(request, end))
    last = min(start + WINDOW - 1, end)
    body = call(
        PATH, ACTION, {"startdate": start, "enddate": last, "data_fields": ",".join(SERIES)}
    )
    series = body.get("series")
    series = series if isinstance(series, dict) else {}  # an empty answer may be a JSON list
    following = start + WINDOW
    return FetchResult(
        payload={"series": series},
        records=len(series),
        next_request=dataclasses.replace(request, start=following) if following < end else None,
        next_cursor=paging.next_cursor(request, end),  # the run looked up to its planned end
    )


def parse(request: FetchRequest, payload: dict[str, Any]) -> list[Sample]:
    skips = Skips(request.stream)
    points: dict[str, list[tuple[datetime, Decimal]]] = {field: [] for field in SERIES}
    devices: set[tuple[Any, Any, Any]] = set()
    for key, item in (payload.get("series") or {}).items():
        try:
            if virtual(item.get("model_id")):
                skips.add("virtual_source")
                continue
            when = instant(_int(key))
            for field, (_, _, smallest) in SERIES.items():
                if item.get(field) is not None and (value := number(item[field])) >= smallest:
                    points[field].append((when, value))
            devices.add((item.get("deviceid"), item.get("model"), item.get("model_id")))
        except MALFORMED:
            skips.add("malformed")
    # One device for the page, or none when several contributed (a resource has one device).
    dev: DeviceRef | None = device(*next(iter(devices))) if len(devices) == 1 else None
    samples = []
    for field, (data_type, prefix, _) in SERIES.items():
        samples += group_hourly(data_type, points[field], source_prefix=prefix, device=dev)
    skips.log()
    return samples


def _int(key: Any) -> int | None:
    try:
        return int(key)
    except (TypeError, ValueError):
        return None
