"""Sandbox FHIR server: concurrent conditional writes never produce duplicates.

Real servers race here (fhir-mapping.md §9.3); the sandbox must not, or it would hide OHE bugs
instead of exposing them. Many clients send the same conditional writes at once — against one
threaded server, and against two server processes sharing one SQLite file.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.helpers import Process
from tests.sandbox.conftest import (
    FHIR_JSON,
    FhirServer,
    entry,
    measure,
    measure_token,
    observation,
    transaction,
)

THREADS = 8
KEYS = [f"race-{n}" for n in range(25)]


def _race(work: Callable[[int, str], int]) -> Counter[int]:
    """Every thread runs ``work`` on every key, each in its own shuffled order."""

    def client(worker: int) -> list[int]:
        keys = KEYS[:]
        random.Random(worker).shuffle(keys)
        return [work(worker, key) for key in keys]

    with ThreadPoolExecutor(THREADS) as pool:
        return Counter(
            status for statuses in pool.map(client, range(THREADS)) for status in statuses
        )


def _one_per_identifier(server: FhirServer) -> None:
    for key in KEYS:
        found = server.search("Observation", identifier=measure_token(key))
        assert found["total"] == 1, (key, found["total"])
    assert server.search("Observation", _summary="count")["total"] == len(KEYS)


def test_concurrent_conditional_updates(fhir: FhirServer) -> None:
    def work(worker: int, key: str) -> int:
        url = f"{fhir.base}/Observation?{measure(key)}"
        resource = observation(key, value=worker)
        return requests.put(url, json=resource, headers=FHIR_JSON, timeout=30).status_code

    statuses = _race(work)
    assert statuses[201] == len(KEYS)  # exactly one creator per identifier
    assert statuses[201] + statuses[200] == THREADS * len(KEYS)
    _one_per_identifier(fhir)


def test_concurrent_conditional_creates(fhir: FhirServer) -> None:
    def work(worker: int, key: str) -> int:
        headers = {**FHIR_JSON, "If-None-Exist": measure(key)}
        url = f"{fhir.base}/Observation"
        return requests.post(url, json=observation(key), headers=headers, timeout=30).status_code

    statuses = _race(work)
    assert statuses == Counter({201: len(KEYS), 200: (THREADS - 1) * len(KEYS)})
    _one_per_identifier(fhir)


def test_concurrent_transactions(fhir: FhirServer) -> None:
    def work(worker: int, key: str) -> int:
        bundle = transaction(
            entry("PUT", f"Observation?{measure(key)}", observation(key, value=worker)),
            entry("PUT", f"Observation?{measure(key + '-b')}", observation(key + "-b")),
        )
        response = requests.post(fhir.base, json=bundle, headers=FHIR_JSON, timeout=30)
        return response.status_code

    assert _race(work) == Counter({200: THREADS * len(KEYS)})
    for key in KEYS:
        for suffix in ("", "-b"):
            found = fhir.search("Observation", identifier=measure_token(f"{key}{suffix}"))
            assert found["total"] == 1


def test_two_server_processes_on_one_database(
    fhir_process: Callable[..., tuple[Process, FhirServer]],
) -> None:
    _, first = fhir_process()
    _, second = fhir_process()  # same default db file in this test's tmp_path
    assert first.db == second.db

    def work(worker: int, key: str) -> int:
        server = (first, second)[(worker + KEYS.index(key)) % 2]
        url = f"{server.base}/Observation?{measure(key)}"
        response = requests.put(
            url, json=observation(key, value=worker), headers=FHIR_JSON, timeout=30
        )
        return response.status_code

    statuses = _race(work)
    assert statuses[201] == len(KEYS)
    assert statuses[201] + statuses[200] == THREADS * len(KEYS)
    _one_per_identifier(first)
    _one_per_identifier(second)
