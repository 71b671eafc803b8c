"""What the server supports, as data: resource types per FHIR version and their search parameters.

Indexing, search and the CapabilityStatement all read these tables, so a parameter added here is
extracted on write, searchable and advertised at once. The types are the ones OHE writes
(Observation, Device, DeviceAssociation) plus the few a test or a developer needs around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """Search parameter types (the subset of FHIR's that this server implements)."""

    TOKEN = "token"  # noqa: S105 - a FHIR search type, not a secret
    REFERENCE = "reference"
    DATE = "date"


@dataclass(frozen=True)
class SearchParam:
    """One search parameter and where its values come from.

    ``path`` is FHIRPath-like: dotted element names, ``[x]`` for a choice element
    (``effective[x]`` matches effectiveDateTime, effectivePeriod, ...). ``column`` marks the
    parameters answered from the resource table itself (``_id``, ``_lastUpdated``).
    """

    name: str
    kind: Kind
    path: str = ""
    documentation: str = ""
    target: str | None = None  # reference params: only references to this type count
    system: str | None = None  # token on a plain ``code``: the system the binding implies
    column: str | None = None


@dataclass(frozen=True)
class FhirVersion:
    """One FHIR release this server can speak; chosen per process with ``--fhir-version``."""

    name: str
    fhir_version: str
    models: str  # the fhir.resources package whose models validate this release
    types: Mapping[str, tuple[SearchParam, ...]]

    def supports(self, resource_type: str) -> bool:
        return resource_type in self.types

    def params(self, resource_type: str) -> dict[str, SearchParam]:
        """Every parameter valid for ``resource_type``, the common ones included."""
        return {p.name: p for p in (*COMMON, *self.types[resource_type])}


COMMON = (
    SearchParam("_id", Kind.TOKEN, column="id", documentation="Logical id of the resource"),
    SearchParam(
        "_lastUpdated", Kind.DATE, column="updated_us", documentation="When it last changed"
    ),
)

IDENTIFIER = SearchParam("identifier", Kind.TOKEN, "identifier", "Business identifier")
SUBJECT = SearchParam("subject", Kind.REFERENCE, "subject", "Who or what it is about")
PATIENT_SUBJECT = SearchParam(
    "patient", Kind.REFERENCE, "subject", "The subject, when it is a Patient", target="Patient"
)
DEVICE = SearchParam("device", Kind.REFERENCE, "device", "The device", target="Device")

OBSERVATION = (
    IDENTIFIER,
    SearchParam(
        "status",
        Kind.TOKEN,
        "status",
        "registered | preliminary | final | amended | ...",
        system="http://hl7.org/fhir/observation-status",
    ),
    SearchParam("code", Kind.TOKEN, "code", "What was observed"),
    SearchParam("category", Kind.TOKEN, "category", "Classification of the observation"),
    SUBJECT,
    PATIENT_SUBJECT,
    DEVICE,
    SearchParam("date", Kind.DATE, "effective[x]", "When the observation applies"),
)

DEVICE_STATUS = SearchParam(
    "status",
    Kind.TOKEN,
    "status",
    "active | inactive | entered-in-error (| unknown in R4)",
    system="http://hl7.org/fhir/device-status",
)
DEVICE_R5 = (IDENTIFIER, DEVICE_STATUS)
DEVICE_R4 = (
    *DEVICE_R5,
    SearchParam("patient", Kind.REFERENCE, "patient", "Patient the device is for (R4)", "Patient"),
)

DEVICE_ASSOCIATION = (
    IDENTIFIER,
    SearchParam("status", Kind.TOKEN, "status", "implanted | explanted | attached | ..."),
    SUBJECT,
    PATIENT_SUBJECT,
    DEVICE,
)

BUNDLE = (
    IDENTIFIER,
    SearchParam(
        "type", Kind.TOKEN, "type", "Bundle type", system="http://hl7.org/fhir/bundle-type"
    ),
)

SHARED_TYPES: Mapping[str, tuple[SearchParam, ...]] = {
    "Patient": (IDENTIFIER,),
    "Practitioner": (IDENTIFIER,),
    "Organization": (IDENTIFIER,),
    "Bundle": BUNDLE,
    "Observation": OBSERVATION,
}

R5 = FhirVersion(
    "R5",
    "5.0.0",
    "fhir.resources",
    {**SHARED_TYPES, "Device": DEVICE_R5, "DeviceAssociation": DEVICE_ASSOCIATION},
)
R4 = FhirVersion("R4", "4.0.1", "fhir.resources.R4B", {**SHARED_TYPES, "Device": DEVICE_R4})

VERSIONS: Mapping[str, FhirVersion] = {"R5": R5, "R4": R4}
