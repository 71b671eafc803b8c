"""Operator commands against a running stack: backfill with progress, webhook replay, dedup."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from ohe.extensions import db
from ohe.fhir.bundle import dumps
from ohe.models import WebhookEvent
from tests.helpers import ROOT, child_env, wait_for

pytestmark = pytest.mark.integration


def ohe(stack, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "ohe.app", "ohe", *args],
        env=child_env(stack.settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_backfill_follows_the_workers_with_a_progress_line(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    stack.link("cli-patient", history_days=3)
    stack.wait_idle()
    result = ohe(
        stack, "backfill", "--ehr-user-id", "cli-patient", "--days", "3", "--timeout", "150"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("Started ")
    for part in ("pages", "resources written", "rate-limit waits", "ETA", "runs"):
        assert part in out
    assert "failed" in out.splitlines()[-1] and "0 failed" in out.splitlines()[-1]
    missing = ohe(stack, "backfill", "--ehr-user-id", "nobody", "--days", "1")
    assert missing.returncode == 1 and "no active provider link for nobody" in missing.stderr


def test_a_recorded_webhook_can_be_replayed(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    userid, _ = stack.link("replay-patient", history_days=2)
    stack.wait_idle()
    grpid = stack.withings.admin("POST", f"/users/{userid}/measures", {"weight_kg": 90})["grpid"]
    wait_for(lambda: stack.observation_of(userid, f"{grpid}:1"), timeout=30)
    with stack.app.app_context():
        event = db.session.scalar(sa.select(WebhookEvent).order_by(WebhookEvent.id.desc()))
    webhook_runs = len([r for r in stack.runs() if r.sync_type == "webhook"])
    result = ohe(stack, "replay-webhook", str(event.id))
    assert result.returncode == 0, result.stderr
    assert f"Replaying webhook {event.id}" in result.stdout
    wait_for(
        lambda: len([r for r in stack.runs() if r.sync_type == "webhook"]) > webhook_runs,
        timeout=30,
    )
    assert ohe(stack, "replay-webhook", "999999").returncode == 1


def test_dedup_check_finds_and_repairs_duplicates(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    userid, _ = stack.link("dup-patient", history_days=2)
    stack.wait_idle()
    grpid = stack.withings.admin("POST", f"/users/{userid}/measures", {"weight_kg": 55.5})["grpid"]
    original = wait_for(lambda: stack.observation_of(userid, f"{grpid}:1"), timeout=30)
    copy = {k: v for k, v in original.items() if k not in ("id", "meta", "device")}
    created = stack.fhir.http.post(
        f"{stack.fhir.base}/Observation",
        data=dumps(copy),
        headers={"Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert created.status_code == 201  # a racing server wrote it twice

    found = ohe(stack, "dedup-check", "--resource-type", "Observation")
    assert found.returncode == 0, found.stderr
    assert "1 duplicate resources found, 0 repaired" in found.stdout
    repaired = ohe(stack, "dedup-check", "--repair", "--resource-type", "Observation")
    assert "1 duplicate resources found, 1 repaired" in repaired.stdout
    assert (
        "0 duplicate resources found"
        in ohe(stack, "dedup-check", "--resource-type", "Observation").stdout
    )
    kept = stack.observation_of(userid, f"{grpid}:1")  # one again: conditional updates work
    assert kept["status"] == "final"
    voided = stack.fhir.search("Observation", status="entered-in-error")["entry"]
    assert len(voided) == 1 and ":duplicate-of:" in voided[0]["resource"]["identifier"][0]["value"]
