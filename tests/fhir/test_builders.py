"""Builders: every data type in R5 and R4, validated with full fhir.resources validation."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ohe.fhir.builders import BuildContext, build_observation
from ohe.fhir.codes import CODES, LOINC, SAMPLE_TYPES, Shape
from ohe.fhir.devices import build_association, build_device, end_association
from ohe.fhir.elements import coded, data_type_of
from ohe.fhir.validation import strict_check
from ohe.providers.withings.streams import STREAMS as WITHINGS_STREAMS
from ohe.samples import (
    Component,
    DeviceRef,
    Modality,
    Sample,
    SampleStatus,
    Waveform,
    group_hourly,
    local_day,
)
from tests.fhir.conftest import make_context
from tests.fhir.strategies import devices, samples

PARIS = ZoneInfo("Europe/Paris")
AT = datetime(2026, 3, 4, 8, 15, tzinfo=PARIS)
SCALE = DeviceRef("dev-1", "Withings", "Body+", "5", "Scale", "high", first_seen=AT)

# The data types the FHIR issue names; each must have a row (and so a builder).
REQUIRED_TYPES = {
    "heart_rate", "heart_rate_intraday", "resting_heart_rate", "hrv_sdnn", "hrv_rmssd",
    "rr_intervals", "steps_daily", "steps_interval", "weight", "height", "bmi", "fat_mass",
    "fat_ratio", "fat_free_mass", "muscle_mass", "bone_mass", "hydration", "blood_pressure",
    "spo2", "body_temperature", "skin_temperature", "pulse_wave_velocity", "vo2_max", "ecg",
    "sleep", "glucose", "respiratory_rate",
}  # fmt: skip


def representative(data_type: str) -> Sample:
    """A typical sample of each shape."""
    shape = CODES[data_type].shape
    kwargs: dict = {"device": SCALE}
    if shape in (Shape.QUANTITY, Shape.SUMMARY):
        kwargs["value"] = Decimal("72.350")
    if shape is Shape.PANEL:
        kwargs["components"] = (
            Component("systolic", Decimal(121)),
            Component("diastolic", Decimal(79)),
        )
    if shape is Shape.SUMMARY:
        kwargs["components"] = (
            Component("sleep_deep", Decimal(80)),
            Component("sleep_rem", Decimal(95)),
        )
        kwargs["effective_end"] = AT + timedelta(hours=8)
    if shape is Shape.SAMPLED:
        return group_hourly(
            data_type,
            [(AT + timedelta(minutes=m), Decimal(60 + m % 5)) for m in range(0, 60, 5)],
            source_prefix=data_type,
            device=SCALE,
        )[0]
    if shape is Shape.ECG:
        kwargs["waveform"] = Waveform(
            tuple((i * 37) % 400 - 200 for i in range(10_000)), Decimal(500), "atrialFibrillation",
            "Positive", Decimal(88),
        )  # fmt: skip
        kwargs["effective_end"] = AT + timedelta(seconds=20)
    return Sample(data_type, "measure", f"9001:{data_type}", AT, **kwargs)


def test_the_codes_table_covers_every_required_type() -> None:
    assert REQUIRED_TYPES <= SAMPLE_TYPES
    for row in CODES.values():
        assert row.codes, row.data_type
        assert row.category in {"vital-signs", "activity", "exam", "procedure", "laboratory"}


@pytest.mark.parametrize("data_type", sorted(SAMPLE_TYPES))
@pytest.mark.parametrize("version", ["R5", "R4"])
def test_every_data_type_validates_in_both_versions(data_type: str, version: str) -> None:
    resource = build_observation(representative(data_type), make_context(version))
    strict_check(resource, version)
    assert resource["code"]["coding"][0]["code"] == CODES[data_type].codes[0].code


@pytest.mark.parametrize(
    ("data_type", "code", "unit"),
    [
        ("heart_rate", "8867-4", "/min"), ("weight", "29463-7", "kg"), ("height", "8302-2", "cm"),
        ("skin_temperature", "61008-9", "Cel"), ("body_temperature", "8310-5", "Cel"),
        ("pulse_wave_velocity", "77196-4", "m/s"), ("fat_mass", "73708-0", "kg"),
        ("muscle_mass", "73964-9", "kg"), ("hydration", "101683-1", "kg"),
        ("steps_daily", "41950-7", "/d"), ("glucose", "41653-7", "mg/dL"),
        ("respiratory_rate", "9279-1", "/min"), ("hrv_sdnn", "80404-7", "ms"),
    ],
)  # fmt: skip
def test_codes_and_ucum_units_follow_the_mapping(data_type: str, code: str, unit: str) -> None:
    resource = build_observation(representative(data_type), make_context())
    assert resource["code"]["coding"][0] == {
        **resource["code"]["coding"][0],
        "system": LOINC,
        "code": code,
    }
    assert resource["valueQuantity"]["code"] == unit
    assert resource["valueQuantity"]["system"] == "http://unitsofmeasure.org"


def test_spo2_carries_both_loinc_codes() -> None:
    codes = [
        c["code"]
        for c in build_observation(representative("spo2"), make_context())["code"]["coding"]
    ]
    assert codes == ["2708-6", "59408-5"]


def test_blood_pressure_is_a_panel_with_systolic_then_diastolic(ctx: BuildContext) -> None:
    resource = build_observation(representative("blood_pressure"), ctx)
    assert "valueQuantity" not in resource
    assert [c["code"]["coding"][0]["code"] for c in resource["component"]] == ["8480-6", "8462-4"]
    assert resource["component"][0]["valueQuantity"] == {
        "value": Decimal(121),
        "unit": "mmHg",
        "system": "http://unitsofmeasure.org",
        "code": "mm[Hg]",
    }


def test_values_keep_source_precision_on_the_wire() -> None:
    from ohe.fhir.bundle import dumps

    assert b'"value":72.350' in dumps(build_observation(representative("weight"), make_context()))


def test_sleep_stage_components_use_the_stage_codes() -> None:
    resource = build_observation(representative("sleep"), make_context())
    assert resource["code"]["coding"][0]["code"] == "93832-4"
    assert [c["code"]["coding"][0]["code"] for c in resource["component"]] == ["93831-6", "93829-0"]
    assert resource["effectivePeriod"]["end"] == (AT + timedelta(hours=8)).isoformat()


def test_ecg_keeps_the_full_waveform_first_and_interprets_afib(ctx: BuildContext) -> None:
    resource = build_observation(representative("ecg"), ctx)
    waveform = resource["component"][0]
    assert waveform["code"]["coding"][0]["code"] == "131329"
    assert len(waveform["valueSampledData"]["data"].split()) == 10_000
    assert "lowerLimit" not in waveform["valueSampledData"]
    spacing = "interval" if ctx.version == "R5" else "period"
    assert waveform["valueSampledData"][spacing] == Decimal(2)
    impression = resource["component"][1]
    assert impression["code"]["coding"][0]["code"] == "8601-7"
    assert impression["valueCodeableConcept"]["coding"][0]["code"] == "atrialFibrillation"
    assert impression["valueCodeableConcept"]["text"] == "Positive"
    assert resource["interpretation"][0]["coding"][0]["code"] == "A"
    assert resource["component"][2]["valueQuantity"]["value"] == Decimal(88)


def test_intraday_points_group_into_one_observation_per_hour() -> None:
    points = [(AT + timedelta(minutes=m), Decimal(70)) for m in range(180)]
    hourly = group_hourly("heart_rate_intraday", points, source_prefix="heart_rate")
    assert len(hourly) == 4  # 08:15 local = 07:15 UTC → hours 07, 08, 09, 10 UTC
    full_hour = hourly[1]
    assert full_hour.series.interval == Decimal(60)
    assert len(full_hour.series.values) == 60
    partial = hourly[0]
    assert partial.series.offsets[0] == Decimal(15 * 60)
    r5 = build_observation(partial, make_context("R5"))["valueSampledData"]
    assert "offsets" in r5 and "interval" not in r5
    r4 = build_observation(partial, make_context("R4"))["valueSampledData"]
    assert r4["period"] == Decimal(60000)
    assert r4["data"].split()[:16] == ["E"] * 15 + ["70"]


def test_daily_values_use_the_users_civil_day_across_dst() -> None:
    start, end = local_day(datetime(2026, 3, 29).date(), "Europe/Paris")  # DST starts
    sample = Sample(
        "steps_daily", "activity-day", "2026-03-29:steps", start, end, value=Decimal(9000)
    )
    period = build_observation(sample, make_context())["effectivePeriod"]
    assert period == {"start": "2026-03-29T00:00:00+01:00", "end": "2026-03-29T23:59:59+02:00"}


def test_self_reported_values_are_marked_and_ambiguous_ones_are_not_written(
    ctx: BuildContext,
) -> None:
    manual = Sample(
        "weight",
        "measure",
        "5:1",
        AT,
        value=Decimal(80),
        modality=Modality.SELF_REPORTED,
        device=SCALE,
    )
    resource = build_observation(manual, ctx)
    assert resource["method"]["text"] == "self-reported"
    assert resource["performer"] == [{"reference": "Patient/p-1"}]
    assert "device" not in resource
    strict_check(resource, ctx.version)
    ambiguous = Sample(
        "weight", "measure", "6:1", AT, value=Decimal(80), modality=Modality.AMBIGUOUS
    )
    assert build_observation(ambiguous, ctx) is None


def test_identifiers_are_deterministic_patient_scoped_and_free_of_phi() -> None:
    sample = representative("weight")
    one = build_observation(sample, make_context(scope="aaaaaaaaaaaaaaaa", patient="mrn-123"))
    again = build_observation(sample, make_context(scope="aaaaaaaaaaaaaaaa", patient="mrn-123"))
    other = build_observation(sample, make_context(scope="bbbbbbbbbbbbbbbb", patient="mrn-456"))
    assert one["identifier"] == again["identifier"]
    assert one["identifier"][0]["value"] != other["identifier"][0]["value"]
    assert one["identifier"][0]["system"] == "https://ohe.example.org/fhir/sid/withings/measure"
    assert "mrn-123" not in one["identifier"][0]["value"]


def test_amended_and_deleted_values_keep_their_identifier() -> None:
    base = representative("weight")
    statuses = [
        build_observation(Sample(**{**_fields(base), "status": status}), make_context())
        for status in SampleStatus
    ]
    assert {r["status"] for r in statuses} == {"final", "amended", "entered-in-error"}
    assert len({r["identifier"][0]["value"] for r in statuses}) == 1


def _fields(sample: Sample) -> dict:
    return {name: getattr(sample, name) for name in sample.__slots__}


def test_devices_and_associations_in_r5_and_r4() -> None:
    r5 = make_context("R5")
    device = build_device(SCALE, r5)
    strict_check(device, "R5")
    assert device["displayName"] == "Body+"
    assert device["property"][0]["valueCodeableConcept"]["text"] == "high"
    assert "patient" not in device
    association = build_association(SCALE, r5, "urn:uuid:6f0d3a1e-7d7a-4c53-8a52-3a6f2b0c9d11")
    strict_check(association, "R5")
    assert (
        association["status"]["coding"][0]["system"]
        == "http://hl7.org/fhir/deviceassociation-status"
    )
    assert association["status"]["coding"][0]["code"] == "attached"
    ended = end_association(association, "2026-05-01T00:00:00+00:00")
    strict_check(ended, "R5")
    assert ended["status"]["coding"][0]["code"] == "explanted"
    assert ended["period"]["end"] == "2026-05-01T00:00:00+00:00"

    r4 = make_context("R4")
    device4 = build_device(SCALE, r4)
    strict_check(device4, "R4")
    assert device4["deviceName"] == [{"name": "Body+", "type": "model-name"}]
    assert device4["patient"] == {"reference": "Patient/p-1"}
    with pytest.raises(ValueError, match="only in R5"):
        build_association(SCALE, r4, "Device/1")


def test_observations_reference_their_device_by_a_stable_urn(ctx: BuildContext) -> None:
    one = build_observation(representative("weight"), ctx)
    two = build_observation(representative("fat_mass"), ctx)
    assert one["device"] == two["device"]
    assert one["device"]["reference"].startswith("urn:uuid:")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=samples(), version=st.sampled_from(["R5", "R4"]))
def test_arbitrary_samples_build_without_crashing_and_always_validate(
    sample: Sample, version: str
) -> None:
    resource = build_observation(sample, make_context(version))
    if sample.modality is Modality.AMBIGUOUS:
        assert resource is None
        return
    strict_check(resource, version)


@settings(max_examples=150, deadline=None)
@given(device=devices, version=st.sampled_from(["R5", "R4"]))
def test_arbitrary_devices_validate(device: DeviceRef, version: str) -> None:
    ctx = make_context(version)
    strict_check(build_device(device, ctx), version)
    if version == "R5":
        strict_check(build_association(device, ctx, ctx.device_url(device)), version)


@pytest.mark.parametrize("stream", sorted(WITHINGS_STREAMS))
def test_a_stored_code_maps_back_to_its_data_type_within_a_stream(stream: str) -> None:
    """How the deletion check tells which data type a stored Observation holds."""
    types = WITHINGS_STREAMS[stream].data_types
    local = "https://ohe.example/CodeSystem/ohe-observation"
    for data_type in types:
        assert data_type_of(coded(data_type, local), types, local) == data_type
    assert (
        data_type_of({"coding": [{"system": "http://loinc.org", "code": "0-0"}]}, types, local)
        is None
    )
