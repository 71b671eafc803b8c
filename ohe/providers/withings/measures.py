"""The ``measures`` stream: ``POST /measure action=getmeas`` → spot measurements (§1.5).

One call asks for every wanted meastype at once (``meastypes=``, saves quota), real measures
only (``category=1``). Incremental syncs use ``lastupdate`` (created *or modified* since),
which also catches back-dated and edited groups; the cursor is the server's ``updatetime``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from typing import Any

from ohe.providers.base import FetchRequest, FetchResult
from ohe.providers.withings import paging
from ohe.providers.withings.values import Skips, device, instant, scaled, virtual, zone
from ohe.samples import Component, Modality, Sample, SampleStatus

PATH, ACTION = "/measure", "getmeas"
CATEGORY_REAL = 1
OVERLAP = 300  # seconds re-read before the cursor
WINDOW_SLACK = 60  # seconds added on both sides of a window (inclusivity is undocumented)
RECORD_KIND = "measure"
#: getmeas over a date window returns every group in it; a deleted group is simply gone
#: (provider-apis.md §1.5, §1.10), so absence on a re-fetch means deleted.
COMPLETE_KINDS = (RECORD_KIND,)


@dataclass(frozen=True)
class MeasType:
    data_type: str
    shift: int = 0  # extra power of ten to reach the codes table's unit (height m → cm)


#: meastype → sample; types not listed (AFib codes, segments, vascular age...) are ignored.
MEASTYPES: dict[int, MeasType] = {
    1: MeasType("weight"),
    4: MeasType("height", shift=2),
    5: MeasType("fat_free_mass"),
    6: MeasType("fat_ratio"),
    8: MeasType("fat_mass"),
    11: MeasType("heart_rate"),
    12: MeasType("body_temperature"),
    54: MeasType("spo2"),
    71: MeasType("body_temperature"),
    73: MeasType("skin_temperature"),  # a surface temperature, never merged into body temp
    76: MeasType("muscle_mass"),
    77: MeasType("hydration"),
    88: MeasType("bone_mass"),
    91: MeasType("pulse_wave_velocity"),
    123: MeasType("vo2_max"),
}
SYSTOLIC, DIASTOLIC = 10, 9
WANTED = sorted({*MEASTYPES, SYSTOLIC, DIASTOLIC})
DATA_TYPES = frozenset({m.data_type for m in MEASTYPES.values()} | {"blood_pressure"})

#: ``attrib`` → how the value was obtained; 1 may be another person on a shared scale: it is
#: emitted as AMBIGUOUS and the transform stage drops (and counts) it.
ATTRIB_MODALITY: dict[int, Modality] = {
    0: Modality.SENSED,
    5: Modality.SENSED,  # BPM "auto": best value of a series
    7: Modality.SENSED,  # confirmed by the user
    8: Modality.SENSED,
    15: Modality.SENSED,  # guided conditions
    2: Modality.SELF_REPORTED,
    4: Modality.SELF_REPORTED,  # typed at account creation
    1: Modality.AMBIGUOUS,
}


def plan(p: paging.Plan) -> FetchRequest:
    if p.cursor is not None:
        return FetchRequest(p.stream, cursor=str(p.cursor))
    return FetchRequest(p.stream, start=p.start, end=p.end)


def params(request: FetchRequest) -> dict[str, Any]:
    query: dict[str, Any] = {
        "meastypes": ",".join(map(str, WANTED)),
        "category": CATEGORY_REAL,
        "offset": paging.page_offset(request) or None,
    }
    if request.cursor is not None:
        query["lastupdate"] = paging.since(request, OVERLAP)
    else:
        query["startdate"] = max((request.start or 0) - WINDOW_SLACK, 0)
        if request.end is not None:
            query["enddate"] = request.end + WINDOW_SLACK
    return query


def fetch(call: paging.Call, request: FetchRequest) -> FetchResult:
    body = call(PATH, ACTION, params(request))
    groups = body.get("measuregrps") or []
    updatetime = body.get("updatetime")
    position = paging.latest([updatetime])
    return FetchResult(
        payload=body,
        records=len(groups),
        next_request=paging.next_offset_page(request, body),
        next_cursor=paging.next_cursor(request, position),
    )


def parse(request: FetchRequest, payload: dict[str, Any]) -> list[Sample]:
    skips = Skips(request.stream)
    tz = zone(payload.get("timezone"))
    samples = skips.guarded(payload.get("measuregrps") or [], lambda g: _group(g, tz, skips))
    skips.log()
    return samples


def _group(group: dict[str, Any], tz: tzinfo, skips: Skips) -> list[Sample]:
    if group.get("category", CATEGORY_REAL) != CATEGORY_REAL:
        skips.add("goal")
        return []
    if virtual(group.get("model_id")):
        skips.add("virtual_source")
        return []
    grpid = group["grpid"]
    if isinstance(grpid, bool) or not isinstance(grpid, int):
        raise TypeError("grpid is not an integer")
    attrib = group.get("attrib")
    modality = ATTRIB_MODALITY.get(attrib)  # type: ignore[arg-type]
    if modality is None:
        skips.add("unknown_attrib_treated_as_sensed")
        modality = Modality.SENSED
    created, modified = group.get("created"), group.get("modified")
    amended = isinstance(created, int) and isinstance(modified, int) and modified > created
    common: dict[str, Any] = {
        "record_kind": RECORD_KIND,
        "effective_start": instant(group["date"], tz),
        "device": None
        if modality is Modality.SELF_REPORTED
        else device(
            group.get("deviceid") or group.get("hash_deviceid"),
            group.get("model"),
            group.get("model_id"),
        ),
        "modality": modality,
        "status": SampleStatus.AMENDED if amended else SampleStatus.FINAL,
    }
    values: dict[int, Decimal] = {}
    for measure in group.get("measures") or []:
        mtype = measure["type"]
        if mtype in MEASTYPES or mtype in (SYSTOLIC, DIASTOLIC):
            shift = MEASTYPES[mtype].shift if mtype in MEASTYPES else 0
            values[mtype] = scaled(measure["value"], measure["unit"], shift)
    samples = []
    for mtype, value in values.items():
        if mtype not in MEASTYPES:
            continue
        if value < 0:  # no listed quantity can be negative: a corrupt value, not a reading
            skips.add("negative_value")
            continue
        samples.append(
            Sample(MEASTYPES[mtype].data_type, source_id=f"{grpid}:{mtype}", value=value, **common)
        )
    if SYSTOLIC in values and DIASTOLIC in values:
        panel = (
            Component("systolic", values[SYSTOLIC]),
            Component("diastolic", values[DIASTOLIC]),
        )
        samples.append(
            Sample("blood_pressure", source_id=f"{grpid}:bp", components=panel, **common)
        )
    elif SYSTOLIC in values or DIASTOLIC in values:
        skips.add("one_sided_blood_pressure")  # half a reading is not a blood pressure
    return samples
