"""``parse`` of getmeas pages: BP panels, attrib rules, exact values, zones, amendments, sources."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest

from ohe.providers.withings import WithingsProvider
from ohe.samples import Modality, Sample, SampleStatus
from tests.providers.withings.payloads import (
    BPM,
    DATE,
    SCALE,
    check_vocabulary,
    getmeas,
    group,
    measure,
    request,
)

MEASURES = request("measures", cursor="1773600000")


def parse(provider: WithingsProvider, *groups: dict, timezone: str = "Europe/Paris") -> list:
    samples = provider.parse(MEASURES, getmeas(*groups, timezone=timezone))
    check_vocabulary(samples)
    return samples


def by_source(samples: list[Sample]) -> dict[str, Sample]:
    keyed = {s.source_id: s for s in samples}
    assert len(keyed) == len(samples), "source ids must be unique within a page"
    return keyed


def test_systolic_and_diastolic_merge_into_one_panel_and_pulse_stays_separate(
    offline_provider: WithingsProvider,
) -> None:
    bp = group(
        501,
        measure(9, 82, 0),
        measure(10, 128, 0),
        measure(11, 64, 0),
        deviceid=BPM,
        model="BPM Core",
        model_id=44,
    )
    samples = by_source(parse(offline_provider, bp))
    assert set(samples) == {"501:bp", "501:11"}
    panel = samples["501:bp"]
    assert panel.data_type == "blood_pressure"
    assert panel.record_kind == "measure"
    assert panel.value is None
    assert [(c.data_type, c.value) for c in panel.components] == [
        ("systolic", Decimal(128)),
        ("diastolic", Decimal(82)),
    ]
    pulse = samples["501:11"]
    assert (pulse.data_type, pulse.value) == ("heart_rate", Decimal(64))
    assert pulse.effective_start == panel.effective_start
    assert pulse.device == panel.device
    assert panel.device is not None
    assert (panel.device.device_id, panel.device.model, panel.device.model_number) == (
        BPM,
        "BPM Core",
        "44",
    )
    assert panel.device.manufacturer == "Withings"


@pytest.mark.parametrize("only", [9, 10])
def test_a_group_with_one_side_of_blood_pressure_yields_no_panel_and_is_logged(
    offline_provider: WithingsProvider, caplog: pytest.LogCaptureFixture, only: int
) -> None:
    caplog.set_level(logging.INFO, logger="ohe.providers.withings")
    samples = parse(offline_provider, group(7, measure(only, 120, 0), measure(11, 70, 0)))
    assert [s.source_id for s in samples] == ["7:11"]
    logged = [r for r in caplog.records if getattr(r, "skipped", None)]
    assert logged and logged[0].skipped == {"one_sided_blood_pressure": 1}


@pytest.mark.parametrize(
    ("attrib", "modality", "has_device"),
    [
        (0, Modality.SENSED, True),
        (5, Modality.SENSED, True),
        (7, Modality.SENSED, True),
        (8, Modality.SENSED, True),
        (15, Modality.SENSED, True),
        (2, Modality.SELF_REPORTED, False),  # typed in the app: never a device's reading
        (4, Modality.SELF_REPORTED, False),  # typed at sign-up
        (1, Modality.AMBIGUOUS, True),  # emitted as such; the transform stage drops it
    ],
)
def test_attrib_rules(
    offline_provider: WithingsProvider, attrib: int, modality: Modality, has_device: bool
) -> None:
    (sample,) = parse(offline_provider, group(9, measure(1, 72500, -3), attrib=attrib))
    assert sample.modality is modality
    assert (sample.device is not None) is has_device


def test_unknown_attrib_is_sensed_but_logged(
    offline_provider: WithingsProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ohe.providers.withings")
    (sample,) = parse(offline_provider, group(9, measure(1, 72500, -3), attrib=10000))
    assert sample.modality is Modality.SENSED
    assert sample.device is not None
    assert any(
        getattr(r, "skipped", {}).get("unknown_attrib_treated_as_sensed") == 1
        for r in caplog.records
    )


@pytest.mark.parametrize(
    "case",
    [
        (1, 65750, -3, "weight", "65.750"),  # the docs' example, source precision kept
        (1, 725, -1, "weight", "72.5"),
        (4, 175, -2, "height", "175"),  # metres → centimetres
        (4, 18, -1, "height", "180"),  # never "1.8E+2"
        (4, 1805, -3, "height", "180.5"),
        (6, 23456, -3, "fat_ratio", "23.456"),
        (71, 3655, -2, "body_temperature", "36.55"),
        (12, 372, -1, "body_temperature", "37.2"),
        (73, 3412, -2, "skin_temperature", "34.12"),
        (54, 97, 0, "spo2", "97"),
        (91, 7123, -3, "pulse_wave_velocity", "7.123"),
        (123, 4210, -2, "vo2_max", "42.10"),
        (77, 1234567890123, -11, "hydration", "12.34567890123"),  # no float could hold this
        (88, 3, 0, "bone_mass", "3"),
        (76, 5, 1, "muscle_mass", "50"),
    ],
)
def test_values_are_value_times_ten_to_the_unit_exactly(
    offline_provider: WithingsProvider, case: tuple[int, int, int, str, str]
) -> None:
    mtype, value, unit, data_type, expected = case
    (sample,) = parse(offline_provider, group(3, measure(mtype, value, unit)))
    assert sample.data_type == data_type
    assert sample.source_id == f"3:{mtype}"
    assert isinstance(sample.value, Decimal)
    assert str(sample.value) == expected


def test_unlisted_meastypes_are_ignored_and_negative_values_dropped(
    offline_provider: WithingsProvider,
) -> None:
    samples = parse(
        offline_provider,
        group(4, measure(1, 70000, -3), measure(130, 1, 0), measure(155, 41, 0)),
        group(5, measure(8, -12000, -3)),
    )
    assert [s.source_id for s in samples] == ["4:1"]


def test_effective_time_is_the_group_date_in_the_users_zone_across_dst(
    offline_provider: WithingsProvider,
) -> None:
    winter = group(1, measure(1, 70000, -3), date=DATE)
    summer = group(2, measure(1, 70000, -3), date=DATE + 122 * 86400)  # 16 July
    samples = by_source(parse(offline_provider, winter, summer))
    assert samples["1:1"].effective_start.utcoffset() == timedelta(hours=1)
    assert samples["1:1"].effective_start.isoformat() == "2026-03-16T10:00:00+01:00"
    assert samples["2:1"].effective_start.utcoffset() == timedelta(hours=2)
    assert samples["2:1"].effective_start.isoformat() == "2026-07-16T11:00:00+02:00"
    (tokyo,) = parse(offline_provider, winter, timezone="Asia/Tokyo")
    assert tokyo.effective_start.isoformat() == "2026-03-16T18:00:00+09:00"
    (fallback,) = parse(offline_provider, winter, timezone="Mars/Olympus_Mons")
    assert fallback.effective_start.utcoffset() == timedelta(0)


def test_a_group_modified_after_creation_is_amended(offline_provider: WithingsProvider) -> None:
    fresh = group(1, measure(1, 70000, -3), created=DATE + 60, modified=DATE + 60)
    edited = group(2, measure(1, 70100, -3), created=DATE + 60, modified=DATE + 7200)
    samples = by_source(parse(offline_provider, fresh, edited))
    assert samples["1:1"].status is SampleStatus.FINAL
    assert samples["2:1"].status is SampleStatus.AMENDED


@pytest.mark.parametrize("model_id", [1051, 1055, 1060, 1063])
def test_groups_from_virtual_sources_are_skipped_and_counted(
    offline_provider: WithingsProvider, caplog: pytest.LogCaptureFixture, model_id: int
) -> None:
    caplog.set_level(logging.INFO, logger="ohe.providers.withings")
    imported = group(8, measure(1, 70000, -3), deviceid="apple", model="x", model_id=model_id)
    own = group(9, measure(1, 71000, -3))
    samples = parse(offline_provider, imported, own)
    assert [s.source_id for s in samples] == ["9:1"]
    assert any(getattr(r, "skipped", {}) == {"virtual_source": 1} for r in caplog.records)


def test_manual_group_without_device_and_goals(offline_provider: WithingsProvider) -> None:
    manual = group(11, measure(1, 701, -1), attrib=2, deviceid=None, model=None, model_id=None)
    goal = group(12, measure(1, 65000, -3), category=2)
    (sample,) = parse(offline_provider, manual, goal)
    assert sample.source_id == "11:1"
    assert sample.device is None
    assert sample.modality is Modality.SELF_REPORTED


def test_a_malformed_group_is_skipped_and_the_page_survives(
    offline_provider: WithingsProvider,
) -> None:
    broken = group(13, measure(1, 70000, -3))
    del broken["date"]
    weird_unit = group(14, {"value": 70000, "type": 1, "unit": "kg"})
    samples = parse(offline_provider, broken, weird_unit, group(15, measure(1, 70000, -3)))
    assert [s.source_id for s in samples] == ["15:1"]


def test_scale_weigh_in_yields_one_sample_per_meastype_with_the_scale(
    offline_provider: WithingsProvider,
) -> None:
    weigh_in = group(
        20,
        *(measure(t, v, -2) for t, v in ((1, 7250), (5, 5600), (6, 2276), (8, 1650))),
        *(measure(t, v, -2) for t, v in ((76, 5300), (77, 4000), (88, 300), (91, 712))),
        measure(11, 61, 0),
    )
    samples = by_source(parse(offline_provider, weigh_in))
    assert {s.data_type for s in samples.values()} == {
        "weight",
        "fat_free_mass",
        "fat_ratio",
        "fat_mass",
        "muscle_mass",
        "hydration",
        "bone_mass",
        "pulse_wave_velocity",
        "heart_rate",
    }
    assert {s.device.device_id for s in samples.values() if s.device} == {SCALE}
