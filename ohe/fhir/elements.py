"""Reusable FHIR data-type fragments built from the codes table (cached, never mutated)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ohe.fhir.codes import CATEGORY_DISPLAY, CATEGORY_SYSTEM, CODES, LOCAL, UCUM, CodeRow


def local_code_system(identifier_base: str) -> str:
    """The deployment's code system for codes without a confirmed LOINC."""
    root = identifier_base.rstrip("/").removesuffix("/sid")
    return f"{root}/CodeSystem/ohe-observation"


def data_type_of(
    concept: dict[str, Any], data_types: Iterable[str], local_system: str
) -> str | None:
    """Which of ``data_types`` a stored resource's ``code`` was built from (None: none of them)."""
    held = {(c.get("system"), c.get("code")) for c in concept.get("coding", [])}
    matches = []
    for data_type in data_types:
        codes = {(c["system"], c["code"]) for c in coded(data_type, local_system)["coding"]}
        if codes <= held:
            matches.append((len(codes), data_type))
    return max(matches)[1] if matches else None  # the most specific row wins


@lru_cache(maxsize=512)
def coded(data_type: str, local_system: str) -> dict[str, Any]:
    """The CodeableConcept of a data type (shared object: treat as read-only)."""
    row = CODES[data_type]
    return {
        "coding": [
            {
                "system": local_system if c.system == LOCAL else c.system,
                "code": c.code,
                "display": c.display,
            }
            for c in row.codes
        ],
        "text": row.text,
    }


@lru_cache(maxsize=16)
def category(name: str) -> list[dict[str, Any]]:
    return [
        {"coding": [{"system": CATEGORY_SYSTEM, "code": name, "display": CATEGORY_DISPLAY[name]}]}
    ]


def quantity(value: Any, row: CodeRow) -> dict[str, Any]:
    return {"value": value, "unit": row.unit_display, "system": UCUM, "code": row.unit}
