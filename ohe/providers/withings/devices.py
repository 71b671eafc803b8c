"""``POST /v2/user action=getdevice``: the devices linked to the account (§1.9).

A device missing from a later answer was unlinked from the account; the caller compares lists
to end the association. Virtual sources (HealthKit, Google Fit, ... model id ≥ 1051) are not
Withings devices and are left out, like their data.
"""

from __future__ import annotations

from typing import Any

from ohe.providers.withings.paging import Call
from ohe.providers.withings.values import (
    MALFORMED,
    MANUFACTURER,
    MODEL_NAMES,
    Skips,
    instant,
    virtual,
)
from ohe.samples import DeviceRef

PATH, ACTION = "/v2/user", "getdevice"


def devices(call: Call) -> list[DeviceRef]:
    body = call(PATH, ACTION, {})
    skips = Skips("devices")
    found = []
    for row in body.get("devices") or []:
        try:
            if virtual(row.get("model_id")):
                skips.add("virtual_source")
                continue
            found.append(_device(row))
        except MALFORMED:
            skips.add("malformed")
    skips.log()
    return found


def _device(row: dict[str, Any]) -> DeviceRef:
    model_id = row.get("model_id")
    first = row.get("first_session_date")
    return DeviceRef(
        device_id=row.get("deviceid") or row["hash_deviceid"],
        manufacturer=MANUFACTURER,
        model=_text(row.get("model")) or MODEL_NAMES.get(model_id),  # type: ignore[arg-type]
        model_number=str(model_id) if isinstance(model_id, int) else None,
        kind=_text(row.get("type")),
        battery=_text(row.get("battery")),  # high / medium / low, never turned into a percent
        active=True,
        first_seen=instant(first) if isinstance(first, int) and first > 0 else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
