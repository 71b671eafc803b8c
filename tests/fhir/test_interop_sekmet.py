"""Interop with a FHIR server nobody here wrote: sekmet-fhir (R4) from PyPI.

sekmet-fhir runs in its own virtualenv (created on first use under .run/, pinned version) on
127.0.0.1 with strict inbound R4 validation. OHE's R4 output is sent through OHE's client,
read back, and sent again — twice concurrently from two processes that serialize their writes
per (patient, provider) with the Redis lock, as OHE's push stage does.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import yaml

from ohe.fhir.client import FhirClient, FhirConfig
from ohe.samples import Component, Sample, group_hourly
from tests.fhir.test_builders import AT, SCALE, representative
from tests.fhir.test_client import breaker, entries_for, weights
from tests.helpers import ROOT, Process, free_port, wait_for

SEKMET = "sekmet-fhir==0.1.1"
VENV = ROOT / ".run" / "sekmet-venv"


def _sekmet_venv() -> Path:
    executable = VENV / "bin" / "sekmet"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                SEKMET,
            ],
            check=True,
            timeout=600,
        )
    return executable


@pytest.fixture
def sekmet(tmp_path: Path):
    executable = _sekmet_venv()
    port = free_port()
    config = tmp_path / "settings.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "host": "127.0.0.1",
                "port": port,
                "base_url": f"http://127.0.0.1:{port}/fhir",
                "data_dir": str(tmp_path / "sekmet-data"),
                "simulator": {"enabled": False},
                "validation": {"inbound": "strict"},
                "log_inbound": False,
            }
        )
    )
    process = Process(
        [str(executable), "serve", "--config", str(config)],
        {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        tmp_path / "sekmet.log",
    )
    base = f"http://127.0.0.1:{port}/fhir"

    def ready() -> bool:
        if not process.alive():
            raise AssertionError("sekmet exited:\n" + process.output()[-3000:])
        return requests.get(f"{base}/metadata", timeout=2).status_code == 200

    wait_for(ready, timeout=60, interval=0.3)
    yield base
    process.stop()


def _r4_samples() -> list[Sample]:
    return [
        *weights(120),
        representative("blood_pressure"),
        representative("sleep"),
        representative("ecg"),
        representative("steps_daily"),
        *group_hourly(
            "heart_rate_intraday",
            [(AT.replace(minute=m), Decimal(60 + m)) for m in range(0, 60, 7)],
            source_prefix="hr",
            device=SCALE,
        ),
        Sample("body_temperature", "measure", "t:71", AT, value=Decimal("36.8")),
        Sample(
            "blood_pressure",
            "measure",
            "bp2:bp",
            AT,
            components=(Component("systolic", Decimal(131)), Component("diastolic", Decimal(85))),
        ),
    ]


def _identifiers(base: str, entries: list[dict]) -> dict[str, int]:
    counts = {}
    for entry in entries:
        resource = entry["resource"]
        ident = resource["identifier"][0]
        found = requests.get(
            f"{base}/{resource['resourceType']}",
            params={"identifier": f"{ident['system']}|{ident['value']}"},
            headers={"Accept": "application/fhir+json"},
            timeout=30,
        ).json()
        counts[ident["value"]] = len(found.get("entry", []))
    return counts


@pytest.mark.integration
def test_r4_bundles_round_trip_through_sekmet_without_duplicates(sekmet: str) -> None:
    entries = entries_for(_r4_samples(), "R4")
    client = FhirClient(FhirConfig(base_url=sekmet, version="R4"), breaker())
    first = client.write(entries)
    assert first.rejected == []
    assert first.created >= len(entries) - 1

    sent = entries[5]["resource"]
    ident = sent["identifier"][0]
    stored = requests.get(
        f"{sekmet}/Observation", params={"identifier": f"{ident['system']}|{ident['value']}"},
        headers={"Accept": "application/fhir+json"}, timeout=30,
    ).json()["entry"][0]["resource"]  # fmt: skip
    for element in ("identifier", "status", "code", "subject", "effectiveDateTime", "category"):
        assert stored[element] == sent[element], element
    assert Decimal(str(stored["valueQuantity"]["value"])) == sent["valueQuantity"]["value"]
    assert stored["device"]["reference"].startswith("Device/")

    again = client.write(entries)
    assert again.created == 0
    assert set(_identifiers(sekmet, entries).values()) == {1}


WRITER = """
import sys
from ohe.coordination import RedisCoordination
from ohe.fhir.client import FhirClient, FhirConfig
from tests.fhir.test_client import breaker, entries_for
from tests.fhir.test_interop_sekmet import _r4_samples
entries = entries_for(_r4_samples(), "R4")
lock = RedisCoordination(sys.argv[2]).lock("fhir-write:0123456789abcdef:withings", ttl=120, wait=120)
with lock:
    print(FhirClient(FhirConfig(base_url=sys.argv[1], version="R4"), breaker()).write(entries).rejected)
"""


@pytest.mark.integration
def test_the_same_bundles_sent_concurrently_from_two_processes_exist_once(
    sekmet: str, redis_url: str, tmp_path: Path
) -> None:
    writers = [
        Process([sys.executable, "-c", WRITER, sekmet, redis_url],
                {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, tmp_path / f"writer-{i}.log")
        for i in range(2)
    ]  # fmt: skip
    for writer in writers:
        assert writer.popen.wait(180) == 0, writer.output()[-3000:]
        assert writer.output().strip().splitlines()[-1] == "[]"
    assert set(_identifiers(sekmet, entries_for(_r4_samples(), "R4")).values()) == {1}
