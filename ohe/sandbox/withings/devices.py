"""``POST /v2/user action=getdevice``: the devices linked to the account (§1.9)."""

from __future__ import annotations

from typing import Any

from .context import Caller, Sandbox
from .params import Params
from .tables import DEVICE_MODELS


def getdevice(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    rows = sb.store.all(
        "SELECT * FROM devices WHERE userid = ? ORDER BY model_id", (caller.userid,)
    )
    return {
        "devices": [
            {
                "type": DEVICE_MODELS[r["model_id"]].type,
                "model": DEVICE_MODELS[r["model_id"]].name,
                "model_id": r["model_id"],
                "battery": r["battery"],
                "deviceid": r["deviceid"],
                "hash_deviceid": r["deviceid"],
                "timezone": caller.timezone,
                "first_session_date": r["first_session_date"],
                "last_session_date": r["last_session_date"],
            }
            for r in rows
        ]
    }
