"""Conversions every Withings parser shares: exact decimals, the user's zone, devices, guards.

Pure functions only (no clock, no I/O beyond log lines), so ``parse`` stays pure.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ohe.samples import DeviceRef, Sample

log = logging.getLogger(__name__)

MANUFACTURER = "Withings"
#: Model ids from 1051 up are *virtual sources*: data imported into Withings from Apple Health,
#: Google Fit, Samsung Health, Health Connect, Huawei... (provider-apis.md §1.5). OHE skips it so
#: it never echoes another ecosystem's data back as Withings device data.
FIRST_VIRTUAL_MODEL_ID = 1051
EXTERNAL_BRAND = 18  # getactivity ``brand``: 1 Withings, 18 external source

#: Device names by model id, for records that carry only the id (heart list, sleep summary).
MODEL_NAMES: dict[int, str] = {
    1: "Withings WBS01", 2: "WS30", 3: "Kid Scale", 4: "Smart Body Analyzer", 5: "Body+",
    6: "Body Cardio", 7: "Body", 9: "Body Pro", 10: "Body Scan", 11: "WBS10", 12: "WBS11",
    18: "Body Comp", 41: "Withings Blood Pressure Monitor V1",
    42: "Withings Blood Pressure Monitor V2", 43: "Withings Blood Pressure Monitor V3",
    44: "BPM Core", 45: "BPM Connect", 46: "BPM Connect Pro", 47: "BPM Pro 2", 48: "BPM Vision",
    51: "Pulse", 52: "Activite", 53: "Activite (Pop, Steel)", 54: "Withings Go",
    55: "Activite Steel HR", 58: "Pulse HR", 59: "Activite Steel HR Sport Edition", 60: "Aura Dock",
    61: "Aura Sensor", 63: "Aura Sensor V2", 70: "Thermo", 71: "BeamO", 90: "Move",
    91: "Move ECG", 92: "Move ECG", 93: "ScanWatch", 94: "ScanWatch 2", 95: "ScanWatch Light",
    100: "WUP01",
}  # fmt: skip

T = TypeVar("T")
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, InvalidOperation)


def number(value: Any) -> Decimal:
    """A JSON number as an exact Decimal (floats through their shortest repr, never binary)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise TypeError(f"not a number: {type(value).__name__}")
    result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return _plain(result)


def scaled(value: Any, unit: Any, shift: int = 0) -> Decimal:
    """Withings' ``value * 10^unit`` (then ``* 10^shift``, e.g. m to cm), exactly."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("measure value is not an integer")
    if isinstance(unit, bool) or not isinstance(unit, int):
        raise TypeError("measure unit is not an integer")
    return _plain(Decimal(value).scaleb(unit + shift))


def _plain(value: Decimal) -> Decimal:
    """``1.8E+2`` → ``180``: keep the source precision but never a positive exponent."""
    if not value.is_finite():
        raise ValueError("not a finite number")
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


def minutes(seconds: Any) -> Decimal:
    """Seconds → minutes: whole minutes stay integers, others keep two decimals."""
    value = number(seconds) / 60
    whole = value.to_integral_value()
    return whole.quantize(Decimal(1)) if value == whole else value.quantize(Decimal("0.01"))


def zone(name: Any) -> tzinfo:
    """The IANA zone Withings reports for a record; UTC (logged) when absent or unknown."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    log.warning(
        "Withings record without a usable time zone; UTC used",
        extra={"operation": "parse", "provider": "withings"},
    )
    return UTC


def instant(seconds: Any, tz: tzinfo = UTC) -> datetime:
    """Unix seconds → an aware datetime rendered in ``tz`` (the user's offset at that instant)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError("timestamp is not a number")
    return datetime.fromtimestamp(int(seconds), tz)


def virtual(model_id: Any) -> bool:
    return isinstance(model_id, int) and model_id >= FIRST_VIRTUAL_MODEL_ID


def device(deviceid: Any, model: Any = None, model_id: Any = None) -> DeviceRef | None:
    """The measuring device, or None when the record names none (manual entries)."""
    if not isinstance(deviceid, str) or not deviceid.strip():
        return None
    name = model if isinstance(model, str) and model.strip() else None
    if name is None and isinstance(model_id, int):
        name = MODEL_NAMES.get(model_id)
    number_text = str(model_id) if isinstance(model_id, int) else None
    return DeviceRef(deviceid, MANUFACTURER, name, number_text)


class Skips:
    """Records of one page that were skipped (or emitted with a caveat), by reason.

    Logged once per page as counts only: no provider ids or values reach the log.
    """

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.counts: Counter[str] = Counter()

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    def guarded(self, records: Iterable[T], parse_one: Callable[[T], list[Sample]]) -> list[Sample]:
        """Parse each record; a malformed one is skipped and counted, never fails the page."""
        samples: list[Sample] = []
        for record in records:
            try:
                samples.extend(parse_one(record))
            except MALFORMED:
                self.add("malformed")
        return samples

    def log(self) -> None:
        if self.counts:
            log.info(
                "Withings records skipped or flagged while parsing",
                extra={
                    "operation": "parse",
                    "provider": "withings",
                    "stream": self.stream,
                    "skipped": dict(self.counts),
                },
            )
