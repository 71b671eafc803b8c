"""The ``activity`` stream: ``POST /v2/measure action=getactivity`` → daily totals (§1.7).

A day's row is a running total that keeps changing until the day is over; its natural key is
the *local* date plus the field, so a later sync overwrites the same resource (never adds).
The day boundary is the zone of the row itself (users travel). Rows imported from other
ecosystems (``brand`` 18, virtual model ids) are skipped.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ohe.providers.base import FetchRequest, FetchResult
from ohe.providers.withings import paging
from ohe.providers.withings.values import EXTERNAL_BRAND, Skips, device, number, virtual
from ohe.samples import Sample, local_day

PATH, ACTION = "/v2/measure", "getactivity"
OVERLAP = 300
RECORD_KIND = "activity-day"

#: Withings field → sample data type (units already match the codes table).
FIELDS: dict[str, str] = {
    "steps": "steps_daily",
    "distance": "distance_daily",  # metres
    "calories": "calories_active_daily",  # active kcal (not totalcalories)
    "elevation": "floors_daily",  # floors climbed
}
DATA_TYPES = frozenset(FIELDS.values())


def plan(p: paging.Plan) -> FetchRequest:
    if p.cursor is not None:  # ``end`` (plan time) becomes the next cursor: see paging
        return FetchRequest(p.stream, cursor=str(p.cursor), end=p.end)
    return FetchRequest(p.stream, start=p.start, end=p.end)


def params(request: FetchRequest) -> dict[str, Any]:
    return {"data_fields": ",".join(FIELDS), **paging.window_or_lastupdate(request, OVERLAP)}


def fetch(call: paging.Call, request: FetchRequest) -> FetchResult:
    return paging.fetch_dated(call, request, PATH, ACTION, params(request), key="activities")


def parse(request: FetchRequest, payload: dict[str, Any]) -> list[Sample]:
    skips = Skips(request.stream)
    samples = skips.guarded(payload.get("activities") or [], lambda row: _row(row, skips))
    skips.log()
    return samples


def _row(row: dict[str, Any], skips: Skips) -> list[Sample]:
    if row.get("brand") == EXTERNAL_BRAND or virtual(row.get("modelid")):
        skips.add("virtual_source")
        return []
    day = date.fromisoformat(row["date"])
    start, end = local_day(day, _zone_name(row.get("timezone"), skips))
    dev = device(
        row.get("deviceid") or row.get("hash_deviceid"), row.get("model"), row.get("modelid")
    )
    samples = []
    for field, data_type in FIELDS.items():
        if row.get(field) is None:
            continue
        value = number(row[field])
        if value < 0:
            skips.add("negative_value")
            continue
        samples.append(
            Sample(
                data_type,
                RECORD_KIND,
                f"{day.isoformat()}:{field}",
                effective_start=start,
                effective_end=end,
                value=value,
                device=dev,
            )
        )
    return samples


def _zone_name(name: Any, skips: Skips) -> str:
    """The row's IANA zone; UTC (counted) when it is missing or unknown."""
    if isinstance(name, str) and name:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return name
    skips.add("unknown_zone_used_utc")
    return "UTC"
