"""A link's life after the first sync: devices, status, safety net, re-auth, unlink, re-link."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from ohe.extensions import db
from ohe.models import LinkStatus, ProviderLink, SyncCursor, SyncStatus, utcnow
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

ASSOCIATION_STATUS = "http://hl7.org/fhir/deviceassociation-status"


def _associations(stack, patient: str) -> dict[str, str]:
    """Device id → association status code, as the FHIR server holds them for ``patient``."""
    found = stack.fhir.search("DeviceAssociation", subject=f"Patient/{patient}")
    return {
        e["resource"]["device"]["reference"].split("/")[-1]: e["resource"]["status"]["coding"][0][
            "code"
        ]
        for e in found.get("entry", [])
    }


def _device_syncs(stack) -> list[SyncStatus]:
    return [r for r in stack.runs() if r.stream == "devices"]


def test_device_sync_is_idempotent_patient_scoped_and_ends_removed_devices(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    userid, _ = stack.link("dev-patient", history_days=3)
    stack.link("other-patient", history_days=3)
    stack.wait_idle()
    devices = stack.withings.call(
        "/v2/user", stack.withings.token(userid)["access_token"], action="getdevice"
    )
    device_ids = [d["deviceid"] for d in devices["body"]["devices"]]
    first = _associations(stack, "dev-patient")
    assert len(first) == len(device_ids) and set(first.values()) == {"attached"}
    total_devices = len(stack.fhir.ids("Device"))

    for _ in range(2):
        done = len(_device_syncs(stack))
        sent = stack.api(
            "POST",
            "/api/base/sync/trigger_device_sync/",
            json={"ehr_user_id": "dev-patient", "provider": "withings"},
        )
        assert sent.status_code == 202, sent.text
        wait_for(lambda done=done: len(_device_syncs(stack)) > done, timeout=30)
        stack.wait_idle()
    assert len(stack.fhir.ids("Device")) == total_devices  # no duplicates however often it runs
    assert _associations(stack, "dev-patient") == first

    removed = device_ids[0]
    stack.withings.admin("DELETE", f"/users/{userid}/devices/{removed}")
    done = len(_device_syncs(stack))
    stack.api(
        "POST",
        "/api/base/sync/trigger_device_sync/",
        json={"ehr_user_id": "dev-patient", "provider": "withings"},
    )
    wait_for(lambda: len(_device_syncs(stack)) > done, timeout=30)
    stack.wait_idle()
    listed = stack.api(
        "GET", "/api/base/sync/devices/", params={"ehr_user_id": "dev-patient"}
    ).json()
    by_id = {d["provider_device_id"]: d for d in listed["devices"]}
    assert set(by_id) == set(device_ids)  # only this patient's devices
    assert by_id[removed]["association"] == "explanted"
    assert {by_id[d]["association"] for d in device_ids[1:]} == {"attached"}
    ended = [
        e["resource"]
        for e in stack.fhir.search("DeviceAssociation", subject="Patient/dev-patient")["entry"]
        if e["resource"]["status"]["coding"][0]["code"] == "explanted"
    ]
    assert len(ended) == 1 and "end" in ended[0]["period"]


def test_status_api_and_metrics_show_a_link_that_needs_reauthorisation(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    stack.link("reauth-patient", history_days=2)
    stack.wait_idle()
    status = stack.api(
        "GET",
        "/api/base/sync/status/",
        params={"ehr_user_id": "reauth-patient", "provider": "withings"},
    ).json()
    assert status["status"] == "completed"
    assert status["last_sync"] and status["records_synced"] is not None
    measures = status["data_types"]["measures"]
    assert measures["cursor"] and measures["last_success"] and measures["last_error"] is None

    with stack.app.app_context():  # the patient revoked OHE at Withings: the refresh token is dead
        link = db.session.scalar(sa.select(ProviderLink))
        link.refresh_token = "revoked-at-withings"
        link.token_expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    stack.api(
        "POST",
        "/api/base/sync/trigger/",
        json={"ehr_user_id": "reauth-patient", "data_types": ["weight"]},
    )
    wait_for(
        lambda: stack.link_row("reauth-patient").status == LinkStatus.NEEDS_REAUTH.value, timeout=30
    )
    stack.wait_idle()
    status = stack.api(
        "GET", "/api/base/sync/status/", params={"ehr_user_id": "reauth-patient"}
    ).json()
    withings = status["providers"]["withings"]
    assert withings["status"] == "needs_reauth"
    assert "link again" in withings["errors"][0]
    assert withings["data_types"]["measures"]["last_error"]["class"] == "auth_error"
    assert "link again" in withings["data_types"]["measures"]["last_error"]["action"]
    linked = stack.api(
        "GET", "/api/base/link/withings/status/", params={"ehr_user_id": "reauth-patient"}
    ).json()
    assert linked["linked"] is False and linked["links"][0]["status"] == "needs_reauth"
    metrics = stack.http.get(f"{stack.web_url}/api/metrics/metrics/", timeout=10).text
    assert 'ohe_provider_links{provider="withings",status="needs_reauth"} 1.0' in metrics


def test_the_safety_net_catches_a_measurement_whose_webhook_never_came(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    with stack.app.app_context():  # webhooks off for this provider: nothing is ever notified
        from ohe.providers.rows import provider_row

        provider_row("withings").webhooks_enabled = False
        db.session.commit()
    userid, _ = stack.link("quiet-patient", history_days=2)
    stack.wait_idle()
    assert stack.withings.admin("GET", f"/subscriptions?userid={userid}")["subscriptions"] == []
    grpid = stack.withings.admin("POST", f"/users/{userid}/measures", {"weight_kg": 66.6})["grpid"]
    with stack.app.app_context():  # the last successful sync is older than the interval
        db.session.execute(
            sa.update(SyncCursor).values(last_success_at=utcnow() - timedelta(hours=3))
        )
        db.session.commit()
    assert stack.observation_of(userid, f"{grpid}:1") is None
    assert stack.run_task("ohe.maintenance.safety_net") == 1
    found = wait_for(lambda: stack.observation_of(userid, f"{grpid}:1"), timeout=30)
    assert found["valueQuantity"]["value"] == 66.6
    schedule_runs = [r for r in stack.wait_idle() if r.sync_type == "schedule"]
    assert schedule_runs and all(r.window_start is None for r in schedule_runs)  # incremental


def test_unlink_cleans_up_and_purges_then_a_relink_fetches_only_the_gap(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    userid, _ = stack.link("leaving-patient", history_days=5)
    stack.wait_idle()
    assert stack.withings.admin("GET", f"/subscriptions?userid={userid}")["subscriptions"]
    observations = stack.fhir.ids("Observation", subject="Patient/leaving-patient")

    gone = stack.api(
        "POST",
        "/api/base/link/withings/unlink/",
        json={"ehr_user_id": "leaving-patient", "purge": True},
    )
    assert gone.status_code == 200 and gone.json()["status"] == "unlinked"
    wait_for(
        lambda: not stack.withings.admin("GET", f"/subscriptions?userid={userid}")["subscriptions"],
        timeout=30,
    )
    wait_for(
        lambda: set(_associations(stack, "leaving-patient").values()) == {"explanted"}, timeout=30
    )
    wait_for(
        lambda: (
            {
                e["resource"]["status"]
                for e in stack.fhir.search(
                    "Observation", subject="Patient/leaving-patient", _count=1000
                )["entry"]
            }
            == {"entered-in-error"}
        ),
        timeout=60,
    )
    assert (
        stack.fhir.ids("Observation", subject="Patient/leaving-patient") == observations
    )  # kept, voided
    link = stack.link_row("leaving-patient")
    assert link.status == "revoked" and link.access_token is None and link.refresh_token is None
    ignored = stack.http.post(
        f"{stack.web_url}/webhooks/withings/",
        data={"userid": str(userid), "appli": "1"},
        timeout=10,
    )
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"

    before = {r.id for r in stack.runs()}
    stack.link("leaving-patient", userid=userid)
    relinked = stack.link_row("leaving-patient")
    assert relinked.status == "active" and relinked.id == link.id
    new_runs = [r for r in stack.wait_idle() if r.id not in before and r.stream != "devices"]
    assert {r.sync_type for r in new_runs} == {"relink"}
    assert all(utcnow() - r.window_start < timedelta(hours=2) for r in new_runs)  # the gap only
