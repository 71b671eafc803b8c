"""The ``sleep`` stream: ``POST /v2/sleep action=getsummary`` → one sample per night (§1.8).

The night's value is the time asleep (``total_sleep_time``, or ``asleepduration`` for nights
from external sources, whose stage durations are null) in minutes; stages and context become
components, only those Withings reported. The effective period is in-bed start … end in the
row's own zone. A night re-summarised later keeps its ``id`` and is marked amended.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ohe.providers.base import FetchRequest, FetchResult
from ohe.providers.withings import paging
from ohe.providers.withings.values import Skips, device, instant, minutes, number, zone
from ohe.samples import Component, Sample, SampleStatus

PATH, ACTION = "/v2/sleep", "getsummary"
OVERLAP = 300
RECORD_KIND = "sleep"
DATA_TYPES = frozenset({"sleep"})


def _percent(ratio: Any) -> Decimal:
    return number(ratio) * 100


#: data field → (component data type, conversion to the codes table's unit).
COMPONENTS: tuple[tuple[str, str, Callable[[Any], Decimal]], ...] = (
    ("deepsleepduration", "sleep_deep", minutes),
    ("lightsleepduration", "sleep_light", minutes),
    ("remsleepduration", "sleep_rem", minutes),
    ("wakeupduration", "sleep_awake", minutes),
    ("total_timeinbed", "sleep_time_in_bed", minutes),
    ("sleep_efficiency", "sleep_efficiency", _percent),  # ratio 0-1 → %
    ("hr_average", "sleep_heart_rate", number),  # bpm
    ("rr_average", "sleep_respiratory_rate", number),  # breaths/min, not R-R intervals
)
ASLEEP_FIELDS = ("total_sleep_time", "asleepduration")
DATA_FIELDS = ",".join([*ASLEEP_FIELDS, *(field for field, _, _ in COMPONENTS)])


def plan(p: paging.Plan) -> FetchRequest:
    if p.cursor is not None:  # ``end`` (plan time) becomes the next cursor: see paging
        return FetchRequest(p.stream, cursor=str(p.cursor), end=p.end)
    return FetchRequest(p.stream, start=p.start, end=p.end)


def params(request: FetchRequest) -> dict[str, Any]:
    return {"data_fields": DATA_FIELDS, **paging.window_or_lastupdate(request, OVERLAP)}


def fetch(call: paging.Call, request: FetchRequest) -> FetchResult:
    return paging.fetch_dated(call, request, PATH, ACTION, params(request), key="series")


def parse(request: FetchRequest, payload: dict[str, Any]) -> list[Sample]:
    skips = Skips(request.stream)
    samples = skips.guarded(payload.get("series") or [], lambda row: _night(row, skips))
    skips.log()
    return samples


def _night(row: dict[str, Any], skips: Skips) -> list[Sample]:
    data = row.get("data") or {}
    asleep = next((data[f] for f in ASLEEP_FIELDS if data.get(f) is not None), None)
    if asleep is None or number(asleep) <= 0:
        skips.add("no_sleep_time")
        return []
    tz = zone(row.get("timezone"))
    components = tuple(
        Component(data_type, convert(data[field]))
        for field, data_type, convert in COMPONENTS
        if data.get(field) is not None
    )
    night_id = row.get("id")
    created, modified = row.get("created"), row.get("modified")
    amended = isinstance(created, int) and isinstance(modified, int) and modified > created
    return [
        Sample(
            "sleep",
            RECORD_KIND,
            str(night_id) if night_id is not None else str(row["date"]),
            effective_start=instant(row["startdate"], tz),
            effective_end=instant(row["enddate"], tz),
            value=minutes(asleep),
            components=components,
            device=device(row.get("hash_deviceid"), None, row.get("model_id")),
            status=SampleStatus.AMENDED if amended else SampleStatus.FINAL,
        )
    ]
