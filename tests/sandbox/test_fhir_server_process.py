"""Sandbox FHIR server as its own process: command line, clean stop on signals, and data that
survives a restart on the same database file."""

from __future__ import annotations

import ast
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import ROOT, Process, wait_for
from tests.sandbox.conftest import FhirServer, device, issues, measure, measure_token, observation

Start = Callable[..., tuple[Process, FhirServer]]


def test_data_survives_a_restart(fhir_process: Start) -> None:
    process, server = fhir_process()
    kept = server.put(f"Observation?{measure('kept')}", observation("kept")).json()["id"]
    server.put(f"Observation?{measure('kept')}", observation("kept", value=90))
    dropped = server.post("Observation", observation("dropped")).json()["id"]
    server.delete(f"Observation/{dropped}")
    server.put("Device/dev-1", {**device("dev-1"), "id": "dev-1"})
    assert process.stop(signal.SIGTERM) == 0
    assert "stopped" in process.output()

    process, server = fhir_process()  # same database file, new port
    read = server.get(f"Observation/{kept}")
    assert read.status_code == 200
    assert read.headers["ETag"] == 'W/"2"'
    assert read.json()["valueQuantity"]["value"] == 90
    assert server.get(f"Observation/{kept}/_history/1").json()["valueQuantity"]["value"] == 72
    assert server.get(f"Observation/{dropped}").status_code == 410
    assert server.get("Device/dev-1").status_code == 200
    # the identifier index persisted: conditional writes still find the existing resource
    again = server.post(
        "Observation", observation("kept"), headers={"If-None-Exist": measure("kept")}
    )
    assert (again.status_code, again.json()["id"]) == (200, kept)
    updated = server.put(f"Observation?{measure('kept')}", observation("kept", value=91))
    assert updated.headers["ETag"] == 'W/"3"'
    assert server.search("Observation", identifier=measure_token("kept"))["total"] == 1
    assert process.stop(signal.SIGINT) == 0


def test_sigterm_lets_requests_in_flight_finish(fhir_process: Start) -> None:
    process, server = fhir_process("--latency-ms", "1500")
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(server.get, "metadata")
        time.sleep(0.5)  # the request is now waiting inside the server
        assert process.stop(signal.SIGTERM) == 0
        assert in_flight.result().status_code == 200


def test_command_line_faults_and_auth(fhir_process: Start, tmp_path: Path) -> None:
    process, down = fhir_process("--outage", "--retry-after", "4")
    response = down.get("metadata")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "4"
    process.stop()

    _, r4 = fhir_process(
        "--fhir-version",
        "R4",
        "--bearer-token",
        "t0ken",
        "--token-ttl",
        "30",
        db=tmp_path / "r4.db",
    )
    assert r4.get("metadata").json()["fhirVersion"] == "4.0.1"
    assert r4.get("Observation").status_code == 401
    assert r4.get("Observation", headers={"Authorization": "Bearer t0ken"}).status_code == 200
    assert r4.admin("GET", "auth") == {"enabled": True, "token_ttl": 30}


def test_a_database_keeps_its_fhir_version(fhir_process: Start) -> None:
    process, _ = fhir_process()
    process.stop()
    refused, _ = fhir_process("--fhir-version", "R4", wait=False)
    wait_for(lambda: not refused.alive(), timeout=30)
    assert refused.popen.returncode == 2
    assert "holds R5 data" in refused.output()


@pytest.mark.parametrize("option", [["--oauth-client", "no-secret"], ["--error-rate", "3"]])
def test_bad_options_are_refused(fhir_process: Start, option: list[str]) -> None:
    refused, _ = fhir_process(*option, wait=False)
    wait_for(lambda: not refused.alive(), timeout=30)
    assert refused.popen.returncode == 2
    assert "cannot start" in refused.output()


def test_the_process_answers_like_the_embedded_app(fhir_process: Start) -> None:
    """The process serves the same FHIR answers as the embedded app (errors included)."""
    _, server = fhir_process()
    missing = server.get("Observation/none")
    assert missing.status_code == 404
    assert "not known" in issues(missing)
    assert server.post("Observation", observation("p", status="bogus")).status_code == 422


def test_the_package_imports_nothing_else_from_ohe() -> None:
    """A stand-in for an external system must not share code (or bugs) with its client."""
    package = ROOT / "ohe" / "sandbox" / "fhir"
    allowed = set(sys.stdlib_module_names) | {"flask", "werkzeug", "fhir", "orjson"}
    imported: set[str] = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module)
    outside = {
        name
        for name in imported
        if name.split(".")[0] not in allowed and not name.startswith("ohe.sandbox.fhir")
    }
    assert imported, "no imports found: wrong directory?"
    assert outside == set()
