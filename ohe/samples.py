"""The provider-neutral measurement model: what providers emit and what the FHIR layer consumes.

Providers never import ``ohe.fhir`` and the FHIR layer never imports ``ohe.providers``; they meet
here. A :class:`Sample` is one measurement as the patient would understand it (a weigh-in, a
blood-pressure reading, a night of sleep, an hour of heart rate, an ECG), with:

- ``data_type``: a key of the codes table (``ohe.fhir.codes``), e.g. ``weight``;
- a value, components or a series, as :class:`~decimal.Decimal` (source precision kept, never
  rounded through floats);
- an effective instant or period, always timezone-aware; daily aggregates carry the user's UTC
  offset so the day boundary is the user's, not UTC's (see :func:`local_day`);
- ``record_kind`` + ``source_id``: the provider's stable natural key, from which the FHIR layer
  derives the deterministic identifier that makes every write idempotent;
- the measuring device, if known, and the modality (sensed, self-reported, ambiguous).
"""

from __future__ import annotations

import enum
import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

MAX_DIGITS = 18  # FHIR decimals: 18 significant digits are what every server must support


def check_number(value: Decimal, what: str) -> None:
    """Reject numbers no FHIR server can take: NaN, infinities, more than 18 digits."""
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number")
    digits = value.as_tuple()
    if len(digits.digits) > MAX_DIGITS or abs(int(digits.exponent)) > MAX_DIGITS:
        raise ValueError(f"{what} has more than {MAX_DIGITS} digits")


def check_instant(value: datetime | None, what: str) -> None:
    """Timezone-aware, with a whole-minute UTC offset (FHIR dateTime has no offset seconds)."""
    if value is None:
        return
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"{what} must be timezone-aware")
    if offset.seconds % 60 or offset.microseconds:
        raise ValueError(f"{what} has a UTC offset with seconds (e.g. a local mean time zone)")


def check_text(value: str | None, what: str) -> None:
    if value is not None and not value.strip():
        raise ValueError(f"{what} must not be empty")


class Modality(enum.StrEnum):
    SENSED = "sensed"
    SELF_REPORTED = "self-reported"
    AMBIGUOUS = "ambiguous"  # e.g. Withings attrib 1: may belong to another person


class SampleStatus(enum.StrEnum):
    FINAL = "final"
    AMENDED = "amended"  # the provider revised a value already written
    ENTERED_IN_ERROR = "entered-in-error"  # the provider deleted it


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A physical device as the provider identifies it (ids are the provider's, not FHIR's)."""

    device_id: str
    manufacturer: str
    model: str | None = None
    model_number: str | None = None
    kind: str | None = None  # the provider's device type text, e.g. "Scale"
    battery: str | None = None  # high / medium / low as reported; never invented as a percent
    active: bool = True
    first_seen: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("device_id", "manufacturer", "model", "model_number", "kind", "battery"):
            check_text(getattr(self, name), f"device {name}")
        check_instant(self.first_seen, "device first_seen")


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a panel (systolic of a BP reading, deep sleep of a night)."""

    data_type: str
    value: Decimal

    def __post_init__(self) -> None:
        check_number(self.value, f"component {self.data_type}")


@dataclass(frozen=True, slots=True)
class Series:
    """Regularly or irregularly sampled values starting at ``Sample.effective_start``.

    Exactly one of ``interval`` (seconds between values) and ``offsets`` (seconds from the start,
    one per value) is set — the R5 SampledData invariant.
    """

    values: tuple[Decimal, ...]
    interval: Decimal | None = None
    offsets: tuple[Decimal, ...] | None = None

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.offsets is None):
            raise ValueError("a Series needs exactly one of interval and offsets")
        if self.offsets is not None and len(self.offsets) != len(self.values):
            raise ValueError("a Series needs one offset per value")
        if not self.values:
            raise ValueError("a Series needs at least one value")
        for value in self.values:
            check_number(value, "series value")
        if self.interval is not None:
            check_number(self.interval, "series interval")
            if self.interval <= 0:
                raise ValueError("series interval must be positive")
        for offset in self.offsets or ():
            check_number(offset, "series offset")
            if offset < 0:
                raise ValueError("series offsets must not be negative")


@dataclass(frozen=True, slots=True)
class Waveform:
    """An ECG lead: integer samples in micro-volts at ``sampling_hz`` (all samples, no cap)."""

    samples: tuple[int, ...]
    sampling_hz: Decimal
    classification: str | None = None  # key of the rhythm table in ohe.fhir.codes
    classification_label: str | None = None  # the provider's original label
    heart_rate: Decimal | None = None

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a waveform needs samples")
        check_number(self.sampling_hz, "sampling frequency")
        if self.sampling_hz <= 0:
            raise ValueError("sampling frequency must be positive")
        if self.heart_rate is not None:
            check_number(self.heart_rate, "heart rate")
        check_text(self.classification_label, "classification label")


@dataclass(frozen=True, slots=True)
class Sample:
    data_type: str
    record_kind: str  # identifier kind: measure, activity-day, intraday-hour, sleep, ecg, ...
    source_id: str  # the provider's stable natural key within the link
    effective_start: datetime
    effective_end: datetime | None = None
    value: Decimal | None = None
    components: tuple[Component, ...] = ()
    series: Series | None = None
    waveform: Waveform | None = None
    device: DeviceRef | None = None
    modality: Modality = Modality.SENSED
    status: SampleStatus = SampleStatus.FINAL
    derived_from: tuple[str, ...] = field(default=())  # source ids of the samples it came from

    def __post_init__(self) -> None:
        check_instant(self.effective_start, "effective_start")
        check_instant(self.effective_end, "effective_end")
        if self.effective_end is not None and self.effective_end < self.effective_start:
            raise ValueError("effective_end is before effective_start")
        if self.value is not None:
            check_number(self.value, self.data_type)
        check_text(self.source_id, "source id")


def local_day(day: date, zone: str) -> tuple[datetime, datetime]:
    """The user's civil day as ``[00:00:00, 23:59:59]`` with each bound's own UTC offset.

    FHIR ``Period.end`` is inclusive to its precision; DST days have different offsets at their
    two ends (23- and 25-hour days), so each bound is localised separately.
    """
    tz = ZoneInfo(zone)
    return (
        datetime.combine(day, time(0, 0, 0), tz),
        datetime.combine(day, time(23, 59, 59), tz),
    )


def group_hourly(
    data_type: str,
    points: Iterable[tuple[datetime, Decimal]],
    *,
    source_prefix: str,
    device: DeviceRef | None = None,
) -> list[Sample]:
    """Group intraday points into one series Sample per UTC hour (never one resource per point).

    The hour is keyed by its UTC start so a re-sync of a partial hour updates the same resource;
    regular spacing becomes ``interval``, irregular spacing ``offsets``.
    """
    hours: dict[datetime, list[tuple[datetime, Decimal]]] = defaultdict(list)
    for instant, value in points:
        if instant.tzinfo is None:
            raise ValueError("intraday points must be timezone-aware")
        utc = instant.astimezone(ZoneInfo("UTC"))
        hours[utc.replace(minute=0, second=0, microsecond=0)].append((instant, value))
    samples = []
    for hour_start, hour_points in sorted(hours.items()):
        hour_points.sort(key=lambda p: p[0])
        deduped = dict(hour_points)  # a repeated timestamp keeps its last value
        offsets = tuple(_seconds(t - hour_start) for t in deduped)
        deltas = {b - a for a, b in itertools.pairwise(offsets)}
        values = tuple(deduped.values())
        regular = len(offsets) > 1 and offsets[0] == 0 and len(deltas) == 1
        series = (
            Series(values, interval=deltas.pop()) if regular else Series(values, offsets=offsets)
        )
        local_start = hour_start.astimezone(next(iter(deduped)).tzinfo)
        samples.append(
            Sample(
                data_type=data_type,
                record_kind="intraday-hour",
                source_id=f"{source_prefix}:{hour_start.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                effective_start=local_start,
                effective_end=local_start + timedelta(hours=1) - timedelta(seconds=1),
                series=series,
                device=device,
            )
        )
    return samples


def _seconds(delta: timedelta) -> Decimal:
    seconds = delta.total_seconds()
    return Decimal(int(seconds)) if seconds.is_integer() else Decimal(str(seconds))
