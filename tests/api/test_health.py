"""Probes exactly as the operations guide describes them, against real dependencies."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ohe.app import create_app
from ohe.settings import Settings
from tests.helpers import TEST_SECRET_KEY, free_port


def test_live_answers_without_touching_dependencies(client: FlaskClient) -> None:
    body = client.get("/api/metrics/live/").get_json()
    assert body["alive"] is True
    assert isinstance(body["timestamp"], int)


def test_ready_checks_database_redis_and_broker(client: FlaskClient) -> None:
    response = client.get("/api/metrics/ready/")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {
        "database": True,
        "redis": True,
        "celery_broker": True,
    }


def test_health_is_unhealthy_without_a_worker(client: FlaskClient) -> None:
    response = client.get("/api/metrics/health/")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["celery_workers"]["status"] == "unhealthy"
    assert "no worker answered" in body["checks"]["celery_workers"]["error"]
    for name in ("database", "redis", "celery_broker"):
        assert body["checks"][name]["status"] == "healthy"
        assert body["checks"][name]["response_time_ms"] >= 0
    assert body["response_time_ms"] > 0


@pytest.mark.integration
def test_health_is_healthy_with_a_real_worker(client: FlaskClient, start_worker) -> None:
    start_worker()
    response = client.get("/api/metrics/health/")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "healthy"
    assert body["checks"]["celery_workers"]["workers"] == ["test@" + _hostname()]


def _hostname() -> str:
    import socket

    return socket.gethostname()


def test_unreachable_redis_makes_ready_and_health_fail(tmp_path: Path, database_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings.from_env(
        {}, data_dir=tmp_path, database_url=database_url, redis_url=dead, secret_key=TEST_SECRET_KEY
    )
    client = create_app(settings).test_client()
    ready = client.get("/api/metrics/ready/")
    assert ready.status_code == 503
    body = ready.get_json()
    assert body["ready"] is False
    assert body["checks"]["database"] is True
    assert body["checks"]["redis"] is False
    assert "Connection" in body["errors"]["redis"]
    health = client.get("/api/metrics/health/").get_json()
    assert health["status"] == "unhealthy"
    assert health["checks"]["redis"]["status"] == "unhealthy"


def test_embedded_sqlite_setup_migrates_and_reports_healthy_parts(tmp_path: Path) -> None:
    settings = Settings.from_env({"OHE_DATA_DIR": str(tmp_path / "var")})
    app = create_app(settings)
    upgraded = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert (tmp_path / "var" / "ohe.db").exists()
    body = app.test_client().get("/api/metrics/health/").get_json()
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["redis"] == {**body["checks"]["redis"], "backend": "memory"}
    assert body["checks"]["celery_broker"]["transport"] == "filesystem"


def test_metrics_endpoint_counts_requests_by_route_pattern(app: Flask, client: FlaskClient) -> None:
    client.get("/api/metrics/live/")
    client.get("/nothing-here/")
    text = client.get("/api/metrics/metrics/").get_data(as_text=True)
    assert (
        'ohe_api_requests_total{endpoint="/api/metrics/live/",method="GET",status_code="200"}'
        in text
    )
    assert 'endpoint="unmatched",method="GET",status_code="404"' in text
    for queue in ("webhooks", "sync", "backfill", "maintenance"):
        assert f'ohe_celery_queue_size{{queue="{queue}"}}' in text
    assert "ohe_redis_connections " in text
    assert "ohe_database_connections " in text
    legacy = client.get("/api/metrics/")
    assert legacy.status_code == 200
    assert "ohe_api_requests_total" in legacy.get_data(as_text=True)
