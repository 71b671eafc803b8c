"""Hypothesis strategies for arbitrary, well-typed samples of every data type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

from ohe.fhir.codes import CODES, RHYTHMS, SAMPLE_TYPES, Shape
from ohe.samples import (
    Component,
    DeviceRef,
    Modality,
    Sample,
    SampleStatus,
    Series,
    Waveform,
)

texts = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())
numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: len(d.as_tuple().digits) <= 18 and abs(int(d.as_tuple().exponent)) <= 18
)
small_numbers = st.decimals(min_value=-1000, max_value=100000, places=3, allow_nan=False)
offsets_tz = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
instants = st.builds(
    lambda dt, tz: dt.replace(tzinfo=UTC).astimezone(tz),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
    offsets_tz,
)
devices = st.builds(
    DeviceRef,
    device_id=texts,
    manufacturer=texts,
    model=st.none() | texts,
    model_number=st.none() | texts,
    kind=st.none() | texts,
    battery=st.none() | st.sampled_from(["high", "medium", "low"]),
    active=st.booleans(),
    first_seen=st.none() | instants,
)
COMPONENTS = {
    "blood_pressure": ("systolic", "diastolic"),
    "sleep": ("sleep_deep", "sleep_light", "sleep_rem", "sleep_awake", "sleep_time_in_bed",
              "sleep_efficiency", "sleep_heart_rate", "sleep_respiratory_rate"),
}  # fmt: skip


@st.composite
def series(draw: st.DrawFn) -> Series:
    values = tuple(draw(st.lists(numbers, min_size=1, max_size=30)))
    if draw(st.booleans()):
        interval = draw(st.decimals(min_value=Decimal("0.001"), max_value=3600, places=3))
        return Series(values, interval=interval)
    offsets = sorted(
        draw(st.lists(st.decimals(min_value=0, max_value=3599, places=0), min_size=len(values),
                      max_size=len(values), unique=True))
    )  # fmt: skip
    return Series(values, offsets=tuple(offsets))


@st.composite
def waveforms(draw: st.DrawFn) -> Waveform:
    return Waveform(
        samples=tuple(draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=200))),
        sampling_hz=draw(st.decimals(min_value=Decimal("0.5"), max_value=2000, places=1)),
        classification=draw(st.none() | st.sampled_from(sorted(RHYTHMS))),
        classification_label=draw(st.none() | texts),
        heart_rate=draw(st.none() | small_numbers),
    )


@st.composite
def samples(draw: st.DrawFn, data_type: str | None = None) -> Sample:
    data_type = data_type or draw(st.sampled_from(sorted(SAMPLE_TYPES)))
    shape = CODES[data_type].shape
    start = draw(instants)
    end = draw(st.none() | st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)))
    kwargs: dict = {}
    if shape in (Shape.QUANTITY, Shape.SUMMARY):
        kwargs["value"] = draw(numbers)
    if shape in (Shape.PANEL, Shape.SUMMARY):
        names = COMPONENTS[data_type]
        chosen = draw(st.lists(st.sampled_from(names), min_size=shape is Shape.PANEL, unique=True))
        kwargs["components"] = tuple(Component(n, draw(numbers)) for n in chosen)
    if shape is Shape.SAMPLED:
        kwargs["series"] = draw(series())
    if shape is Shape.ECG:
        kwargs["waveform"] = draw(waveforms())
    return Sample(
        data_type=data_type,
        record_kind=draw(st.sampled_from(["measure", "activity-day", "intraday-hour", "sleep",
                                          "ecg", "datapoint", "daily"])),
        source_id=draw(texts),
        effective_start=start,
        effective_end=None if end is None else start + end,
        device=draw(st.none() | devices),
        modality=draw(st.sampled_from(list(Modality))),
        status=draw(st.sampled_from(list(SampleStatus))),
        **kwargs,
    )  # fmt: skip
