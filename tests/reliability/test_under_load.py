"""Reliability under load and under worker crashes, against the sandboxes with real workers.

- Webhook-driven measurements land in FHIR while several patients backfill (the deployment
  shape the chart recommends: a worker pool for ``webhooks``, one for the rest).
- Killing workers with SIGKILL at random during backfills and webhooks loses nothing and
  duplicates nothing: the FHIR server ends with exactly the identifiers an independent replay
  of every run's window produces, each exactly once; and re-running the syncs writes nothing.

The full-size version (50 patients, a year each) is ``benchmarks/backfill_under_fire.py``.
"""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.integration

FAST_FAILOVER = {
    # Killed workers' messages come back after the broker's visibility timeout: keep it short
    # here (production: an hour, plus the 15-minute sweeper).
    "task_soft_time_limit": 12,
    "task_time_limit": 15,
    "broker_visibility_timeout": 20,
}


def test_webhook_measurements_land_while_patients_backfill(make_stack) -> None:
    """Functional here; how fast (target < 10 s) is measured by benchmarks/backfill_under_fire.py."""
    stack = make_stack(withings={"page_size": 10})
    stack.start_worker(queues="webhooks", concurrency=1, name="webhooks")
    stack.start_worker(queues="sync,backfill,maintenance", concurrency=2, name="bulk")
    users = [stack.link(f"load-{i}", history_days=60)[0] for i in range(6)]
    time.sleep(1)  # the backfills are under way
    backlog = [r for r in stack.runs() if r.status in ("pending", "running")]
    assert backlog, "the backfills finished before the webhooks: make the load bigger"
    for round_ in range(6):
        userid = random.choice(users)
        grpid = stack.withings.admin(
            "POST", f"/users/{userid}/measures", {"weight_kg": 70 + round_}
        )["grpid"]
        wait_for(
            lambda userid=userid, grpid=grpid: stack.observation_of(userid, f"{grpid}:1"),
            timeout=30,
            interval=0.2,
        )
    runs = stack.wait_idle(timeout=300)
    assert {r.status for r in runs} == {"success"}


def test_killing_workers_at_random_loses_nothing_and_duplicates_nothing(make_stack) -> None:
    stack = make_stack(withings={"page_size": 10}, **FAST_FAILOVER)
    for i in range(2):
        stack.start_worker(concurrency=2, name=f"w{i}")
    users = [stack.link(f"chaos-{i}", history_days=30)[0] for i in range(4)]
    stop = threading.Event()
    kills: list[float] = []

    def killer() -> None:
        rng = random.Random(7)
        while not stop.is_set() and len(kills) < 5:
            time.sleep(rng.uniform(1.0, 2.5))
            alive = [w for w in stack.workers if w.alive()]
            if not alive:
                continue
            victim = rng.choice(alive)
            victim.stop(signal.SIGKILL)
            kills.append(time.monotonic())
            stack.start_worker(concurrency=2, name=f"w{len(stack.workers)}")

    chaos = threading.Thread(target=killer)
    chaos.start()
    for round_ in range(4):
        time.sleep(1.5)
        stack.withings.admin(
            "POST", f"/users/{users[round_ % len(users)]}/measures", {"weight_kg": 60 + round_}
        )
    chaos.join()
    stop.set()
    assert len(kills) == 5
    runs = stack.wait_idle(timeout=400)
    assert {r.status for r in runs} == {"success"}, [
        (r.stream, r.error_message) for r in runs if r.status != "success"
    ]

    held = stack.fhir_identifiers()
    expected = stack.expected_identifiers()
    assert len(held) == len(set(held)), "duplicates on the FHIR server"
    assert set(held) == set(expected), (
        f"missing {len(set(expected) - set(held))}, unexpected {len(set(held) - set(expected))}"
    )

    stack.fhir.admin("POST", "stats/reset")
    assert {r.status for r in stack.rerun(runs)} == {"success"}
    written = stack.fhir.stats()["resources"]
    assert written["created"] == 0 and written["updated"] == 0, written
