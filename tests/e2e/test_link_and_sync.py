"""A patient links Withings; history and new measurements arrive in FHIR (real everything)."""

from __future__ import annotations

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_linking_backfills_history_into_fhir_and_webhooks_bring_new_measurements(
    make_stack,
) -> None:
    stack = make_stack()
    stack.start_worker()
    userid, page = stack.link("patient-001", history_days=10)
    assert 'data-status="success"' in page
    link = stack.link_row("patient-001")
    assert link.status == "active"
    assert link.external_user_id == str(userid)

    runs = stack.wait_idle()
    assert {r.status for r in runs} == {"success"}, [(r.stream, r.error_message) for r in runs]
    first = stack.fhir_identifiers()
    assert len(first) > 50
    assert len(first) == len(set(first))

    # A new weigh-in: the sandbox notifies our webhook, a worker fetches and writes it.
    grpid = stack.withings.admin("POST", f"/users/{userid}/measures", {"weight_kg": 81.3})["grpid"]
    found = wait_for(lambda: stack.observation_of(userid, f"{grpid}:1"), timeout=30, interval=0.3)
    assert found["valueQuantity"]["value"] == 81.3

    status = stack.api(
        "GET", "/api/base/sync/status/", params={"ehr_user_id": "patient-001"}
    ).json()
    assert status["providers"]["withings"]["status"] == "completed"
