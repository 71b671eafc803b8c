"""Shared builder fixtures: a build context per FHIR version."""

from __future__ import annotations

import pytest

from ohe.fhir.builders import BuildContext

BASE = "https://ohe.example.org/fhir/sid"


def make_context(version: str = "R5", scope: str = "0123456789abcdef", patient: str = "p-1"):
    return BuildContext(
        provider="withings",
        patient=f"Patient/{patient}",
        scope=scope,
        identifier_base=BASE,
        source="https://ohe.example.org#withings",
        version=version,
    )


@pytest.fixture(params=["R5", "R4"])
def ctx(request: pytest.FixtureRequest) -> BuildContext:
    return make_context(request.param)


# The sandbox FHIR server fixtures (real HTTP servers), shared with tests/sandbox.
from tests.sandbox.conftest import FhirServer, fhir, fhir_process, fhir_r4, start_fhir  # noqa: E402, F401
