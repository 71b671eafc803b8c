"""A FHIR outage opens the breaker; nothing is lost or re-fetched when the server returns."""

from __future__ import annotations

import time

import pytest

from ohe.settings import BreakerSpec
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _getmeas_calls(stack) -> int:
    return stack.withings.admin("GET", "/stats")["calls"]["by_action"].get("measure.getmeas", 0)


def test_a_fhir_outage_opens_the_breaker_and_the_pushes_resume_without_refetching(
    make_stack,
) -> None:
    stack = make_stack(breaker_fhir_server=BreakerSpec(5, 3, 2))
    stack.start_worker(concurrency=2)
    userid, _ = stack.link("outage-patient", history_days=2)
    stack.wait_idle()
    before = set(stack.fhir_identifiers())

    stack.fhir.admin("POST", "faults", {"outage": True})
    grpids = [
        stack.withings.admin("POST", f"/users/{userid}/measures", {"weight_kg": 80 + n})["grpid"]
        for n in range(3)
    ]

    def breaker_open() -> bool:
        text = stack.http.get(f"{stack.web_url}/api/metrics/metrics/", timeout=10).text
        return 'ohe_circuit_breaker_state{breaker="fhir_server",state="open"} 1.0' in text

    wait_for(breaker_open, timeout=60, interval=0.3)
    health = stack.http.get(f"{stack.web_url}/api/metrics/health/", timeout=10).json()
    assert health["circuit_breakers"]["fhir_server"]["state"] == "open"
    fetched = _getmeas_calls(stack)
    time.sleep(3)  # pushes keep retrying (and short-circuiting) meanwhile

    stack.fhir.admin("DELETE", "faults")
    wait_for(
        lambda: all(stack.observation_of(userid, f"{g}:1") for g in grpids),
        timeout=120,
        interval=0.5,
    )
    runs = stack.wait_idle(timeout=120)
    assert {r.status for r in runs} == {"success"}
    assert _getmeas_calls(stack) == fetched, "a push retry fetched from Withings again"
    held = stack.fhir_identifiers()
    assert len(held) == len(set(held)) == len(before) + 3
