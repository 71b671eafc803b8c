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


def test_a_patient_links_while_others_linkings_fill_the_setup_share(make_stack) -> None:
    """Patients who linked a moment ago fill the setup share of the Withings limit with their
    subscriptions; the next patient's code exchange (the code dies in 30 s, a browser waits) is
    live work and still gets a slot. Found by the 20-patient run at the real 120/min limit."""
    from ohe.extensions import state
    from ohe.observability.context import SETUP, rate_lane
    from ohe.providers.ratelimit import APIClientConfig, SharedRateLimit
    from ohe.providers.withings.api import rate_window_margin
    from ohe.resilience.errors import RateLimitError

    stack = make_stack(withings_rate_limit=10, withings_rate_window=60)
    with stack.app.app_context():
        settings = state().settings
        window = settings.withings_rate_window
        shared = SharedRateLimit(
            state().coordination,
            "withings",
            APIClientConfig(settings.withings_rate_limit, window + rate_window_margin(window)),
            bulk_share=settings.bulk_rate_share,
            max_wait=0.1,
        )
        taken = 0
        with rate_lane(SETUP), pytest.raises(RateLimitError):
            while True:
                shared.acquire()
                taken += 1
    assert 0 < taken < 10  # the setup share is full; the live reserve is left

    _, page = stack.link("patient-in-a-busy-minute", history_days=1)
    assert 'data-status="success"' in page
    assert stack.link_row("patient-in-a-busy-minute").status == "active"
