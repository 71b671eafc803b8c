"""``POST /v2/sleep``: ``getsummary`` (one row per night) and ``get`` (state segments).

Summaries are stored; ``get`` derives the hypnogram and the per-minute series from them. A
``get`` window longer than 24 h returns only its first 24 h: provider-apis.md §1.8 (followed)
says so; the OpenAPI transcription's "a single call can span up to 7 days" is not followed.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from .config import DAY, HOUR
from .context import Caller, Sandbox
from .generator import night_data, profile_for
from .params import Params, dated_page
from .signals import Night, hypnogram, segment_series
from .status import invalid
from .store import FIRST_SLEEPID
from .tables import DEVICE_MODELS, SLEEP_MODEL_BY_KIND, SLEEP_SERIES_FIELDS, SLEEP_SUMMARY_FIELDS


def _device(sb: Sandbox, deviceid: str | None) -> tuple[int | None, str | None, int]:
    """(model_id, model name, sleep ``model`` 16/32) of the device that recorded a night."""
    row = sb.store.one("SELECT model_id FROM devices WHERE deviceid = ?", (deviceid,))
    model = DEVICE_MODELS.get(row["model_id"]) if row else None
    if model is None:
        return None, None, SLEEP_MODEL_BY_KIND["watch"]
    return model.model_id, model.name, SLEEP_MODEL_BY_KIND.get(model.kind, 16)


def getsummary(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    fields = p.fields(SLEEP_SUMMARY_FIELDS)
    rows, more, next_offset = dated_page(sb, caller, p, "sleep", "startdate")
    series = []
    for r in rows:
        model_id, _, model = _device(sb, r["deviceid"])
        data = orjson.loads(r["data"])
        series.append(
            {
                "id": r["id"],
                "timezone": caller.timezone,
                "model": model,
                "model_id": model_id,
                "hash_deviceid": r["deviceid"],
                "startdate": r["startdate"],
                "enddate": r["enddate"],
                "date": r["date"],
                "created": r["created"],
                "modified": r["modified"],
                "completed": bool(r["completed"]),
                "data": {f: data[f] for f in fields if f in data},
            }
        )
    return {"series": series, "more": more, "offset": next_offset}


def get(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    start = p.integer("startdate", required=True) or 0
    end = p.integer("enddate", required=True) or 0
    if end < start:
        raise invalid("enddate before startdate")
    end = min(end, start + DAY)
    fields = p.fields(SLEEP_SERIES_FIELDS) if p.has("data_fields") else ()
    rows = sb.store.all(
        "SELECT * FROM sleep WHERE userid = ? AND startdate <= ? AND enddate >= ? "
        "ORDER BY startdate",
        (caller.userid, end, start),
    )
    series, body_model = [], SLEEP_MODEL_BY_KIND["watch"]
    for r in rows:
        model_id, name, body_model = _device(sb, r["deviceid"])
        night = Night(r["id"], r["startdate"], orjson.loads(r["data"]))
        for seg_start, seg_end, state in hypnogram(night):
            if start <= seg_start <= end:
                series.append(
                    {
                        "startdate": seg_start,
                        "enddate": seg_end,
                        "state": state,
                        "model": name,
                        "model_id": model_id,
                        "hash_deviceid": r["deviceid"],
                        **segment_series(night, seg_start, seg_end, state, fields),
                    }
                )
    return {"series": series, "model": body_model}


def add_night(sb: Sandbox, userid: int, startdate: int, enddate: int, date: str) -> int:
    """Admin: record a completed night (summary generated to fit the time in bed)."""
    if enddate - startdate < HOUR:
        raise ValueError("a night needs at least one hour in bed")
    rng = random.Random(f"admin-sleep:{userid}:{startdate}")
    data = night_data(rng, profile_for(userid), enddate - startdate)
    watch = sb.store.one(
        "SELECT deviceid FROM devices WHERE userid = ? AND model_id IN (91, 93, 94)", (userid,)
    )
    now = sb.clock.now()
    with sb.store.tx() as conn:
        sleep_id = sb.store.next_id("sleep", "id", FIRST_SLEEPID)
        conn.execute(
            "INSERT INTO sleep VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            (
                sleep_id,
                userid,
                date,
                startdate,
                enddate,
                now,
                now,
                watch["deviceid"] if watch else None,
                orjson.dumps(data).decode(),
            ),
        )
    return sleep_id
