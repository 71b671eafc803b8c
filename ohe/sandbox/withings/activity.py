"""``POST /v2/measure``: ``getactivity`` (daily rows) and ``getintradayactivity`` (samples).

Daily rows are stored; intraday samples are derived from them (``signals.intraday_day``) so
both views of a day agree. v2 paging: ``more`` is a boolean (§1.1, §1.7).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import orjson

from .config import DAY
from .context import Caller, Sandbox
from .generator import local_days, local_midnight, profile_for
from .params import Params, dated_page
from .signals import DayTotals, intraday_day
from .status import invalid
from .tables import ACTIVITY_FIELDS, DEVICE_MODELS, INTRADAY_FIELDS


def _models(sb: Sandbox, userid: int) -> dict[str, int]:
    rows = sb.store.all("SELECT deviceid, model_id FROM devices WHERE userid = ?", (userid,))
    return {r["deviceid"]: r["model_id"] for r in rows}


def getactivity(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    fields = p.fields(ACTIVITY_FIELDS)
    rows, more, next_offset = dated_page(sb, caller, p, "activity", "date")
    models = _models(sb, caller.userid)
    activities = []
    for r in rows:
        data = orjson.loads(r["data"])
        model_id = models.get(r["deviceid"])
        activities.append(
            {
                "date": r["date"],
                "timezone": caller.timezone,
                "deviceid": r["deviceid"],
                "hash_deviceid": r["deviceid"],
                "brand": 1,  # 1 Withings, 18 external sources
                "is_tracker": True,
                "modified": r["modified"],
                "model": DEVICE_MODELS[model_id].name if model_id in DEVICE_MODELS else None,
                "modelid": model_id,
                **{f: data[f] for f in fields if f in data},
            }
        )
    return {"activities": activities, "more": more, "offset": next_offset}


def getintradayactivity(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    """Samples keyed by unix time; a window longer than 24 h yields only its first 24 h."""
    now = sb.clock.now()
    start, end = p.integer("startdate"), p.integer("enddate")
    if start is None and end is None:  # "no window -> most recent data"
        start, end = now - DAY, now
    elif start is None:
        start = (end or now) - DAY
    elif end is None:
        end = start + DAY
    if end < start:
        raise invalid("enddate before startdate")
    end = min(end, start + DAY, now)
    fields = p.fields(INTRADAY_FIELDS)
    models = _models(sb, caller.userid)
    resting_hr = profile_for(caller.userid).resting_hr
    series: dict[str, dict[str, Any]] = {}
    for day, midnight in local_days(ZoneInfo(caller.timezone), start, end):
        row = sb.store.one(
            "SELECT * FROM activity WHERE userid = ? AND date = ?",
            (caller.userid, day.isoformat()),
        )
        if row is None:
            continue
        steps = orjson.loads(row["data"]).get("steps", 0)
        totals = DayTotals(caller.userid, day.isoformat(), midnight, steps, resting_hr)
        model_id = models.get(row["deviceid"])
        device = {
            "deviceid": row["deviceid"],
            "model": DEVICE_MODELS[model_id].name if model_id in DEVICE_MODELS else None,
            "model_id": model_id,
        }
        for ts, sample in sorted(intraday_day(totals).items()):
            picked = {f: sample[f] for f in fields if f in sample}
            if start <= ts <= end and picked:
                series[str(ts)] = {**device, **picked}
    return {"series": series}


def upsert_day(sb: Sandbox, userid: int, date: str, values: dict[str, Any]) -> tuple[int, int]:
    """Admin: overwrite fields of one day's row (a running total), return its unix bounds."""
    unknown = set(values) - set(ACTIVITY_FIELDS)
    if unknown:
        raise ValueError(f"unknown activity fields: {sorted(unknown)}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()):
        raise ValueError("activity fields are numbers")
    user = sb.store.one("SELECT timezone FROM users WHERE userid = ?", (userid,))
    if user is None:
        raise LookupError(f"no user {userid}")
    midnight = local_midnight(user["timezone"], date)  # ValueError unless YYYY-MM-DD
    watch = next(
        (d for d, m in _models(sb, userid).items() if DEVICE_MODELS[m].kind == "watch"), None
    )
    with sb.store.tx() as conn:
        row = conn.execute(
            "SELECT data FROM activity WHERE userid = ? AND date = ?", (userid, date)
        ).fetchone()
        data = {**(orjson.loads(row["data"]) if row else {}), **values}
        conn.execute(
            "INSERT OR REPLACE INTO activity VALUES (?, ?, ?, ?, ?)",
            (userid, date, watch, sb.clock.now(), orjson.dumps(data).decode()),
        )
    return midnight, midnight + DAY
