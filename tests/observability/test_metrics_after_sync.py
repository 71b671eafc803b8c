"""Every metric the operations guide names appears, with data, after a sync.

gunicorn serves the web app and Celery prefork workers run the tasks, all sharing one
PROMETHEUS_MULTIPROC_DIR as in the Procfile deployment, so this also proves that counters
recorded in worker children reach the web endpoint Prometheus scrapes.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, child_env, wait_for

pytestmark = pytest.mark.integration

# The guide's metrics (ohe_huey_queue_size is ohe_celery_queue_size{queue} here) and the
# breaker metrics it calls planned, each with the sample that must carry data.
GUIDE = {
    "ohe_sync_operations_total": "ohe_sync_operations_total",
    "ohe_sync_duration_seconds": "ohe_sync_duration_seconds_count",
    "ohe_data_points_processed_total": "ohe_data_points_processed_total",
    "ohe_api_requests_total": "ohe_api_requests_total",
    "ohe_api_request_duration_seconds": "ohe_api_request_duration_seconds_count",
    "ohe_provider_api_errors_total": "ohe_provider_api_errors_total",
    "ohe_provider_api_rate_limits_total": "ohe_provider_api_rate_limits_total",
    "ohe_webhook_requests_total": "ohe_webhook_requests_total",
    "ohe_webhook_processing_time_seconds": "ohe_webhook_processing_time_seconds_count",
    "ohe_database_connections": "ohe_database_connections",
    "ohe_redis_connections": "ohe_redis_connections",
    "ohe_celery_queue_size": "ohe_celery_queue_size",
    "ohe_circuit_breaker_state": "ohe_circuit_breaker_state",
    "ohe_circuit_breaker_transitions_total": "ohe_circuit_breaker_transitions_total",
    "ohe_circuit_breaker_open_duration_seconds": "ohe_circuit_breaker_open_duration_seconds_count",
}
GAUGES_THAT_MAY_BE_ZERO = {"ohe_celery_queue_size", "ohe_circuit_breaker_state"}


def _samples(text: str, name: str) -> list[float]:
    pattern = re.compile(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", re.M)
    return [float(v) for v in pattern.findall(text)]


def test_every_guide_metric_has_data_after_a_sync(make_stack) -> None:
    stack = make_stack(
        gunicorn=True,
        withings={"rate_limit": 12, "rate_window": 2},
        withings_rate_limit=12,
        withings_rate_window=2,
    )
    stack.start_worker(concurrency=2)
    userid, _ = stack.link("metrics-patient", history_days=3)
    stack.withings.admin("POST", "/faults", {"status": 522, "rate": 0.2})  # some upstream errors
    stack.wait_idle(timeout=180)
    stack.withings.admin("DELETE", "/faults")
    grpid = stack.withings.admin("POST", f"/users/{userid}/measures", {"weight_kg": 71})["grpid"]
    wait_for(lambda: stack.observation_of(userid, f"{grpid}:1"), timeout=60)
    env = child_env(stack.settings)
    for action in ("force-open", "force-close"):  # a transition and a time spent open
        subprocess.run(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "ohe.app",
                "ohe",
                "breakers",
                action,
                "withings_api",
            ],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def scrape() -> str:
        return stack.http.get(f"{stack.web_url}/api/metrics/metrics/", timeout=10).text

    def missing(text: str) -> list[str]:
        return [
            name
            for name, sample in GUIDE.items()
            if not _samples(text, sample)
            or (name not in GAUGES_THAT_MAY_BE_ZERO and max(_samples(text, sample)) <= 0)
        ]

    text = wait_for(lambda: scrape() if not missing(scrape()) else None, timeout=30, interval=1)
    assert (
        'ohe_circuit_breaker_transitions_total{breaker="withings_api",from_state="closed",to_state="open"}'
        in text
    )
    assert re.search(r'ohe_task_runs_total\{outcome="success",task="ohe.sync.push"\} [1-9]', text)
