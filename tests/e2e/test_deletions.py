"""Measurements deleted at Withings leave the hospital record (entered-in-error), and nothing
else does: not a record merely missing from a run's pages, not a data type the deployment
stopped syncing."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy import update

from ohe.extensions import db
from ohe.models import SyncPage, SyncStatus
from ohe.providers.rows import provider_row
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

WEIGHT, FAT_RATIO = 1, 6
GETMEAS = "/measure getmeas"


def _statuses(stack) -> Counter[str]:
    """How many Observations on the FHIR server have each status (one patient per stack)."""
    return Counter(r["status"] for r in stack.fhir_resources("Observation"))


def test_a_measurement_deleted_at_withings_is_marked_entered_in_error(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    userid, _ = stack.link("deleting-patient", history_days=5)
    stack.wait_idle()
    # The child stepped on the parent's scale: a reading the parent deletes in the app.
    grpid = stack.withings.admin(
        "POST", f"/users/{userid}/measures", {"weight_kg": 31.5, "fat_ratio": 18.0}
    )["grpid"]
    weight = wait_for(lambda: stack.observation_of(userid, f"{grpid}:{WEIGHT}"), timeout=30)
    assert weight["status"] == "final"
    before = _statuses(stack)

    stack.withings.admin("DELETE", f"/users/{userid}/measures/{grpid}")
    wait_for(
        lambda: stack.observation_of(userid, f"{grpid}:{WEIGHT}")["status"] == "entered-in-error",
        timeout=30,
    )
    fat = stack.observation_of(userid, f"{grpid}:{FAT_RATIO}")
    assert fat["status"] == "entered-in-error"
    after = _statuses(stack)
    assert after.get("entered-in-error") == 2  # the two readings of that group, nothing else
    assert sum(after.values()) == sum(before.values())  # voided, not deleted
    runs = stack.wait_idle()
    assert sum(r.resources_voided for r in runs) == 2
    assert all(r.deletions_checked_at for r in runs if r.checks_deletions)

    # Re-running every window finds nothing else to void and writes nothing.
    stack.fhir.admin("POST", "stats/reset")
    assert sum(r.resources_voided for r in stack.rerun(runs)) == 0
    written = stack.fhir.stats()["resources"]
    assert written["created"] == 0 and written["updated"] == 0, written
    assert _statuses(stack) == after


def test_a_record_missing_from_the_pages_is_looked_up_again_before_anything_is_voided(
    make_stack,
) -> None:
    """A page re-pushed by the sweeper has no record of what it saw; a concurrent run may
    write a record this run never fetched. Either way the provider is asked again first."""
    stack = make_stack()
    stack.start_worker()
    stack.link("lookup-patient", history_days=5)
    first = next(r for r in stack.wait_idle() if r.stream == "measures")
    assert not first.checks_deletions  # a link's first backfill has nothing of its own to void
    backfill = next(r for r in stack.rerun([first]) if r.stream == "measures")
    assert backfill.deletions_checked_at is not None and backfill.resources_voided == 0
    with stack.app.app_context():
        db.session.execute(update(SyncPage).where(SyncPage.run_id == backfill.id).values(seen=None))
        db.session.execute(
            update(SyncStatus).where(SyncStatus.id == backfill.id).values(deletions_checked_at=None)
        )
        db.session.commit()
    stack.fhir.admin("POST", "stats/reset")
    calls = stack.withings.admin("GET", "/stats")["calls"]["by_action"].get(GETMEAS, 0)

    assert stack.run_task("ohe.sync.void_deleted", backfill.id) == 0

    assert stack.withings.admin("GET", "/stats")["calls"]["by_action"][GETMEAS] > calls
    written = stack.fhir.stats()["resources"]
    assert written["updated"] == 0, written
    assert "entered-in-error" not in _statuses(stack)


def test_a_data_type_no_longer_synced_is_not_mistaken_for_deleted(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    userid, _ = stack.link("excluding-patient", history_days=2)
    stack.wait_idle()
    grpid = stack.withings.admin(
        "POST", f"/users/{userid}/measures", {"weight_kg": 70.0, "fat_ratio": 21.0}
    )["grpid"]
    wait_for(lambda: stack.observation_of(userid, f"{grpid}:{FAT_RATIO}"), timeout=30)
    stack.wait_idle()
    with stack.app.app_context():
        provider_row("withings").excluded_data_types = ["fat_ratio"]
        db.session.commit()

    # Any change in the window brings a window run: the fat ratio is no longer fetched.
    stack.withings.admin("PATCH", f"/users/{userid}/measures/{grpid}", {"weight_kg": 70.4})
    wait_for(
        lambda: stack.observation_of(userid, f"{grpid}:{WEIGHT}")["valueQuantity"]["value"] == 70.4,
        timeout=30,
    )
    runs = stack.wait_idle()
    checked = [r for r in runs if r.checks_deletions and r.sync_type == "webhook"]
    assert checked and all(r.deletions_checked_at for r in checked)
    assert stack.observation_of(userid, f"{grpid}:{FAT_RATIO}")["status"] == "final"
    assert "entered-in-error" not in _statuses(stack)
    with stack.app.app_context():
        assert db.session.scalar(sa.select(sa.func.sum(SyncStatus.resources_voided))) == 0
