"""Reusable FHIR data-type fragments built from the codes table (cached, never mutated)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ohe.fhir.codes import CATEGORY_DISPLAY, CATEGORY_SYSTEM, CODES, LOCAL, UCUM, CodeRow


def local_code_system(identifier_base: str) -> str:
    """The deployment's code system for codes without a confirmed LOINC."""
    root = identifier_base.rstrip("/").removesuffix("/sid")
    return f"{root}/CodeSystem/ohe-observation"


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
