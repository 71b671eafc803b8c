"""``parse`` of activity, intraday, sleep and ECG pages (hand-written payloads)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ohe.providers.withings import WithingsProvider
from ohe.samples import Modality, SampleStatus
from tests.providers.withings.payloads import (
    BPM,
    WATCH,
    activity_row,
    check_vocabulary,
    request,
    sleep_row,
)

# --- activity --------------------------------------------------------------------------------


def test_activity_rows_become_daily_totals_keyed_by_local_date_and_field(
    offline_provider: WithingsProvider,
) -> None:
    page = {
        "activities": [
            activity_row("2026-03-16", steps=8512, distance=6231.47, calories=312.5, elevation=7),
            activity_row("2026-03-17", steps=120),  # a day just begun: only what is there
        ],
        "more": False,
        "offset": 0,
    }
    samples = offline_provider.parse(request("activity", cursor="1"), page)
    check_vocabulary(samples)
    keyed = {s.source_id: s for s in samples}
    assert set(keyed) == {
        "2026-03-16:steps",
        "2026-03-16:distance",
        "2026-03-16:calories",
        "2026-03-16:elevation",
        "2026-03-17:steps",
    }
    assert {k: (s.data_type, str(s.value)) for k, s in keyed.items() if "03-16" in k} == {
        "2026-03-16:steps": ("steps_daily", "8512"),
        "2026-03-16:distance": ("distance_daily", "6231.47"),  # the JSON float's digits, exact
        "2026-03-16:calories": ("calories_active_daily", "312.5"),
        "2026-03-16:elevation": ("floors_daily", "7"),
    }
    steps = keyed["2026-03-16:steps"]
    assert steps.record_kind == "activity-day"
    assert steps.effective_start.isoformat() == "2026-03-16T00:00:00+01:00"
    assert steps.effective_end is not None
    assert steps.effective_end.isoformat() == "2026-03-16T23:59:59+01:00"
    assert steps.device is not None and steps.device.device_id == WATCH


@pytest.mark.parametrize(
    "case",
    [
        (
            "2026-03-29",
            "Europe/Paris",
            "2026-03-29T00:00:00+01:00",
            "2026-03-29T23:59:59+02:00",
            23,
        ),
        (
            "2026-10-25",
            "Europe/Paris",
            "2026-10-25T00:00:00+02:00",
            "2026-10-25T23:59:59+01:00",
            25,
        ),
        (
            "2026-11-01",
            "America/New_York",
            "2026-11-01T00:00:00-04:00",
            "2026-11-01T23:59:59-05:00",
            25,
        ),
        ("2026-03-16", "Asia/Tokyo", "2026-03-16T00:00:00+09:00", "2026-03-16T23:59:59+09:00", 24),
    ],
)
def test_day_boundaries_are_the_rows_own_zone_including_dst_days(
    offline_provider: WithingsProvider, case: tuple[str, str, str, str, int]
) -> None:
    day, zone, start, end, hours = case
    page = {"activities": [activity_row(day, timezone=zone, steps=1000)]}
    (sample,) = offline_provider.parse(request("activity", cursor="1"), page)
    assert sample.effective_start.isoformat() == start
    assert sample.effective_end is not None
    assert sample.effective_end.isoformat() == end
    # in UTC: subtracting two times of one zone object is wall-clock arithmetic in Python
    span = sample.effective_end.astimezone(UTC) - sample.effective_start.astimezone(UTC)
    span += timedelta(seconds=1)
    assert span == timedelta(hours=hours)


def test_external_activity_rows_are_skipped(offline_provider: WithingsProvider) -> None:
    page = {
        "activities": [
            activity_row("2026-03-16", steps=9000, brand=18, is_tracker=False),
            activity_row("2026-03-17", steps=9000, modelid=1058),  # Apple Watch via HealthKit
            activity_row("2026-03-18", steps=9000, brand=1, is_tracker=False, modelid=None),
        ]
    }
    samples = offline_provider.parse(request("activity", cursor="1"), page)
    # brand 1 without a tracker is Withings' own phone step counter: kept
    assert [s.source_id for s in samples] == ["2026-03-18:steps"]


# --- intraday --------------------------------------------------------------------------------


def _ts(hour: int, minute: int) -> str:
    return str(int(datetime(2026, 3, 16, hour, minute, tzinfo=UTC).timestamp()))


def test_intraday_points_are_grouped_per_utc_hour(offline_provider: WithingsProvider) -> None:
    device = {"deviceid": WATCH, "model": "ScanWatch 2", "model_id": 94}
    series = {_ts(10, m): {**device, "heart_rate": 60 + m // 10} for m in range(0, 60, 10)}
    series.update({_ts(11, 0): {**device, "heart_rate": 70}})
    series[_ts(10, 3)] = {**device, "steps": 40}
    series[_ts(10, 4)] = {**device, "steps": 55}
    series[_ts(10, 17)] = {**device, "steps": 12}
    series[_ts(10, 20)] = {**series[_ts(10, 20)], "steps": 8}  # same instant, both fields
    samples = offline_provider.parse(request("intraday", start=0, end=1), {"series": series})
    check_vocabulary(samples)
    keyed = {s.source_id: s for s in samples}
    assert set(keyed) == {
        "heart_rate:2026-03-16T10:00:00Z",
        "heart_rate:2026-03-16T11:00:00Z",
        "steps:2026-03-16T10:00:00Z",
    }
    hr = keyed["heart_rate:2026-03-16T10:00:00Z"]
    assert hr.data_type == "heart_rate_intraday"
    assert hr.record_kind == "intraday-hour"
    assert hr.effective_start == datetime(2026, 3, 16, 10, tzinfo=UTC)
    assert hr.series is not None
    assert hr.series.interval == Decimal(600)  # a regular 10-minute grid
    assert hr.series.values == tuple(Decimal(v) for v in (60, 61, 62, 63, 64, 65))
    steps = keyed["steps:2026-03-16T10:00:00Z"]
    assert steps.data_type == "steps_interval"
    assert steps.series is not None
    assert steps.series.offsets == (Decimal(180), Decimal(240), Decimal(1020), Decimal(1200))
    assert steps.series.values == (Decimal(40), Decimal(55), Decimal(12), Decimal(8))
    assert hr.device is not None and hr.device.device_id == WATCH


def test_intraday_skips_virtual_sources_and_zero_heart_rates(
    offline_provider: WithingsProvider,
) -> None:
    series = {
        _ts(9, 0): {"deviceid": WATCH, "model_id": 94, "heart_rate": 0},
        _ts(9, 1): {"deviceid": "phone", "model_id": 1053, "steps": 400},
        _ts(9, 2): {"deviceid": WATCH, "model_id": 94, "steps": 30},
        "not-a-time": {"deviceid": WATCH, "model_id": 94, "steps": 1},
    }
    samples = offline_provider.parse(request("intraday", start=0, end=1), {"series": series})
    assert [(s.source_id, s.series.values) for s in samples if s.series] == [
        ("steps:2026-03-16T09:00:00Z", (Decimal(30),))
    ]


# --- sleep -----------------------------------------------------------------------------------

NIGHT = {
    "total_timeinbed": 28800,
    "total_sleep_time": 25230,
    "lightsleepduration": 14400,
    "deepsleepduration": 5400,
    "remsleepduration": 5430,
    "wakeupduration": 3570,
    "sleep_efficiency": 0.88,
    "hr_average": 58,
    "rr_average": 14,
    "sleep_score": 81,
    "night_events": {"1": [0]},
}


def test_a_night_is_one_sleep_sample_with_its_stages_as_components(
    offline_provider: WithingsProvider,
) -> None:
    page = {"series": [sleep_row(4242, NIGHT)], "more": False, "offset": 0}
    (night,) = offline_provider.parse(request("sleep", cursor="1"), page)
    check_vocabulary([night])
    assert (night.data_type, night.record_kind, night.source_id) == ("sleep", "sleep", "4242")
    assert night.value == Decimal("420.50")  # 25 230 s asleep
    assert {c.data_type: c.value for c in night.components} == {
        "sleep_deep": Decimal(90),
        "sleep_light": Decimal(240),
        "sleep_rem": Decimal("90.50"),
        "sleep_awake": Decimal("59.50"),
        "sleep_time_in_bed": Decimal(480),
        "sleep_efficiency": Decimal(88),
        "sleep_heart_rate": Decimal(58),
        "sleep_respiratory_rate": Decimal(14),  # breaths/min: never R-R intervals
    }
    assert night.effective_start.isoformat() == "2026-03-15T23:00:00+01:00"
    assert night.effective_end is not None
    assert night.effective_end.isoformat() == "2026-03-16T07:00:00+01:00"
    assert night.device is not None and night.device.model == "ScanWatch 2"
    assert night.status is SampleStatus.FINAL


def test_external_nights_use_asleepduration_and_only_present_components(
    offline_provider: WithingsProvider,
) -> None:
    external = {
        "asleepduration": 26100,
        "lightsleepduration": None,
        "deepsleepduration": None,
        "remsleepduration": None,
        "total_timeinbed": 27000,
    }
    resummarised = sleep_row(7, {"total_sleep_time": 20000}, modified=1773700000)
    empty = sleep_row(8, {"total_timeinbed": 3600})
    page = {"series": [sleep_row(6, external), resummarised, empty]}
    samples = {s.source_id: s for s in offline_provider.parse(request("sleep", cursor="1"), page)}
    assert set(samples) == {"6", "7"}
    assert samples["6"].value == Decimal(435)
    assert [c.data_type for c in samples["6"].components] == ["sleep_time_in_bed"]
    assert samples["7"].value == Decimal("333.33")
    assert samples["7"].status is SampleStatus.AMENDED


# --- ECG -------------------------------------------------------------------------------------


def _ecg_page(n: int, hz: int, afib: int, model: int = 44) -> dict:
    signal = [((i * 37) % 2001) - 1000 for i in range(n)]  # negative and positive microvolts
    row = {
        "deviceid": BPM,
        "model": model,
        "ecg": {"signalid": 9100, "afib": afib},
        "bloodpressure": {"systole": 131, "diastole": 84},
        "heart_rate": 71,
        "timestamp": 1773651600,
        "modified": 1773651700,
    }
    failed = {"deviceid": BPM, "model": model, "timestamp": 1773650000, "modified": 1773650000}
    got = {"signal": signal, "sampling_frequency": hz, "heart_rate": 71, "model": model,
           "wearposition": 2}  # fmt: skip
    return {"series": [row, failed], "signals": {"9100": got}}


@pytest.mark.parametrize(
    ("afib", "classification", "label"),
    [
        (0, "sinusRhythm", "negative"),
        (1, "atrialFibrillation", "positive"),
        (2, "inconclusiveOther", "inconclusive"),
    ],
)
def test_ecg_keeps_the_full_waveform_and_classifies_the_rhythm(
    offline_provider: WithingsProvider, afib: int, classification: str, label: str
) -> None:
    page = _ecg_page(10_000, 500, afib)
    samples = {s.source_id: s for s in offline_provider.parse(request("ecg", start=0), page)}
    check_vocabulary(samples.values())
    assert set(samples) == {"9100", "9100:bp"}  # the failed recording is skipped
    ecg = samples["9100"]
    assert (ecg.data_type, ecg.record_kind) == ("ecg", "ecg")
    assert ecg.waveform is not None
    assert ecg.waveform.samples == tuple(page["signals"]["9100"]["signal"])  # all, unflipped
    assert len(ecg.waveform.samples) == 10_000
    assert all(type(v) is int for v in ecg.waveform.samples)
    assert ecg.waveform.sampling_hz == Decimal(500)
    assert (ecg.waveform.classification, ecg.waveform.classification_label) == (
        classification,
        label,
    )
    assert ecg.waveform.heart_rate == Decimal(71)
    assert ecg.effective_start == datetime.fromtimestamp(1773651600, UTC)
    assert ecg.effective_end == ecg.effective_start + timedelta(seconds=20)
    assert ecg.device is not None
    assert (ecg.device.device_id, ecg.device.model, ecg.device.model_number) == (
        BPM,
        "BPM Core",
        "44",
    )
    bp = samples["9100:bp"]
    assert (bp.data_type, bp.record_kind) == ("blood_pressure", "ecg")  # not a getmeas group
    assert [(c.data_type, c.value) for c in bp.components] == [
        ("systolic", Decimal(131)),
        ("diastolic", Decimal(84)),
    ]
    assert bp.modality is Modality.SENSED


def test_scanwatch_ecg_lasts_samples_over_frequency(offline_provider: WithingsProvider) -> None:
    page = _ecg_page(9_000, 300, 0, model=93)
    del page["series"][0]["bloodpressure"]
    (ecg,) = offline_provider.parse(request("ecg", start=0), page)
    assert ecg.waveform is not None and len(ecg.waveform.samples) == 9_000
    assert ecg.effective_end == ecg.effective_start + timedelta(seconds=30)
    assert ecg.device is not None and ecg.device.model == "ScanWatch"


def test_ecg_without_its_signal_keeps_the_blood_pressure(
    offline_provider: WithingsProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ohe.providers.withings")
    page = _ecg_page(100, 500, 0)
    page["signals"] = {}
    samples = offline_provider.parse(request("ecg", start=0), page)
    assert [s.source_id for s in samples] == ["9100:bp"]
    assert any(
        getattr(r, "skipped", {}) == {"signal_unavailable": 1, "failed_recording": 1}
        for r in caplog.records
    )
