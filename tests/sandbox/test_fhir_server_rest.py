"""Sandbox FHIR server: RESTful interactions over real HTTP (read, create, update, delete,
conditional operations, versions and ETags, history, Prefer, capability statement, errors)."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import pytest
from fhir.resources import get_fhir_model_class
from fhir.resources.R4B import get_fhir_model_class as get_r4_model_class

from tests.sandbox.conftest import FhirServer, device, issues, measure, measure_token, observation


def _id_from_location(location: str, base: str) -> str:
    match = re.fullmatch(rf"{re.escape(base)}/Observation/([A-Za-z0-9\-.]+)/_history/1", location)
    assert match, location
    return match[1]


def test_capability_statement_describes_r5_and_r4(fhir: FhirServer, fhir_r4: FhirServer) -> None:
    r5 = fhir.get("metadata")
    r4 = fhir_r4.get("metadata")
    assert r5.headers["Content-Type"].startswith("application/fhir+json")
    statement5 = get_fhir_model_class("CapabilityStatement").model_validate(r5.json())
    statement4 = get_r4_model_class("CapabilityStatement").model_validate(r4.json())
    assert statement5.fhirVersion == "5.0.0"
    assert statement4.fhirVersion == "4.0.1"
    types5 = {r["type"]: r for r in r5.json()["rest"][0]["resource"]}
    types4 = {r["type"] for r in r4.json()["rest"][0]["resource"]}
    assert {"Observation", "Device", "DeviceAssociation"} <= set(types5)
    assert "DeviceAssociation" not in types4
    observation_params = {p["name"] for p in types5["Observation"]["searchParam"]}
    assert {
        "identifier",
        "subject",
        "patient",
        "code",
        "date",
        "_lastUpdated",
    } <= observation_params
    assert types5["Observation"]["conditionalUpdate"] is True
    system = {i["code"] for i in r5.json()["rest"][0]["interaction"]}
    assert {"transaction", "batch"} <= system


def test_create_assigns_id_and_version_then_read_and_vread(fhir: FhirServer) -> None:
    created = fhir.post("Observation", {**observation("a"), "id": "client-chosen"})
    assert created.status_code == 201, created.text
    rid = _id_from_location(created.headers["Location"], fhir.base)
    assert rid != "client-chosen"  # a client id sent with POST is ignored
    assert created.headers["ETag"] == 'W/"1"'
    assert parsedate_to_datetime(created.headers["Last-Modified"]).year >= 2024
    body = created.json()
    assert body["id"] == rid
    assert body["meta"]["versionId"] == "1"

    read = fhir.get(f"Observation/{rid}")
    assert read.status_code == 200
    assert read.headers["ETag"] == 'W/"1"'
    assert read.json() == body
    assert fhir.get(f"Observation/{rid}/_history/1").json() == body
    missing_version = fhir.get(f"Observation/{rid}/_history/7")
    assert missing_version.status_code == 404
    assert "not known" in issues(missing_version)
    assert fhir.get("Observation/does-not-exist").status_code == 404


def test_update_creates_versions_but_identical_content_keeps_the_version(fhir: FhirServer) -> None:
    resource = {**observation("b"), "id": "obs-b"}
    first = fhir.put("Observation/obs-b", resource)
    assert first.status_code == 201  # update-as-create at a client id
    assert first.headers["ETag"] == 'W/"1"'
    before = fhir.stats()["resources"]

    again = fhir.put("Observation/obs-b", {**resource, "meta": {"versionId": "1"}})
    assert again.status_code == 200
    assert again.headers["ETag"] == 'W/"1"'
    assert again.json()["meta"]["lastUpdated"] == first.json()["meta"]["lastUpdated"]
    after = fhir.stats()["resources"]
    assert after["unchanged"] == before["unchanged"] + 1
    assert after["updated"] == before["updated"]

    changed = fhir.put("Observation/obs-b", {**resource, "status": "amended"})
    assert changed.status_code == 200
    assert changed.headers["ETag"] == 'W/"2"'
    assert fhir.get("Observation/obs-b/_history/1").json()["status"] == "final"
    assert fhir.get("Observation/obs-b").json()["status"] == "amended"
    history = fhir.get("Observation/obs-b/_history").json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]


def test_if_match_guards_updates_and_deletes(fhir: FhirServer) -> None:
    resource = {**observation("c"), "id": "obs-c"}
    fhir.put("Observation/obs-c", resource)
    fhir.put("Observation/obs-c", {**resource, "status": "amended"})
    stale = fhir.put("Observation/obs-c", resource, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert 'W/"2"' in issues(stale)
    current = fhir.put("Observation/obs-c", resource, headers={"If-Match": 'W/"2"'})
    assert current.status_code == 200
    assert current.headers["ETag"] == 'W/"3"'
    assert fhir.delete("Observation/obs-c", headers={"If-Match": 'W/"2"'}).status_code == 412
    assert fhir.delete("Observation/obs-c", headers={"If-Match": 'W/"3"'}).status_code == 204


def test_update_rejects_mismatched_id_or_type(fhir: FhirServer) -> None:
    wrong_id = fhir.put("Observation/one", {**observation("d"), "id": "two"})
    assert wrong_id.status_code == 400
    assert "'one'" in issues(wrong_id)
    no_id = fhir.put("Observation/one", observation("d"))
    assert no_id.status_code == 400
    wrong_type = fhir.put("Observation/one", {**device("x"), "id": "one"})
    assert wrong_type.status_code == 400
    assert "Device" in issues(wrong_type)


def test_delete_answers_gone_and_keeps_history(fhir: FhirServer) -> None:
    rid = fhir.post("Observation", observation("e")).json()["id"]
    deleted = fhir.delete(f"Observation/{rid}")
    assert deleted.status_code == 204
    assert deleted.headers["ETag"] == 'W/"2"'
    gone = fhir.get(f"Observation/{rid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert fhir.get(f"Observation/{rid}/_history/1").status_code == 200
    assert fhir.get(f"Observation/{rid}/_history/2").status_code == 410
    assert fhir.search("Observation", identifier=measure_token("e"))["total"] == 0
    history = fhir.get(f"Observation/{rid}/_history").json()["entry"]
    assert history[0]["request"] == {"method": "DELETE", "url": f"Observation/{rid}"}
    assert "resource" not in history[0]
    assert fhir.delete(f"Observation/{rid}").status_code == 204  # idempotent, no new version
    assert fhir.get(f"Observation/{rid}/_history").json()["total"] == 2
    revived = fhir.put(f"Observation/{rid}", {**observation("e"), "id": rid})
    assert revived.status_code == 201
    assert revived.headers["ETag"] == 'W/"3"'
    assert fhir.delete("Observation/never-existed").status_code == 404


def test_conditional_create_answers_by_match_count(fhir: FhirServer) -> None:
    header = {"If-None-Exist": measure("f")}
    first = fhir.post("Observation", observation("f"), headers=header)
    assert first.status_code == 201
    second = fhir.post("Observation", observation("f", value=99), headers=header)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["valueQuantity"]["value"] == 72  # the existing one, unchanged
    assert second.headers["ETag"] == 'W/"1"'
    fhir.post("Observation", observation("f"))  # a plain create makes a duplicate
    third = fhir.post("Observation", observation("f"), headers=header)
    assert third.status_code == 412
    assert third.json()["issue"][0]["code"] == "multiple-matches"
    assert fhir.search("Observation", identifier=measure_token("f"))["total"] == 2


def test_conditional_update_answers_by_match_count(fhir: FhirServer) -> None:
    query = measure("g")
    created = fhir.put(f"Observation?{query}", observation("g"))
    assert created.status_code == 201
    rid = created.json()["id"]
    updated = fhir.put(f"Observation?{query}", observation("g", value=80))
    assert updated.status_code == 200
    assert updated.json()["id"] == rid
    assert updated.headers["ETag"] == 'W/"2"'
    mismatched = fhir.put(f"Observation?{query}", {**observation("g"), "id": "other"})
    assert mismatched.status_code == 400
    fhir.post("Observation", observation("g"))
    several = fhir.put(f"Observation?{query}", observation("g", value=81))
    assert several.status_code == 412
    assert fhir.get(f"Observation/{rid}").json()["valueQuantity"]["value"] == 80
    unconditional = fhir.put("Observation", observation("g"))
    assert unconditional.status_code == 400  # a condition with no criteria would match all


def test_conditional_delete(fhir: FhirServer) -> None:
    assert fhir.delete(f"Observation?{measure('h')}").status_code == 204  # nothing matched
    rid = fhir.post("Observation", observation("h")).json()["id"]
    assert fhir.delete(f"Observation?{measure('h')}").status_code == 204
    assert fhir.get(f"Observation/{rid}").status_code == 410
    fhir.post("Observation", observation("i"))
    fhir.post("Observation", observation("i"))
    assert fhir.delete(f"Observation?{measure('i')}").status_code == 412


@pytest.mark.parametrize("prefer", ["return=minimal", "return=representation", None])
def test_prefer_header_shapes_write_answers(fhir: FhirServer, prefer: str | None) -> None:
    headers = {"Prefer": prefer} if prefer else {}
    response = fhir.post("Observation", observation("j"), headers=headers)
    assert response.status_code == 201
    assert response.headers["Location"].startswith(f"{fhir.base}/Observation/")
    if prefer == "return=minimal":
        assert response.content == b""
    else:
        assert response.json()["resourceType"] == "Observation"


def test_prefer_operation_outcome(fhir: FhirServer) -> None:
    response = fhir.post(
        "Observation", observation("k"), headers={"Prefer": "return=OperationOutcome"}
    )
    assert response.status_code == 201
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["severity"] == "information"


def test_type_and_instance_history_with_paging_and_since(fhir: FhirServer) -> None:
    ids = [fhir.post("Observation", observation(f"hist-{n}")).json()["id"] for n in range(3)]
    middle = fhir.get(f"Observation/{ids[1]}").json()["meta"]["lastUpdated"]
    fhir.put(f"Observation/{ids[0]}", {**observation("hist-0", value=1), "id": ids[0]})
    fhir.post("Device", device("hist-device"))

    page = fhir.get("Observation/_history", params={"_count": 2}).json()
    get_fhir_model_class("Bundle").model_validate(page)
    assert page["total"] == 4
    assert len(page["entry"]) == 2
    assert page["entry"][0]["resource"]["id"] == ids[0]  # newest first
    assert page["entry"][0]["request"]["method"] == "PUT"
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = fhir.http.get(following, timeout=10).json()
    assert len(rest["entry"]) == 2
    assert "next" not in {link["relation"] for link in rest["link"]}
    since = fhir.get("Observation/_history", params={"_since": middle}).json()
    assert {e["resource"]["id"] for e in since["entry"]} == {ids[0], ids[1], ids[2]}
    assert since["total"] == 3
    assert fhir.get("_history").json()["total"] == 5  # system level includes the Device
    assert fhir.get("Observation/nope/_history").status_code == 404


def test_errors_are_operation_outcomes(fhir: FhirServer, fhir_r4: FhirServer) -> None:
    outcome_model = get_fhir_model_class("OperationOutcome")
    url = f"{fhir.base}/Observation"
    json_type = {"Content-Type": "application/fhir+json"}
    xml_type = {"Content-Type": "application/fhir+xml"}
    cases = [
        (fhir.get("Medication/1"), 404),
        (fhir_r4.post("DeviceAssociation", {"resourceType": "DeviceAssociation"}), 404),
        (fhir.http.patch(f"{fhir.base}/Observation/1", json=[], timeout=10), 405),
        (fhir.http.post(url, data=b"{not json", headers=json_type, timeout=10), 400),
        (fhir.http.post(url, data=b"<Observation/>", headers=xml_type, timeout=10), 415),
        (fhir.get("Observation", params={"_format": "xml"}), 406),
        (fhir.post("Observation", None), 400),
        (fhir.get("Observation/bad id!"), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["Content-Type"].startswith("application/fhir+json")
        outcome_model.model_validate(response.json())
