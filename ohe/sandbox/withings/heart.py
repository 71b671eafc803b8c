"""``POST /v2/heart``: ``list`` (ECG recordings) and ``get`` (the signal of one recording).

Signals are synthesised on request at the device's real rate and length (BPM Core 20 s at
500 Hz = 10 000 samples; ScanWatch / Move ECG 30 s at 300 Hz = 9 000), in micro-volts.
Failed recordings are listed without ``ecg`` or ``heart_rate``, as observed in the wild.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .context import Caller, Sandbox
from .params import Params, paged
from .signals import ecg_signal
from .status import invalid
from .store import FIRST_SIGNALID
from .tables import DEVICE_MODELS

ECG_SQL = (
    "SELECT e.*, d.model_id FROM ecg e JOIN devices d ON d.deviceid = e.deviceid WHERE e.userid = ?"
)


def list_(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    offset = p.offset()
    sql, args = ECG_SQL, [caller.userid]
    for name, clause in (
        ("startdate", " AND e.timestamp >= ?"),
        ("enddate", " AND e.timestamp <= ?"),
    ):
        if (value := p.integer(name)) is not None:
            sql += clause
            args.append(value)
    rows = sb.store.all(
        sql + " ORDER BY e.timestamp DESC, e.signalid DESC LIMIT ? OFFSET ?",
        [*args, sb.config.page_size + 1, offset],
    )
    rows, more, next_offset = paged(rows, sb.config.page_size, offset)
    series = []
    for r in rows:
        item: dict[str, Any] = {
            "deviceid": r["deviceid"],
            "model": r["model_id"],
            "timestamp": r["timestamp"],
            "modified": r["modified"],
        }
        if r["afib"] is not None:
            item["ecg"] = {"signalid": r["signalid"], "afib": r["afib"]}
            item["heart_rate"] = r["heart_rate"]
        if r["systole"] is not None:
            item["bloodpressure"] = {"systole": r["systole"], "diastole": r["diastole"]}
        series.append(item)
    return {"series": series, "more": more, "offset": next_offset}


def get(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    signalid = p.integer("signalid", required=True)
    row = sb.store.one(ECG_SQL + " AND e.signalid = ?", (caller.userid, signalid))
    if row is None or row["afib"] is None:
        raise invalid(f"no signal {signalid} for this user")
    return {
        "signal": list(_signal(row["signalid"], row["heart_rate"], row["afib"], row["model_id"])),
        "sampling_frequency": DEVICE_MODELS[row["model_id"]].ecg_hz,
        "wearposition": row["wearposition"],
        "model": row["model_id"],
        "heart_rate": row["heart_rate"],
    }


@lru_cache(maxsize=32)
def _signal(signalid: int, heart_rate: int, afib: int, model_id: int) -> tuple[int, ...]:
    model = DEVICE_MODELS[model_id]
    lead_gain = 1.0 if model.kind == "bpm" else 0.65  # wrist leads see smaller R waves
    return tuple(
        ecg_signal(
            signalid,
            heart_rate=heart_rate,
            afib=afib,
            hz=model.ecg_hz,
            seconds=model.ecg_seconds,
            lead_gain=lead_gain,
        )
    )


def add_recording(sb: Sandbox, userid: int, *, timestamp: int, afib: int, heart_rate: int) -> int:
    """Admin: a new ECG on the user's ECG-capable device (BPM Core first, then the watch)."""
    devices = sb.store.all(
        "SELECT deviceid, model_id FROM devices WHERE userid = ? ORDER BY model_id", (userid,)
    )
    recorder = next((d for d in devices if DEVICE_MODELS[d["model_id"]].ecg_hz), None)
    if recorder is None:
        raise LookupError(f"user {userid} has no ECG-capable device")
    bpm = DEVICE_MODELS[recorder["model_id"]].kind == "bpm"
    with sb.store.tx() as conn:
        signalid = sb.store.next_id("ecg", "signalid", FIRST_SIGNALID)
        conn.execute(
            "INSERT INTO ecg VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                signalid,
                userid,
                timestamp,
                sb.clock.now(),
                recorder["deviceid"],
                afib,
                heart_rate,
                120 if bpm else None,
                80 if bpm else None,
                3 if bpm else 1,
            ),
        )
    return signalid
