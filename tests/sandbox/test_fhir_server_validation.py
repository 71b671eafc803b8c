"""Sandbox FHIR server: inbound validation in R5 and R4 mode (fhir.resources models plus the
bindings, invariants and reference rules the models do not check)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.conftest import (
    SID,
    FhirServer,
    device,
    device_association,
    entry,
    issues,
    observation,
    transaction,
)


def _sampled(**grid: Any) -> dict:
    data = {
        "origin": {"value": 0, "unit": "/min", "code": "/min"},
        "dimensions": 1,
        "data": "60 61",
    }
    return observation("series", valueSampledData={**data, **grid}, valueQuantity=None)


def _without(resource: dict, *keys: str) -> dict:
    return {k: v for k, v in resource.items() if k not in keys and v is not None}


R4_DEVICE = {
    "resourceType": "Device",
    "identifier": [{"system": f"{SID}/device", "value": "r4"}],
    "status": "unknown",
    "deviceName": [{"name": "BPM Core", "type": "model-name"}],
    "patient": {"reference": "Patient/p1"},
}

ACCEPTED_R5 = [
    observation("ok"),
    _without(_sampled(interval=1, intervalUnit="s"), "valueQuantity"),
    _without(_sampled(offsets="0 1", intervalUnit="s"), "valueQuantity"),
    device("ok", name=[{"value": "BPM Core", "type": "registered-name"}]),
    device_association("ok", "Device/d1"),
    {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "1"}]},
]

REJECTED_R5 = [
    # (resource type, resource, status, what the diagnostics must name)
    ("Observation", observation("x", status="bogus"), 422, "Observation.status 'bogus'"),
    ("Observation", _without(observation("x"), "status"), 422, "Observation.status is required"),
    ("Observation", observation("x", colour="red"), 422, "Observation.colour is not an element"),
    ("Observation", observation("x", valueQuantity="72 bpm"), 422, "Observation.valueQuantity"),
    ("Observation", observation("x", when="2026-03-04T10:00:00"), 422, "effectiveDateTime"),
    ("Observation", observation("x", subject={"reference": "p1"}), 422, "not of the form Type/id"),
    ("Observation", observation("x", device={"reference": "urn:uuid:0"}), 422, "urn:uuid"),
    (
        "Observation",
        _without(_sampled(interval=1, offsets="0 1", intervalUnit="s"), "valueQuantity"),
        422,
        "sdd-1",
    ),
    ("Observation", _without(_sampled(period=1), "valueQuantity"), 422, "period"),  # R4 only
    ("Device", device("x", deviceName=[{"name": "n", "type": "model-name"}]), 422, "deviceName"),
    ("Device", device("x", status="unknown"), 422, "Device.status 'unknown'"),  # R4 only code
    ("Device", device("x", patient={"reference": "Patient/p1"}), 422, "Device.patient"),
    ("DeviceAssociation", _without(device_association("x", "Device/d1"), "status"), 422, "status"),
    (
        "DeviceAssociation",
        device_association(
            "x",
            "Device/d1",
            status={
                "coding": [
                    {"system": "http://hl7.org/fhir/device-association-status", "code": "attached"}
                ]
            },
        ),
        422,
        "deviceassociation-status",
    ),
    (
        "DeviceAssociation",
        device_association("x", "Device/d1", operator={"reference": "Patient/p1"}),
        422,
        "operator",
    ),
    ("Bundle", {"resourceType": "Bundle", "type": "pile"}, 422, "Bundle.type 'pile'"),
    ("Observation", {"status": "final"}, 400, "no resourceType"),
    ("Observation", ["not", "an", "object"], 400, "JSON object"),
]


@pytest.mark.parametrize("resource", ACCEPTED_R5, ids=lambda r: r["resourceType"])
def test_valid_r5_resources_are_accepted(fhir: FhirServer, resource: dict) -> None:
    response = fhir.post(resource["resourceType"], resource)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("resource_type", "resource", "status", "fragment"), REJECTED_R5)
def test_invalid_r5_resources_are_rejected_with_an_outcome(
    fhir: FhirServer, resource_type: str, resource: Any, status: int, fragment: str
) -> None:
    response = fhir.post(resource_type, resource)
    assert response.status_code == status, response.text
    assert fragment in issues(response)
    assert fhir.search(resource_type, _summary="count")["total"] == 0


def test_updates_are_validated_too(fhir: FhirServer) -> None:
    fhir.put("Observation/v1", {**observation("v1"), "id": "v1"})
    bad = fhir.put("Observation/v1", {**observation("v1", status="done"), "id": "v1"})
    assert bad.status_code == 422
    assert fhir.get("Observation/v1").json()["status"] == "final"
    bad_conditional = fhir.put(f"Observation?identifier={SID}/measure|v1", observation("v1", x=1))
    assert bad_conditional.status_code == 422


def test_resources_inside_a_stored_bundle_are_validated(fhir: FhirServer) -> None:
    bundle = transaction(entry("POST", "Observation", observation("in-bundle", status="bogus")))
    response = fhir.post("Bundle", bundle)
    assert response.status_code == 422
    assert "Bundle.entry[0].resource.status" in issues(response)


def test_r4_mode_accepts_r4_and_rejects_r5_content(fhir_r4: FhirServer) -> None:
    assert fhir_r4.post("Device", R4_DEVICE).status_code == 201
    assert fhir_r4.post("Observation", observation("r4")).status_code == 201
    r5_device = fhir_r4.post("Device", device("r5"))
    assert r5_device.status_code == 422
    assert "Device.displayName is not an element of Device in FHIR R4" in issues(r5_device)
    r5_sampled = _without(_sampled(interval=1, intervalUnit="s"), "valueQuantity")
    response = fhir_r4.post("Observation", r5_sampled)
    assert response.status_code == 422
    assert "interval" in issues(response)
    r4_sampled = _without(_sampled(period=1000), "valueQuantity")
    assert fhir_r4.post("Observation", r4_sampled).status_code == 201  # no sdd-1 in R4
    association = fhir_r4.post("DeviceAssociation", device_association("r4", "Device/d1"))
    assert association.status_code == 404
    assert "not supported" in issues(association)
    r5_bundle_type = {"resourceType": "Bundle", "type": "subscription-notification"}
    assert fhir_r4.post("Bundle", r5_bundle_type).status_code == 422


def test_r5_device_status_unknown_differs_from_r4(fhir: FhirServer, fhir_r4: FhirServer) -> None:
    r5 = fhir.post("Device", {**device("s"), "status": "unknown"})
    r4 = fhir_r4.post("Device", {**_without(device("s"), "displayName"), "status": "unknown"})
    assert (r5.status_code, r4.status_code) == (422, 201)
