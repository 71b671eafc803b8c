"""Sandbox FHIR server: search over token, reference and date parameters, paging, counts,
strict parameter handling, and index use for conditional lookups.

One server is seeded once for the module. Expected matches are written out per case, with the
reasoning from the FHIR search rules (a date means its whole precision range) beside them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fhir.resources import get_fhir_model_class

from ohe.sandbox.fhir import search
from ohe.sandbox.fhir.catalog import R5
from ohe.sandbox.fhir.indexing import indexer
from ohe.sandbox.fhir.store import Store
from tests.sandbox.conftest import (
    CATEGORY,
    LOINC,
    SID,
    FhirServer,
    ThreadedServer,
    device,
    device_association,
    issues,
    observation,
)

DA_STATUS = "http://hl7.org/fhir/deviceassociation-status"

# key: (patient, code, category, status, effective, device)
SEEDS = {
    "s1": ("p1", "8867-4", "vital-signs", "final", "2026-03-03T23:30:00Z", "d1"),
    "s2": ("p1", "8867-4", "vital-signs", "final", "2026-03-04T00:00:00Z", "d1"),
    "s3": ("p1", "8480-6", "vital-signs", "amended", "2026-03-04T12:15:30+02:00", None),
    "s4": ("p2", "8867-4", "vital-signs", "final", "2026-03-04T23:59:59Z", "d2"),
    # a local day in UTC+1: 2026-03-03T23:00Z .. 2026-03-04T23:00:00Z (end inclusive to the second)
    "s5": (
        "p2",
        "41950-7",
        "activity",
        "final",
        ("2026-03-04T00:00:00+01:00", "2026-03-04T23:59:59+01:00"),
        None,
    ),
    "s6": ("p2", "41950-7", "activity", "entered-in-error", ("2026-03-05", "2026-03-05"), None),
    "s7": ("p1", "8867-4", "vital-signs", "final", "2026-03-06T08:00:00Z", None),
    "s8": ("p1", "local-1", "exam", "final", "2026-03-04", None),  # a date: the whole day
}
ALL = set(SEEDS)
P1 = {k for k, seed in SEEDS.items() if seed[0] == "p1"}


def _build(key: str) -> dict:
    patient, code, category, status, when, device_id = SEEDS[key]
    resource = observation(key, patient=patient, code=code, category=category, status=status)
    if code == "local-1":
        resource["code"] = {"coding": [{"code": code}], "text": "a code without a system"}
    if isinstance(when, tuple):
        del resource["effectiveDateTime"]
        resource["effectivePeriod"] = {"start": when[0], "end": when[1]}
    else:
        resource["effectiveDateTime"] = when
    if device_id:
        resource["device"] = {"reference": f"Device/{device_id}"}
    return resource


class Seeded:
    def __init__(self, server: FhirServer) -> None:
        self.server = server
        self.keys: dict[str, str] = {}  # resource id -> seed key
        for device_id in ("d1", "d2"):
            server.put(f"Device/{device_id}", {**device(device_id), "id": device_id})
        for key in ("s1", "s2", "s3", "s4"):
            self.keys[server.post("Observation", _build(key)).json()["id"]] = key
        last = server.get(f"Observation/{self.id_of('s4')}").json()
        self.marker = last["meta"]["lastUpdated"]  # everything after it: s5..s8
        for key in ("s5", "s6", "s7", "s8"):
            self.keys[server.post("Observation", _build(key)).json()["id"]] = key
        associations = [("da1", "d1", "p1", "attached"), ("da2", "d2", "p2", "attached")]
        associations.append(("da3", "d1", "p1", "explanted"))
        for key, device_id, patient, status in associations:
            resource = device_association(key, f"Device/{device_id}", patient)
            resource["status"]["coding"][0]["code"] = status
            server.post("DeviceAssociation", resource)

    def id_of(self, key: str) -> str:
        return next(rid for rid, k in self.keys.items() if k == key)

    def find(self, resource_type: str = "Observation", **params: str) -> set[str]:
        found = self.server.ids(resource_type, **params)
        if resource_type == "Observation":
            return {self.keys[rid] for rid in found}
        return {
            self.server.get(f"{resource_type}/{rid}").json()["identifier"][0]["value"]
            for rid in found
        }


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    running = ThreadedServer.start(tmp_path_factory.mktemp("search") / "fhir.db")
    yield Seeded(running.fhir)
    running.stop()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"code": "8867-4"}, {"s1", "s2", "s4", "s7"}),
        ({"code": f"{LOINC}|8867-4"}, {"s1", "s2", "s4", "s7"}),
        ({"code": "http://snomed.info/sct|8867-4"}, set()),
        ({"code": "|local-1"}, {"s8"}),  # explicitly no system
        ({"code": "local-1"}, {"s8"}),
        ({"code": f"{LOINC}|"}, ALL - {"s8"}),  # any code of that system
        ({"code": "8867-4,8480-6"}, {"s1", "s2", "s3", "s4", "s7"}),  # comma = OR
        ({"category": "activity"}, {"s5", "s6"}),
        ({"category": f"{CATEGORY}|vital-signs", "code": "8480-6"}, {"s3"}),  # AND
        ({"status": "final"}, {"s1", "s2", "s4", "s5", "s7", "s8"}),
        ({"status": "http://hl7.org/fhir/observation-status|amended"}, {"s3"}),
        ({"status:not": "final"}, {"s3", "s6"}),
        ({"identifier": f"{SID}/measure|s3"}, {"s3"}),
        ({"identifier": "s3"}, {"s3"}),
        ({"identifier": f"{SID}/measure|"}, ALL),
        ({"identifier": f"{SID}/device|s3"}, set()),
    ],
)
def test_token_search(seeded: Seeded, params: dict[str, str], expected: set[str]) -> None:
    assert seeded.find(**params) == expected


def test_id_search(seeded: Seeded) -> None:
    ids = f"{seeded.id_of('s1')},{seeded.id_of('s2')}"
    assert seeded.find(_id=ids) == {"s1", "s2"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"subject": "Patient/p1"}, P1),
        ({"subject": "p2"}, ALL - P1),
        ({"patient": "p2"}, ALL - P1),
        ({"subject:Patient": "p1"}, P1),
        ({"subject": "Group/p1"}, set()),
        ({"device": "Device/d1"}, {"s1", "s2"}),
        ({"device": "d2"}, {"s4"}),
        ({"device:missing": "true"}, {"s3", "s5", "s6", "s7", "s8"}),
        ({"device:missing": "false"}, {"s1", "s2", "s4"}),
        ({"patient": "p1", "code": "8867-4"}, {"s1", "s2", "s7"}),
    ],
)
def test_reference_search(seeded: Seeded, params: dict[str, str], expected: set[str]) -> None:
    assert seeded.find(**params) == expected


def test_absolute_reference_value(seeded: Seeded) -> None:
    assert seeded.find(subject=f"{seeded.server.base}/Patient/p1") == P1


# The search day 2026-03-04 is [03-04T00:00Z, 03-05T00:00Z). s1 ends before it, s5 straddles its
# start, s2/s3/s4/s8 lie inside it, s6 (the whole of 03-05) and s7 lie after it.
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-04", {"s2", "s3", "s4", "s8"}),
        ("eq2026-03-04", {"s2", "s3", "s4", "s8"}),
        ("ne2026-03-04", {"s1", "s5", "s6", "s7"}),
        ("gt2026-03-04", {"s6", "s7"}),  # ends after the day
        ("lt2026-03-04", {"s1", "s5"}),  # starts before the day
        ("ge2026-03-04", {"s2", "s3", "s4", "s6", "s7", "s8"}),
        ("le2026-03-04", {"s1", "s2", "s3", "s4", "s5", "s8"}),
        ("sa2026-03-04", {"s6", "s7"}),  # starts after the day ends
        ("eb2026-03-04", {"s1"}),  # ends before the day starts
        ("2026-03-05", {"s6"}),
        ("2026-03", ALL),
        ("2026", ALL),
        ("2025", set()),
        ("2026-03-04T12:15:30+02:00", {"s3"}),  # the same instant as 10:15:30Z
        ("2026-03-04T10:15:30Z", {"s3"}),
        # s8 (the whole day) reaches beyond 10:15:30, so it overlaps the range above it
        ("ge2026-03-04T10:15:30Z", {"s3", "s4", "s5", "s6", "s7", "s8"}),
        ("gt2026-03-04T10:15Z", {"s4", "s5", "s6", "s7", "s8"}),  # minute precision
        ("lt2026-03-04T10:15:30Z", {"s1", "s2", "s5", "s8"}),
    ],
)
def test_date_search_is_precision_aware(seeded: Seeded, value: str, expected: set[str]) -> None:
    assert seeded.find(date=value) == expected


def test_repeated_date_parameters_are_anded(seeded: Seeded) -> None:
    found = seeded.server.ids("Observation", date=["ge2026-03-04", "lt2026-03-05"])
    assert {seeded.keys[rid] for rid in found} == {"s2", "s3", "s4", "s8"}


def test_last_updated_search(seeded: Seeded) -> None:
    assert seeded.find(_lastUpdated=f"gt{seeded.marker}") == {"s5", "s6", "s7", "s8"}
    assert seeded.find(_lastUpdated=f"le{seeded.marker}") == {"s1", "s2", "s3", "s4"}
    assert seeded.find(_lastUpdated="ge2020-01-01") == ALL


def test_paging_follows_next_links_without_gaps(seeded: Seeded) -> None:
    server = seeded.server
    page = server.search("Observation", _count=3)
    assert page["total"] == len(SEEDS)
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        assert len(page.get("entry", [])) <= 3
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        relations = {link["relation"]: link["url"] for link in page["link"]}
        assert relations["self"].startswith(f"{server.base}/Observation?")
        if pages > 1:
            assert "previous" in relations
        if "next" not in relations:
            break
        page = server.http.get(relations["next"], timeout=10).json()
    assert pages == 3
    assert len(seen) == len(set(seen)) == len(SEEDS)
    assert {seeded.keys[rid] for rid in seen} == ALL


def test_searchset_is_valid_fhir(seeded: Seeded) -> None:
    bundle = seeded.server.search("Observation", patient="p1", _count=2)
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "searchset"
    assert bundle["total"] == len(P1)
    for item in bundle["entry"]:
        assert item["search"]["mode"] == "match"
        assert item["fullUrl"] == f"{seeded.server.base}/Observation/{item['resource']['id']}"


def test_summary_count_and_sort(seeded: Seeded) -> None:
    counted = seeded.server.search("Observation", category="activity", _summary="count")
    assert counted["total"] == 2
    assert "entry" not in counted
    newest_first = seeded.server.search("Observation", _sort="-_lastUpdated")
    order = [seeded.keys[e["resource"]["id"]] for e in newest_first["entry"]]
    assert order == ["s8", "s7", "s6", "s5", "s4", "s3", "s2", "s1"]
    capped = seeded.server.search("Observation", _count=5000)
    assert "_count=1000" in capped["link"][0]["url"]


def test_post_search_with_form_parameters(seeded: Seeded) -> None:
    server = seeded.server
    posted = server.http.post(
        f"{server.base}/Observation/_search", data={"code": "8867-4", "patient": "p1"}, timeout=10
    )
    assert posted.status_code == 200
    found = {seeded.keys[e["resource"]["id"]] for e in posted.json()["entry"]}
    assert found == seeded.find(code="8867-4", patient="p1") == {"s1", "s2", "s7"}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"colour": "red"}, "unknown search parameter 'colour'"),
        ({"code:exact": "8867-4"}, "modifier :exact"),
        ({"date": "03/04/2026"}, "not a valid date"),
        ({"date": "xx2026-03-04"}, "not a valid date"),
        ({"_count": "many"}, "_count"),
        ({"_summary": "true"}, "_summary"),
        ({"_sort": "colour"}, "_sort"),
        ({"subject": "not/a/reference"}, "not a reference"),
        ({"device:missing": "maybe"}, "true or false"),
    ],
)
def test_unsupported_search_input_is_a_400(
    seeded: Seeded, params: dict[str, str], fragment: str
) -> None:
    response = seeded.server.get("Observation", params=params)
    assert response.status_code == 400
    assert fragment in issues(response)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "attached"}, {"da1", "da2"}),
        ({"status": f"{DA_STATUS}|explanted"}, {"da3"}),
        ({"device": "Device/d1"}, {"da1", "da3"}),
        ({"patient": "p2"}, {"da2"}),
        ({"subject": "Patient/p1", "status": "attached"}, {"da1"}),
        ({"identifier": f"{SID}/device-association|da2"}, {"da2"}),
    ],
)
def test_device_association_search(
    seeded: Seeded, params: dict[str, str], expected: set[str]
) -> None:
    assert seeded.find("DeviceAssociation", **params) == expected


def test_device_search(seeded: Seeded) -> None:
    assert seeded.find("Device", status="active") == {"d1", "d2"}
    assert seeded.find("Device", identifier=f"{SID}/device|d2") == {"d2"}
    response = seeded.server.get("Device", params={"patient": "p1"})
    assert response.status_code == 400  # R5 Device has no patient


def test_r4_device_patient_search(fhir_r4: FhirServer) -> None:
    r4_device = {
        "resourceType": "Device",
        "status": "active",
        "patient": {"reference": "Patient/p1"},
    }
    r4_device["identifier"] = [{"system": f"{SID}/device", "value": "r4"}]
    created = fhir_r4.post("Device", r4_device)
    assert created.status_code == 201, created.text
    assert fhir_r4.ids("Device", patient="p1") == {created.json()["id"]}
    assert fhir_r4.ids("Device", patient="p2") == set()


@pytest.mark.parametrize(
    "condition",
    [
        f"identifier={SID}/measure|s1",
        "identifier=s1",
        "patient=p1&code=http://loinc.org|8867-4",
        "date=ge2026-03-04&subject=Patient/p1",
    ],
)
def test_conditional_lookups_use_the_indexes(tmp_path: Path, condition: str) -> None:
    store = Store(tmp_path / "plan.db", "R5", indexer(R5))
    query = search.parse_condition(R5, "Observation", condition)
    sql, params = search.ids_sql(query, 2)
    with sqlite3.connect(store.path) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    store.close()
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert any("PRIMARY KEY" in step for step in plan), plan
    assert any("_lookup" in step for step in plan), plan
