"""Sandbox FHIR server: transaction and batch bundles posted to the base URL (atomicity,
processing order, urn:uuid resolution, conditional entries, per-entry answers, speed)."""

from __future__ import annotations

import uuid

from fhir.resources import get_fhir_model_class

from tests.sandbox.conftest import (
    SID,
    FhirServer,
    device,
    device_association,
    entry,
    issues,
    measure,
    measure_token,
    observation,
    transaction,
)

DEVICE_QUERY = f"identifier={SID}/device|dev-1"


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _statuses(bundle: dict) -> list[str]:
    return [e["response"]["status"] for e in bundle["entry"]]


def test_transaction_resolves_urn_uuid_references_everywhere(fhir: FhirServer) -> None:
    device_urn, obs_urn = _urn(), _urn()
    obs = observation(
        "tx-1",
        device={"reference": device_urn},
        extension=[
            {
                "url": "https://ohe.test/ext/source-device",
                "valueReference": {"reference": device_urn},
            }
        ],
    )
    derived = observation("tx-2", derivedFrom=[{"reference": obs_urn}])
    bundle = transaction(
        entry("POST", "Observation", obs, fullUrl=obs_urn),
        entry("POST", "Observation", derived),
        entry("PUT", f"Device?{DEVICE_QUERY}", device("dev-1"), fullUrl=device_urn),
        entry("POST", "DeviceAssociation", device_association("da-1", device_urn)),
    )
    response = fhir.post("", bundle)
    assert response.status_code == 200, response.text
    body = response.json()
    get_fhir_model_class("Bundle").model_validate(body)
    assert body["type"] == "transaction-response"
    assert _statuses(body) == ["201 Created"] * 4  # one answer per entry, in request order
    locations = [e["response"]["location"] for e in body["entry"]]
    assert [loc.split("/")[0] for loc in locations] == [
        "Observation",
        "Observation",
        "Device",
        "DeviceAssociation",
    ]
    for item in body["entry"]:
        assert item["response"]["etag"] == 'W/"1"'
        assert item["response"]["lastModified"]
        assert item["fullUrl"].startswith(fhir.base)
    device_ref = "/".join(locations[2].split("/")[:2])
    obs_ref = "/".join(locations[0].split("/")[:2])
    stored = fhir.get(obs_ref).json()
    assert stored["device"] == {"reference": device_ref}
    assert stored["extension"][0]["valueReference"] == {"reference": device_ref}
    assert fhir.get("/".join(locations[1].split("/")[:2])).json()["derivedFrom"] == [
        {"reference": obs_ref}
    ]
    association = fhir.get("/".join(locations[3].split("/")[:2])).json()
    assert association["device"] == {"reference": device_ref}
    assert all("resource" not in e for e in body["entry"])  # return=minimal is the default


def test_transaction_follows_the_spec_processing_order(fhir: FhirServer) -> None:
    old = fhir.post("Observation", observation("order")).json()["id"]
    bundle = transaction(
        entry("GET", f"Observation?{measure('order')}"),
        entry("PUT", f"Observation?{measure('order-put')}", observation("order-put")),
        entry("POST", "Observation", observation("order", value=60), ifNoneExist=measure("order")),
        entry("DELETE", f"Observation/{old}"),
    )
    body = fhir.post("", bundle).json()
    # DELETE ran first, so the conditional create found nothing and created; GET ran last and
    # sees the new resource. The answers stay in the request's order.
    assert _statuses(body) == ["200 OK", "201 Created", "201 Created", "204 No Content"]
    found = body["entry"][0]["resource"]
    assert found["type"] == "searchset"
    assert [e["resource"]["valueQuantity"]["value"] for e in found["entry"]] == [60]
    assert fhir.get(f"Observation/{old}").status_code == 410
    # The system history, newest first, shows the write order: DELETE, then POST, then PUT.
    history = fhir.get("_history", params={"_count": 3}).json()["entry"]
    assert [e["request"]["method"] for e in history] == ["PUT", "POST", "DELETE"]


def test_failing_entry_rolls_back_the_whole_transaction(fhir: FhirServer) -> None:
    before = fhir.stats()["resources"]
    bundle = transaction(
        entry("PUT", f"Device?{DEVICE_QUERY}", device("dev-1"), fullUrl=_urn()),
        entry("POST", "Observation", observation("ok-1")),
        entry("POST", "Observation", observation("bad", status="bogus")),
        entry("POST", "Observation", observation("ok-2")),
    )
    response = fhir.post("", bundle)
    assert response.status_code == 422
    text = issues(response)
    assert "Bundle.entry[2]" in text
    assert "status" in text
    assert response.json()["issue"][0]["expression"][0] == "Bundle.entry[2]"
    assert fhir.search("Device", _summary="count")["total"] == 0
    assert fhir.search("Observation", _summary="count")["total"] == 0
    assert fhir.stats()["resources"] == before


def test_failing_if_match_rolls_back_earlier_writes(fhir: FhirServer) -> None:
    fhir.put("Observation/fixed", {**observation("fixed"), "id": "fixed"})
    bundle = transaction(
        entry("POST", "Observation", observation("new-one")),
        entry(
            "PUT",
            "Observation/fixed",
            {**observation("fixed", value=1), "id": "fixed"},
            ifMatch='W/"9"',
        ),
    )
    response = fhir.post("", bundle)
    assert response.status_code == 412
    assert "Bundle.entry[1]" in issues(response)
    assert fhir.search("Observation", identifier=measure_token("new-one"))["total"] == 0
    good = transaction(
        entry(
            "PUT",
            "Observation/fixed",
            {**observation("fixed", value=2), "id": "fixed"},
            ifMatch='W/"1"',
        )
    )
    answer = fhir.post("", good).json()
    assert _statuses(answer) == ["200 OK"]
    assert answer["entry"][0]["response"]["etag"] == 'W/"2"'


def test_resending_a_transaction_writes_nothing_new(fhir: FhirServer) -> None:
    device_urn = _urn()
    entries = [entry("PUT", f"Device?{DEVICE_QUERY}", device("dev-1"), fullUrl=device_urn)]
    entries += [
        entry(
            "PUT",
            f"Observation?{measure(f'r{n}')}",
            observation(f"r{n}", device={"reference": device_urn}),
        )
        for n in range(5)
    ]
    first = fhir.post("", transaction(*entries)).json()
    assert _statuses(first) == ["201 Created"] * 6
    fhir.admin("POST", "stats/reset")
    second = fhir.post("", transaction(*entries)).json()
    assert _statuses(second) == ["200 OK"] * 6
    assert [e["response"]["etag"] for e in second["entry"]] == ['W/"1"'] * 6
    assert [e["response"]["location"] for e in second["entry"]] == [
        e["response"]["location"] for e in first["entry"]
    ]
    stats = fhir.stats()
    assert stats["resources"] == {"created": 0, "updated": 0, "unchanged": 6, "deleted": 0}
    assert stats["transactions"] == 1


def test_conditional_entries_answer_by_match_count(fhir: FhirServer) -> None:
    existing = fhir.post("Observation", observation("one")).json()["id"]
    matched = fhir.post(
        "",
        transaction(
            entry("POST", "Observation", observation("one", value=1), ifNoneExist=measure("one"))
        ),
    ).json()
    assert _statuses(matched) == ["200 OK"]
    assert matched["entry"][0]["response"]["location"].startswith(f"Observation/{existing}/")
    fhir.post("Observation", observation("one"))  # now there are two
    several = fhir.post(
        "",
        transaction(
            entry("POST", "Observation", observation("other")),
            entry("PUT", f"Observation?{measure('one')}", observation("one", value=3)),
        ),
    )
    assert several.status_code == 412
    assert "Bundle.entry[1]" in issues(several)
    assert fhir.search("Observation", identifier=measure_token("other"))["total"] == 0
    twice = fhir.post(
        "",
        transaction(
            entry("POST", "Observation", observation("dup"), ifNoneExist=measure("dup")),
            entry("POST", "Observation", observation("dup"), ifNoneExist=measure("dup")),
        ),
    ).json()
    assert _statuses(twice) == ["201 Created", "200 OK"]  # the same conditional create once
    assert fhir.search("Observation", identifier=measure_token("dup"))["total"] == 1


def test_two_entries_writing_one_resource_are_rejected(fhir: FhirServer) -> None:
    same_condition = transaction(
        entry("PUT", f"Observation?{measure('x')}", observation("x")),
        entry("PUT", f"Observation?{measure('x')}", observation("x", value=2)),
    )
    response = fhir.post("", same_condition)
    assert response.status_code == 400
    assert "Bundle.entry[0]" in issues(response)
    same_id = transaction(
        entry("PUT", "Observation/same", {**observation("y"), "id": "same"}),
        entry("PUT", "Observation/same", {**observation("z"), "id": "same"}),
    )
    assert fhir.post("", same_id).status_code == 400
    assert fhir.search("Observation", _summary="count")["total"] == 0


def test_conditional_reference_is_resolved_in_a_transaction(fhir: FhirServer) -> None:
    device_id = fhir.post("Device", device("dev-1")).json()["id"]
    obs = observation("cref", device={"reference": f"Device?{DEVICE_QUERY}"})
    body = fhir.post("", transaction(entry("POST", "Observation", obs))).json()
    location = body["entry"][0]["response"]["location"]
    stored = fhir.get("/".join(location.split("/")[:2])).json()
    assert stored["device"] == {"reference": f"Device/{device_id}"}
    unmatched = observation("cref-2", device={"reference": f"Device?identifier={SID}/device|none"})
    assert fhir.post("", transaction(entry("POST", "Observation", unmatched))).status_code == 412


def test_unresolved_urn_uuid_fails_the_transaction(fhir: FhirServer) -> None:
    dangling = observation("dangling", device={"reference": _urn()})
    response = fhir.post("", transaction(entry("POST", "Observation", dangling)))
    assert response.status_code == 422
    assert "urn:uuid" in issues(response)


def test_prefer_representation_returns_resources_in_the_response(fhir: FhirServer) -> None:
    response = fhir.post(
        "",
        transaction(entry("POST", "Observation", observation("rep"))),
        headers={"Prefer": "return=representation"},
    ).json()
    resource = response["entry"][0]["resource"]
    assert resource["resourceType"] == "Observation"
    assert resource["meta"]["versionId"] == "1"


def test_batch_entries_succeed_or_fail_independently(fhir: FhirServer) -> None:
    fhir.post("Observation", observation("twin"))
    fhir.post("Observation", observation("twin"))
    bundle = transaction(
        entry("POST", "Observation", observation("b-1")),
        entry("POST", "Observation", observation("b-bad", status="bogus")),
        entry("PUT", f"Observation?{measure('twin')}", observation("twin", value=5)),
        entry("POST", "Observation", observation("b-urn", device={"reference": _urn()})),
        entry("GET", f"Observation?{measure('b-1')}"),
        entry("PATCH", "Observation/x", {"resourceType": "Parameters"}),
        kind="batch",
    )
    response = fhir.post("", bundle)
    assert response.status_code == 200
    body = response.json()
    get_fhir_model_class("Bundle").model_validate(body)
    assert body["type"] == "batch-response"
    assert [s.split()[0] for s in _statuses(body)] == ["201", "422", "412", "422", "200", "405"]
    failed = body["entry"][1]["response"]["outcome"]
    assert "Bundle.entry[1]" in failed["issue"][0]["diagnostics"]
    assert body["entry"][4]["resource"]["total"] == 1  # the first entry was kept
    assert fhir.search("Observation", identifier=measure_token("b-bad"))["total"] == 0


def test_bundle_posted_to_bundle_endpoint_is_stored_not_executed(fhir: FhirServer) -> None:
    bundle = transaction(entry("POST", "Observation", observation("stored")))
    response = fhir.post("Bundle", bundle)
    assert response.status_code == 201
    stored = fhir.get(f"Bundle/{response.json()['id']}").json()
    assert stored["type"] == "transaction"
    assert stored["entry"][0]["resource"]["identifier"][0]["value"] == "stored"
    assert fhir.search("Observation", _summary="count")["total"] == 0
    assert fhir.search("Bundle", type="transaction")["total"] == 1


def test_only_transaction_and_batch_can_be_posted_to_the_base(fhir: FhirServer) -> None:
    collection = transaction(kind="collection")
    response = fhir.post("", collection)
    assert response.status_code == 400
    assert "POST [base]/Bundle" in issues(response)
    assert fhir.post("", observation("not-a-bundle")).status_code == 400


def test_transaction_of_200_observations_takes_well_under_a_second(fhir: FhirServer) -> None:
    device_urn = _urn()
    entries = [entry("PUT", f"Device?{DEVICE_QUERY}", device("dev-1"), fullUrl=device_urn)]
    entries += [
        entry(
            "PUT",
            f"Observation?{measure(f'perf-{n}')}",
            observation(f"perf-{n}", value=n, device={"reference": device_urn}),
        )
        for n in range(200)
    ]
    fhir.post("Observation", observation("warm-up"))
    response = fhir.post("", transaction(*entries))
    assert response.status_code == 200
    assert _statuses(response.json()).count("201 Created") == 201
    again = fhir.post("", transaction(*entries))  # 201 conditional lookups, nothing written
    assert _statuses(again.json()).count("200 OK") == 201
