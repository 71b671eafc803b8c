"""Fixtures for the sandbox FHIR server: a real server on a free port, talked to over HTTP.

``start_fhir`` runs the Flask app under werkzeug's threaded server in a background thread (fast,
one per test, its own SQLite file); ``fhir_process`` runs ``python -m ohe.sandbox.fhir`` as a
child process for what only a process can show (restart, signals, two servers on one file).
Resource builders produce the shapes OHE writes (fhir-mapping.md §1, §7).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import BaseWSGIServer, make_server

from ohe.sandbox.fhir import create_app
from ohe.sandbox.fhir.__main__ import QuietHandler
from tests.helpers import Process, free_port, wait_for

FHIR_JSON = {"Content-Type": "application/fhir+json"}
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SID = "https://ohe.test/fhir/sid/withings"


@dataclass
class FhirServer:
    """A running sandbox: ``base`` is the FHIR base URL, ``root`` the admin/OAuth root."""

    root: str
    db: Path
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def base(self) -> str:
        return f"{self.root}/fhir"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(f"{self.base}/{path}".rstrip("/"), timeout=30, **kwargs)

    def post(self, path: str, resource: Any, **kwargs: Any) -> requests.Response:
        headers = {**FHIR_JSON, **kwargs.pop("headers", {})}
        url = f"{self.base}/{path}".rstrip("/")
        return self.http.post(url, json=resource, headers=headers, timeout=30, **kwargs)

    def put(self, path: str, resource: Any, **kwargs: Any) -> requests.Response:
        headers = {**FHIR_JSON, **kwargs.pop("headers", {})}
        return self.http.put(
            f"{self.base}/{path}", json=resource, headers=headers, timeout=30, **kwargs
        )

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.delete(f"{self.base}/{path}", timeout=30, **kwargs)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.root}/_sandbox/{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return self.admin("GET", "stats")

    def search(self, resource_type: str, **params: Any) -> dict:
        response = self.get(resource_type, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def ids(self, resource_type: str, **params: Any) -> set[str]:
        """Ids of every match, following next links."""
        found: set[str] = set()
        page = self.search(resource_type, **params)
        while True:
            found |= {e["resource"]["id"] for e in page.get("entry", [])}
            following = [link["url"] for link in page["link"] if link["relation"] == "next"]
            if not following:
                return found
            page = self.http.get(following[0], timeout=30).json()


@dataclass
class ThreadedServer:
    """A sandbox app served by werkzeug's threaded server on a background thread."""

    server: BaseWSGIServer
    thread: threading.Thread
    app: Any

    @classmethod
    def start(cls, db: Path, **options: Any) -> ThreadedServer:
        app = create_app(db, **options)
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        return cls(server, thread, app)

    @property
    def fhir(self) -> FhirServer:
        """A client for this server (a new one on every access)."""
        db = Path(self.app.extensions["ohe_sandbox_fhir"].store.path)
        return FhirServer(f"http://127.0.0.1:{self.server.server_port}", db)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        self.app.extensions["ohe_sandbox_fhir"].store.close()


@pytest.fixture
def start_fhir(tmp_path: Path) -> Iterator[Callable[..., FhirServer]]:
    """Start a sandbox in this process; keyword arguments go to ``create_app``."""
    running: list[ThreadedServer] = []

    def start(db: Path | None = None, **options: Any) -> FhirServer:
        running.append(ThreadedServer.start(db or tmp_path / f"fhir-{len(running)}.db", **options))
        return running[-1].fhir

    yield start
    for item in running:
        item.stop()


@pytest.fixture
def fhir(start_fhir: Callable[..., FhirServer]) -> FhirServer:
    """An R5 sandbox with no auth and no faults."""
    return start_fhir()


@pytest.fixture
def fhir_r4(start_fhir: Callable[..., FhirServer]) -> FhirServer:
    return start_fhir(fhir_version="R4")


@pytest.fixture
def fhir_process(tmp_path: Path) -> Iterator[Callable[..., tuple[Process, FhirServer]]]:
    """Start ``python -m ohe.sandbox.fhir`` with extra CLI arguments; stopped at teardown."""
    started: list[Process] = []

    def start(*args: str, db: Path | None = None, wait: bool = True) -> tuple[Process, FhirServer]:
        db = db or tmp_path / "fhir.db"
        port = free_port()
        command = [sys.executable, "-m", "ohe.sandbox.fhir", "--port", str(port), "--db", str(db)]
        log = tmp_path / f"fhir-process-{len(started)}.log"
        process = Process([*command, *args], {**os.environ, "PYTHONUNBUFFERED": "1"}, log)
        started.append(process)
        server = FhirServer(f"http://127.0.0.1:{port}", db)
        if wait:

            def healthy() -> bool:
                if not process.alive():
                    raise AssertionError("sandbox exited:\n" + process.output())
                return requests.get(f"{server.root}/_sandbox/health", timeout=1).ok

            wait_for(healthy, timeout=30)
        return process, server

    yield start
    for process in started:
        process.stop()


# --- resource builders ----------------------------------------------------------------------


def observation(
    key: str,
    *,
    patient: str = "p1",
    code: str = "8867-4",
    value: float = 72,
    status: str = "final",
    when: str = "2026-03-04T10:00:00Z",
    category: str = "vital-signs",
    **extra: Any,
) -> dict:
    """A heart-rate-like Observation with business identifier ``SID/measure|key``."""
    return {
        "resourceType": "Observation",
        "identifier": [{"system": f"{SID}/measure", "value": key}],
        "status": status,
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
        **extra,
    }


def device(key: str, **extra: Any) -> dict:
    """An R5 Device (displayName is R5-only)."""
    return {
        "resourceType": "Device",
        "identifier": [{"system": f"{SID}/device", "value": key}],
        "status": "active",
        "manufacturer": "Withings",
        "displayName": "BPM Core",
        **extra,
    }


def device_association(key: str, device_ref: str, patient: str = "p1", **extra: Any) -> dict:
    return {
        "resourceType": "DeviceAssociation",
        "identifier": [{"system": f"{SID}/device-association", "value": key}],
        "device": {"reference": device_ref},
        "status": {
            "coding": [
                {"system": "http://hl7.org/fhir/deviceassociation-status", "code": "attached"}
            ]
        },
        "subject": {"reference": f"Patient/{patient}"},
        **extra,
    }


def transaction(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(method: str, url: str, resource: dict | None = None, **request: str) -> dict:
    """A bundle entry; extra keywords go into ``request`` (ifNoneExist, ifMatch) or fullUrl."""
    full_url = request.pop("fullUrl", None)
    item: dict = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        item["resource"] = resource
    if full_url:
        item["fullUrl"] = full_url
    return item


def measure_token(key: str) -> str:
    """The ``system|value`` token of an Observation's business identifier."""
    return f"{SID}/measure|{key}"


def measure(key: str) -> str:
    """The conditional URL query for an Observation's identifier."""
    return f"identifier={measure_token(key)}"


def issues(response: requests.Response) -> str:
    """All diagnostics of an OperationOutcome answer, joined (for assertions)."""
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return " | ".join(i.get("diagnostics", "") for i in body["issue"])
