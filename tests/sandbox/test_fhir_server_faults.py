"""Sandbox FHIR server: fault injection, request/write counters and the admin API."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
import requests

from tests.sandbox.conftest import FhirServer, issues, observation


def test_outage_answers_503_to_every_fhir_request(fhir: FhirServer) -> None:
    rid = fhir.post("Observation", observation("before")).json()["id"]
    config = fhir.admin("POST", "faults", {"outage": True, "retry_after": 3})
    assert config["outage"] is True
    for response in (
        fhir.get(f"Observation/{rid}"),
        fhir.get("metadata"),
        fhir.post("Observation", observation("during")),
    ):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "3"
        assert response.json()["issue"][0]["code"] == "transient"
    assert fhir.admin("GET", "health")["status"] == "ok"  # the admin API is never faulted
    assert fhir.admin("DELETE", "faults")["outage"] is False
    assert fhir.get(f"Observation/{rid}").status_code == 200
    assert fhir.search("Observation", _summary="count")["total"] == 1  # nothing written meanwhile
    assert fhir.stats()["faults"] == {"outage": 3}


def test_rate_limit_answers_429_with_retry_after(fhir: FhirServer) -> None:
    fhir.admin("POST", "faults", {"rate_limit_rate": 1.0, "retry_after": 2})
    limited = fhir.get("Observation")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert "rate limit" in issues(limited)
    fhir.admin("POST", "faults", {"rate_limit_rate": 0.0})
    assert fhir.get("Observation").status_code == 200


def test_latency_delays_every_fhir_request(fhir: FhirServer) -> None:
    started = time.perf_counter()
    fhir.get("metadata")
    fast = time.perf_counter() - started
    fhir.admin("POST", "faults", {"latency_ms": 300})
    started = time.perf_counter()
    assert fhir.get("metadata").status_code == 200
    slow = time.perf_counter() - started
    assert slow >= 0.3
    assert fast < 0.3


def test_error_rate_fails_about_that_share_of_requests(
    start_fhir: Callable[..., FhirServer],
) -> None:
    server = start_fhir(seed=7)
    server.admin("POST", "faults", {"error_rate": 0.5, "error_status": 500})
    statuses = Counter(server.get("metadata").status_code for _ in range(60))
    assert set(statuses) == {200, 500}
    assert 15 <= statuses[500] <= 45
    assert server.stats()["faults"]["error"] == statuses[500]


def test_fail_next_fails_exactly_n_requests(fhir: FhirServer) -> None:
    fhir.admin("POST", "faults", {"fail_next": 2, "error_status": 502})
    statuses = [fhir.get("metadata").status_code for _ in range(4)]
    assert statuses == [502, 502, 200, 200]
    assert fhir.admin("GET", "faults")["fail_next"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"error_rate": 2},
        {"latency_ms": "slow"},
        {"outage": 1},
        {"error_status": 200},
        {"colour": "red"},
    ],
)
def test_invalid_fault_settings_are_refused(fhir: FhirServer, body: dict) -> None:
    response = requests.post(f"{fhir.root}/_sandbox/faults", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]
    assert fhir.admin("GET", "faults") == {
        "latency_ms": 0,
        "error_rate": 0.0,
        "error_status": 503,
        "rate_limit_rate": 0.0,
        "retry_after": 1,
        "outage": False,
        "fail_next": 0,
    }


def test_stats_count_requests_interactions_and_writes(fhir: FhirServer) -> None:
    rid = fhir.post("Observation", observation("a")).json()["id"]
    fhir.post("Observation", observation("a"), headers={"If-None-Exist": "identifier=a"})
    fhir.put(f"Observation/{rid}", {**observation("a", value=1), "id": rid})
    fhir.get(f"Observation/{rid}")
    fhir.get("Observation", params={"code": "8867-4"})
    fhir.delete(f"Observation/{rid}")
    fhir.post("", {"resourceType": "Bundle", "type": "batch", "entry": []})
    stats = fhir.stats()
    assert stats["requests"] == {"total": 7, "POST": 3, "PUT": 1, "GET": 2, "DELETE": 1}
    assert stats["interactions"] == {
        "create": 1,
        "conditional-create": 1,
        "update": 1,
        "read": 1,
        "search-type": 1,
        "delete": 1,
        "batch": 1,
    }
    assert stats["batches"] == 1
    assert stats["resources"] == {"created": 1, "updated": 1, "unchanged": 1, "deleted": 1}
    reset = fhir.admin("POST", "stats/reset")
    assert reset["requests"] == {"total": 0}
    assert reset["resources"] == {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0}


def test_reset_wipes_all_data(fhir: FhirServer) -> None:
    rid = fhir.post("Observation", observation("gone")).json()["id"]
    assert fhir.admin("POST", "reset") == {"status": "reset"}
    assert fhir.get(f"Observation/{rid}").status_code == 404
    assert fhir.get("_history").json()["total"] == 0
    again = fhir.post(
        "Observation", observation("gone"), headers={"If-None-Exist": "identifier=gone"}
    )
    assert again.status_code == 201  # the identifier index was wiped too
