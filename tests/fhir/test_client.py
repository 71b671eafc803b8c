"""The FHIR client against the sandbox FHIR server (a real HTTP server, R5 and R4)."""

from __future__ import annotations

import math
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ohe.coordination import MemoryCoordination
from ohe.fhir import bundle
from ohe.fhir.builders import build_observation
from ohe.fhir.client import FhirClient, FhirConfig
from ohe.fhir.devices import build_device
from ohe.fhir.validation import validator
from ohe.resilience.breakers import DEFINITIONS, Breaker
from ohe.resilience.errors import AuthError, CircuitOpenError, NetworkError, RateLimitError
from ohe.samples import Sample
from ohe.settings import BreakerSpec
from tests.fhir.conftest import FhirServer, make_context
from tests.fhir.test_builders import AT, SCALE
from tests.helpers import ROOT, Process

FHIR_BREAKER = next(d for d in DEFINITIONS if d.name == "fhir_server")


def breaker(spec: BreakerSpec = BreakerSpec(5, 3, 60)) -> Breaker:
    return Breaker(FHIR_BREAKER, spec, MemoryCoordination())


def client_for(server: FhirServer, version: str = "R5", **config) -> FhirClient:
    return FhirClient(
        FhirConfig(base_url=server.base, version=version, **config),
        config.pop("breaker", None) or breaker(),
    )


def entries_for(samples: list[Sample], version: str = "R5") -> list[dict]:
    """What the push stage sends: each referenced Device as a conditional create, then updates."""
    ctx = make_context(version)
    observations = [r for s in samples if (r := build_observation(s, ctx)) is not None]
    devices = {s.device.device_id: s.device for s in samples if s.device is not None}
    resources, rejected = validator("fast", version).partition(
        [build_device(d, ctx, with_state=False) for d in devices.values()] + observations
    )
    assert rejected == []
    return [
        bundle.create_entry(r) if r["resourceType"] == "Device" else bundle.update_entry(r)
        for r in resources
    ]


def weights(count: int, start: int = 0) -> list[Sample]:
    return [
        Sample("weight", "measure", f"{7000 + i}:1", AT.replace(minute=i % 60, hour=i // 60 % 24),
               value=Decimal("70.5") + i, device=SCALE)
        for i in range(start, start + count)
    ]  # fmt: skip


def _written(resource_type: str, outcome: str) -> float:
    labels = {"resource_type": resource_type, "outcome": outcome}
    return REGISTRY.get_sample_value("ohe_fhir_resources_written_total", labels) or 0.0


@pytest.mark.parametrize("version", ["R5", "R4"])
def test_writes_are_idempotent_transactions_with_devices_resolved(start_fhir, version: str) -> None:
    server = start_fhir(fhir_version=version)
    client = client_for(server, version)
    entries = entries_for(weights(450), version)
    created_before = _written("Observation", "created")

    first = client.write(entries)
    assert first.created == 451  # 450 observations + the scale
    assert first.existing == 2  # the scale travels in each of the 3 bundles, created once
    assert first.requests == math.ceil(450 / 200) == 3
    assert _written("Observation", "created") == created_before + 450
    devices = server.ids("Device")
    assert len(devices) == 1
    observation = server.search(
        "Observation", identifier=entries[1]["resource"]["identifier"][0]["value"]
    )
    assert observation["entry"][0]["resource"]["device"]["reference"] == f"Device/{devices.pop()}"

    server.admin("POST", "stats/reset")
    again = client.write(entries)
    assert (again.created, again.updated, again.existing) == (0, 450, 3)
    stats = server.stats()
    assert stats["resources"]["created"] == 0
    assert stats["resources"]["updated"] == 0  # identical content: no new versions
    assert len(server.ids("Observation")) == 450


def test_corrections_propagate_as_new_versions(fhir) -> None:
    client = client_for(fhir)
    client.write(entries_for(weights(3)))
    corrected = weights(3)
    corrected[1] = Sample(
        **{**{n: getattr(corrected[1], n) for n in corrected[1].__slots__}, "value": Decimal(99)}
    )
    result = client.write(entries_for(corrected))
    assert result.updated == 3  # two unchanged (same version) and one new version
    assert fhir.stats()["resources"]["updated"] == 1
    found = fhir.search("Observation", identifier=f"0123456789abcdef:{7001}:1")
    assert found["entry"][0]["resource"]["valueQuantity"]["value"] == 99


def test_a_conflict_on_existing_duplicates_is_already_there_not_a_failure(fhir) -> None:
    entry = entries_for(weights(1))[1]
    duplicate = {k: v for k, v in entry["resource"].items() if k != "device"}
    for _ in range(2):  # someone else created duplicates (plain creates, no condition)
        created = fhir.http.post(
            f"{fhir.base}/Observation", data=bundle.dumps(duplicate),
            headers={"Content-Type": "application/fhir+json"}, timeout=30,
        )  # fmt: skip
        assert created.status_code == 201
    result = client_for(fhir).write(entries_for(weights(1)))
    assert result.existing == 1
    assert result.rejected == []


def test_resources_the_server_rejects_are_isolated_and_the_rest_written(fhir) -> None:
    entries = entries_for(weights(40))
    poisoned = entries[17]["resource"] = {
        **entries[17]["resource"],
        "deviceName": [{"name": "x", "type": "model-name"}],
    }
    result = client_for(fhir).write(entries)
    assert len(result.rejected) == 1
    assert "deviceName" in result.rejected[0]
    assert result.created == 40  # 39 observations and the device (repeated in each bisected part)
    assert poisoned["identifier"][0]["value"] not in {
        e["resource"]["identifier"][0]["value"]
        for e in fhir.search("Observation", _count=100)["entry"]
    }


def test_rate_limits_and_outages_are_retryable_errors_and_open_the_breaker(fhir) -> None:
    guard = breaker(BreakerSpec(5, 3, 1))
    client = FhirClient(FhirConfig(base_url=fhir.base), guard)
    fhir.admin("POST", "faults", {"rate_limit_rate": 1.0, "retry_after": 7})
    with pytest.raises(RateLimitError) as limited:
        client.write(entries_for(weights(1)))
    assert limited.value.retry_after == 7
    assert limited.value.retryable
    assert guard.state == "closed"  # a rate limit says nothing about the server's health

    fhir.admin("POST", "faults", {"rate_limit_rate": 0, "outage": True})
    for _ in range(5):
        with pytest.raises(Exception) as failure:
            client.write(entries_for(weights(1)))
        assert failure.value.retryable
    assert guard.state == "open"
    with pytest.raises(CircuitOpenError):
        client.write(entries_for(weights(1)))

    fhir.admin("DELETE", "faults")
    time.sleep(1.1)
    for _ in range(3):
        client.write(entries_for(weights(1)))
    assert guard.state == "closed"
    assert len(fhir.ids("Observation")) == 1  # nothing lost, nothing doubled


def test_unreachable_server_is_a_network_error() -> None:
    client = FhirClient(FhirConfig(base_url="http://127.0.0.1:9/fhir", timeout=2), breaker())
    with pytest.raises(NetworkError):
        client.write(entries_for(weights(1)))


def test_static_bearer_auth(start_fhir) -> None:
    server = start_fhir(bearer_token="s3cret")
    assert (
        client_for(server, auth="bearer", token="s3cret").write(entries_for(weights(2))).created
        == 3
    )
    with pytest.raises(AuthError) as refused:
        client_for(server, auth="bearer", token="wrong").write(entries_for(weights(2)))
    assert "s3cret" not in str(refused.value) and "wrong" not in str(refused.value)


def test_client_credentials_tokens_are_cached_and_refreshed(start_fhir) -> None:
    server = start_fhir(oauth_client="ohe:client-secret", token_ttl=300)
    client = client_for(
        server, auth="client_credentials", token_url=f"{server.root}/oauth/token",
        client_id="ohe", client_secret="client-secret",
    )  # fmt: skip
    for start in range(0, 30, 10):
        client.write(entries_for(weights(10, start)))
    assert server.stats()["auth"]["tokens_issued"] == 1  # cached between requests
    server.admin("POST", "auth/revoke")  # the server forgets every token: next call gets 401
    client.write(entries_for(weights(5, 100)))
    assert server.stats()["auth"]["tokens_issued"] == 2  # refreshed once, then succeeded
    server.admin("POST", "auth", {"token_ttl": 20})  # shorter than the refresh margin
    client._tokens.invalidate()
    client.write(entries_for(weights(1, 200)))
    client.write(entries_for(weights(1, 201)))
    assert server.stats()["auth"]["tokens_issued"] == 4  # refreshed before it expires


WRITER = """
import sys
from tests.fhir.test_client import client_for, entries_for, weights
from tests.sandbox.conftest import FhirServer
from pathlib import Path
server = FhirServer(sys.argv[1], Path("unused"))
result = client_for(server).write(entries_for(weights(300)))
print(result.written)
"""


def test_the_same_measurements_sent_concurrently_from_two_processes_exist_once(
    fhir_process, tmp_path: Path
) -> None:
    _, server = fhir_process()
    writers = [
        Process(
            [sys.executable, "-c", WRITER, server.root],
            {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            tmp_path / f"w{i}.log",
        )
        for i in range(2)
    ]
    for writer in writers:
        assert writer.popen.wait(120) == 0, writer.output()
    assert [w.output().strip().splitlines()[-1] for w in writers] == [
        "302",
        "302",
    ]  # 300 observations + the device in each of 2 bundles
    assert len(server.ids("Observation")) == 300
    assert len(server.ids("Device")) == 1
