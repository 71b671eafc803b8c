"""Circuit breakers: shared state through Redis, the guide's registry API, metrics, admin."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from ohe.coordination import RedisCoordination
from ohe.resilience.breakers import BreakerRegistry
from ohe.resilience.errors import ApiError, AuthError, CircuitOpenError, NetworkError
from ohe.settings import BreakerSpec, Settings


@pytest.fixture
def two_processes(redis_url: str, tmp_path) -> Iterator[tuple[BreakerRegistry, BreakerRegistry]]:
    """Two registries on one Redis, as two processes would have them."""
    redis_lib.Redis.from_url(redis_url).flushdb()
    settings = Settings.from_env(
        {}, data_dir=tmp_path, breaker_withings_api=BreakerSpec(3, 2, 1), redis_url=redis_url
    )
    yield (
        BreakerRegistry(settings, RedisCoordination(redis_url)),
        BreakerRegistry(settings, RedisCoordination(redis_url)),
    )
    redis_lib.Redis.from_url(redis_url).flushdb()


def _fail(exc: Exception | None = None):
    def call() -> None:
        raise exc or NetworkError("timeout")

    return call


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_trip_in_one_process_stops_calls_in_the_other(two_processes) -> None:
    one, other = two_processes
    short_before = _value(
        "ohe_provider_api_errors_total", provider="withings", error_type="circuit_breaker"
    )
    opened_before = _value(
        "ohe_circuit_breaker_transitions_total",
        breaker="withings_api",
        from_state="closed",
        to_state="open",
    )
    for _ in range(3):
        with pytest.raises(NetworkError):  # the tripping call still raises the original error
            one.get_breaker("withings_api").call(_fail())
    assert other.get_breaker("withings_api").state == "open"
    with pytest.raises(CircuitOpenError) as refused:
        other.get_breaker("withings_api").call(lambda: "never called")
    assert refused.value.retryable
    assert (
        _value("ohe_provider_api_errors_total", provider="withings", error_type="circuit_breaker")
        == short_before + 1
    )
    assert (
        _value(
            "ohe_circuit_breaker_transitions_total",
            breaker="withings_api",
            from_state="closed",
            to_state="open",
        )
        == opened_before + 1
    )  # counted once, by the process that tripped it
    info = other.get_all_states()["withings_api"]
    assert info["state"] == "open" and info["failure_count"] == 3
    assert info["opened_at"] and info["last_failure_at"]


def test_half_open_closes_after_the_success_threshold_and_reopens_on_failure(two_processes) -> None:
    one, other = two_processes
    breaker = one.get_breaker("withings_api")
    for _ in range(3):
        with pytest.raises(NetworkError):
            breaker.call(_fail())
    time.sleep(1.1)
    with pytest.raises(NetworkError):
        breaker.call(_fail())  # the trial call fails: open again
    assert other.get_breaker("withings_api").state == "open"
    time.sleep(1.1)
    assert breaker.call(lambda: 1) == 1
    assert other.get_breaker("withings_api").state == "half-open"
    assert other.get_breaker("withings_api").call(lambda: 2) == 2
    assert breaker.state == "closed"


def test_errors_that_say_nothing_about_the_upstream_do_not_count(two_processes) -> None:
    breaker = two_processes[0].get_breaker("withings_api")
    for exc in (AuthError("401"), AuthError("401"), AuthError("401"), AuthError("401")):
        with pytest.raises(AuthError):
            breaker.call(_fail(exc))
    assert breaker.state == "closed"
    for _ in range(3):
        with pytest.raises(ApiError):
            breaker.call(_fail(ApiError("503")))
    assert breaker.state == "open"


def test_force_open_outlasts_the_timeout_until_force_close(two_processes) -> None:
    one, other = two_processes
    one.get_breaker("withings_api").force_open()
    time.sleep(1.2)  # longer than the reset timeout
    with pytest.raises(CircuitOpenError, match="forced open"):
        other.get_breaker("withings_api").call(lambda: None)
    assert other.get_all_states()["withings_api"]["forced"] == "open"
    other.reset_all()
    assert one.get_breaker("withings_api").call(lambda: "ok") == "ok"
    assert {info["state"] for info in one.get_all_states().values()} == {"closed"}


def test_calls_run_outside_the_breaker_lock(two_processes) -> None:
    """Four calls must be inside the breaker at once: serialized calls never meet the barrier."""
    breaker = two_processes[0].get_breaker("withings_api")
    barrier = threading.Barrier(4, timeout=10)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(breaker.call(barrier.wait)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1, 2, 3]  # every call passed the barrier together


def test_admin_endpoint_and_metrics_show_a_forced_breaker(
    app: Flask, client: FlaskClient, api_headers: dict[str, str]
) -> None:
    forced = client.post(
        "/api/base/admin/breakers/fhir_server/", json={"action": "force_open"}, headers=api_headers
    )
    assert forced.status_code == 200
    assert forced.get_json()["fhir_server"]["state"] == "open"
    text = client.get("/api/metrics/metrics/").get_data(as_text=True)
    assert 'ohe_circuit_breaker_state{breaker="fhir_server",state="open"} 1.0' in text
    assert 'ohe_circuit_breaker_state{breaker="fhir_server",state="closed"} 0.0' in text
    health = client.get("/api/metrics/health/").get_json()
    assert health["circuit_breakers"]["fhir_server"]["state"] == "open"
    listed = client.get("/api/base/admin/breakers/", headers=api_headers).get_json()
    assert set(listed) == {"withings_api", "fitbit_api", "fhir_server"}
    bad = client.post(
        "/api/base/admin/breakers/fhir_server/", json={"action": "explode"}, headers=api_headers
    )
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "action"
    missing = client.post(
        "/api/base/admin/breakers/nope/", json={"action": "force_open"}, headers=api_headers
    )
    assert missing.status_code == 404
    reset = client.post("/api/base/admin/breakers/reset/", headers=api_headers)
    assert reset.get_json()["fhir_server"]["state"] == "closed"


def test_breaker_cli_commands(app: Flask) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["ohe", "breakers", "force-open", "withings_api"]).exit_code == 0
    status = runner.invoke(args=["ohe", "breakers", "status"]).output
    assert "withings_api" in status and "open" in status
    assert runner.invoke(args=["ohe", "breakers", "force-close", "withings_api"]).exit_code == 0
    assert runner.invoke(args=["ohe", "breakers", "reset"]).exit_code == 0
    unknown = runner.invoke(args=["ohe", "breakers", "force-open", "nope"])
    assert unknown.exit_code == 1 and "no circuit breaker named" in unknown.output
