"""Hand-written Withings pages (shapes from provider-apis.md §1 and upstream/withings/*.json)
and the check that every sample a parser emits speaks the codes table's vocabulary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ohe.fhir.codes import CODES, SAMPLE_TYPES, Shape
from ohe.providers.base import FetchRequest
from ohe.samples import Sample

SCALE = "892359876fd8805ac45bab078c4828692f0276b1"
BPM = "c8ef50b30d77f916c650774f638e2300ef6bee38"
WATCH = "2368f79492180f6c26fff5f46d3cbca455153048"
DATE = 1773651600  # 2026-03-16 09:00 UTC (10:00 in Paris, winter time)


def request(stream: str, **fields: Any) -> FetchRequest:
    return FetchRequest(stream, **fields)


def measure(mtype: int, value: int, unit: int) -> dict[str, int]:
    return {"value": value, "type": mtype, "unit": unit, "algo": 0, "fm": 0}


def group(
    grpid: int,
    *measures: dict[str, int],
    attrib: int = 0,
    date: int = DATE,
    created: int | None = None,
    modified: int | None = None,
    deviceid: str | None = SCALE,
    model: str | None = "Body Cardio",
    model_id: int | None = 6,
    category: int = 1,
) -> dict[str, Any]:
    created = date + 60 if created is None else created
    row: dict[str, Any] = {
        "grpid": grpid,
        "attrib": attrib,
        "date": date,
        "created": created,
        "modified": created if modified is None else modified,
        "category": category,
        "model": model,
        "model_id": model_id,
        "comment": None,
        "measures": list(measures),
    }
    if deviceid is not None:
        row["deviceid"] = row["hash_deviceid"] = deviceid
    return row


def getmeas(*groups: dict[str, Any], timezone: str = "Europe/Paris") -> dict[str, Any]:
    return {
        "updatetime": DATE + 3600,
        "timezone": timezone,
        "measuregrps": list(groups),
        "more": 0,
        "offset": 0,
    }


def activity_row(day: str, timezone: str = "Europe/Paris", **fields: Any) -> dict[str, Any]:
    return {
        "date": day,
        "timezone": timezone,
        "deviceid": WATCH,
        "hash_deviceid": WATCH,
        "brand": 1,
        "is_tracker": True,
        "modified": DATE,
        "model": "ScanWatch 2",
        "modelid": 94,
        **fields,
    }


def sleep_row(night_id: int, data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": night_id,
        "timezone": "Europe/Paris",
        "model": 16,
        "model_id": 94,
        "hash_deviceid": WATCH,
        "startdate": 1773612000,  # 2026-03-15 23:00 Paris
        "enddate": 1773640800,  # 2026-03-16 07:00 Paris
        "date": "2026-03-16",
        "created": 1773644400,
        "modified": 1773644400,
        "completed": True,
        "data": data,
        **fields,
    }


def check_vocabulary(samples: Iterable[Sample]) -> None:
    """Every data type is a sample type of the codes table; components are component rows."""
    for sample in samples:
        assert sample.data_type in SAMPLE_TYPES, sample.data_type
        for component in sample.components:
            assert CODES[component.data_type].shape is Shape.COMPONENT, component.data_type
        if sample.waveform and sample.waveform.classification:
            from ohe.fhir.codes import RHYTHMS

            assert sample.waveform.classification in RHYTHMS
