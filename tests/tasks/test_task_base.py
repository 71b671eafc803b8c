"""The task base with real workers: app context, publish-after-commit, request ids, poison cap."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from flask import Flask, jsonify
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ohe.api.auth import public
from ohe.extensions import db
from ohe.models import FailedTask, SyncStatus, WebhookEvent, utcnow
from ohe.tasks.base import enqueue
from ohe.tasks.maintenance import cleanup
from tests.helpers import wait_for


def _queue_length(app: Flask, queue: str) -> int:
    return redis.Redis.from_url(app.extensions["ohe"].settings.broker_url).llen(queue)


def test_enqueue_publishes_only_after_commit_and_never_after_rollback(app: Flask) -> None:
    with app.app_context():
        enqueue(cleanup.s())
        assert _queue_length(app, "maintenance") == 0
        db.session.rollback()
        db.session.commit()
        assert _queue_length(app, "maintenance") == 0
        enqueue(cleanup.s())
        db.session.commit()
        assert _queue_length(app, "maintenance") == 1


def _old_and_new_rows(app: Flask) -> None:
    now = utcnow()
    with app.app_context():
        for days, status in ((30, "processed"), (1, "processed"), (30, "pending")):
            db.session.add(
                WebhookEvent(
                    provider="withings",
                    fingerprint=f"{days}-{status}",
                    external_user_id="1",
                    category="1",
                    status=status,
                    received_at=now - timedelta(days=days),
                )
            )
        for days in (200, 2):
            db.session.add(
                SyncStatus(
                    provider="withings", sync_type="webhook", created_at=now - timedelta(days=days)
                )
            )
        db.session.commit()


@pytest.mark.integration
def test_a_request_enqueues_a_task_that_a_real_worker_runs_with_the_request_id(
    app: Flask, client: FlaskClient, start_worker, tmp_path: Path
) -> None:
    _old_and_new_rows(app)

    @app.post("/test-cleanup/")
    @public
    def trigger() -> object:
        enqueue(cleanup.s())
        db.session.commit()
        return jsonify({"queued": True})

    worker = start_worker(extra_env={"OHE_LOG_FORMAT": "json"})
    response = client.post("/test-cleanup/", headers={"X-Request-ID": "req-cleanup-42"})
    assert response.status_code == 200

    def remaining() -> tuple[int, int]:
        with app.app_context():
            db.session.remove()
            return (
                db.session.scalar(select(func.count()).select_from(WebhookEvent)),
                db.session.scalar(select(func.count()).select_from(SyncStatus)),
            )

    wait_for(lambda: remaining() == (2, 1), timeout=30)
    lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    done = [line for line in lines if line.get("message") == "cleanup done"]
    assert done, worker.output()[-2000:]
    assert done[0]["request_id"] == "req-cleanup-42"
    assert done[0]["webhook_events"] == 1
    assert {"timestamp", "level", "logger", "module", "process_id", "thread_id"} <= done[0].keys()


@pytest.mark.integration
def test_a_message_whose_worker_keeps_dying_is_dropped_at_the_cap_and_recorded(
    app: Flask, start_worker
) -> None:
    start_worker(include="tests.worker_tasks", extra_env={"OHE_TASK_MAX_DELIVERIES": "2"})
    app.extensions["celery"].send_task("tests.kill_own_process", queue="maintenance")

    def recorded() -> FailedTask | None:
        with app.app_context():
            db.session.remove()
            return db.session.scalar(select(FailedTask))

    row = wait_for(recorded, timeout=60, interval=0.5)
    assert row.task_name == "tests.kill_own_process"
    assert row.error_class == "poison_message"
    assert row.deliveries == 3
    assert _queue_length(app, "maintenance") == 0


@pytest.mark.integration
def test_a_failing_task_is_recorded_with_its_error_class_and_counted(
    app: Flask, client: FlaskClient, start_worker, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    start_worker(
        include="tests.worker_tasks", extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    )
    app.extensions["celery"].send_task(
        "tests.reject_input", args=["token=abc123"], queue="maintenance"
    )

    def recorded() -> FailedTask | None:
        with app.app_context():
            db.session.remove()
            return db.session.scalar(select(FailedTask))

    row = wait_for(recorded, timeout=30, interval=0.3)
    assert row.error_class == "validation_error"
    assert "abc123" not in row.error_message
    from ohe.observability.metrics import render

    text = wait_for(
        lambda: (
            out
            if 'outcome="failure",task="tests.reject_input"'
            in (out := render([], metrics_dir).decode())
            else None
        ),
        timeout=10,
    )
    assert 'ohe_task_runs_total{outcome="failure",task="tests.reject_input"} 1.0' in text
