"""The CapabilityStatement (``GET [base]/metadata``), generated from the catalog.

Clients (OHE's included) read it to learn the FHIR version and what the server can do; deriving
it from the same tables the server runs on keeps it from advertising anything it does not do.
"""

from __future__ import annotations

from ohe.sandbox.fhir.catalog import FhirVersion
from ohe.sandbox.fhir.dates import Instant, now_us
from ohe.sandbox.fhir.search import DEFAULT_COUNT, MAX_COUNT

TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system")


def statement(version: FhirVersion, base: str, *, auth: str | None) -> dict:
    """``auth`` describes the security the server enforces (None: open)."""
    resources = []
    for resource_type in sorted(version.types):
        params = version.params(resource_type).values()
        resources.append(
            {
                "type": resource_type,
                "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
                "versioning": "versioned-update",
                "readHistory": True,
                "updateCreate": True,
                "conditionalCreate": True,
                "conditionalRead": "not-supported",
                "conditionalUpdate": True,
                "conditionalDelete": "single",
                "searchParam": [
                    {"name": p.name, "type": str(p.kind), "documentation": p.documentation}
                    for p in params
                ],
            }
        )
    rest: dict = {
        "mode": "server",
        "documentation": (
            f"Sandbox FHIR server: _count defaults to {DEFAULT_COUNT} (max {MAX_COUNT}); "
            "unknown search parameters are rejected (400)."
        ),
        "resource": resources,
        "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
    }
    if auth:
        rest["security"] = {"description": auth}
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": Instant.of_us(now_us()).text,
        "publisher": "Open Health Exchange",
        "kind": "instance",
        "software": {"name": "OHE sandbox FHIR server"},
        "implementation": {"description": "OHE sandbox FHIR server", "url": base},
        "fhirVersion": version.fhir_version,
        "format": ["json"],
        "rest": [rest],
    }
