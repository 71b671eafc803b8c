"""Transaction bundles of conditional writes, serialized to bytes in one step.

Each Observation is a conditional update by its business identifier (``PUT
Observation?identifier=system|value``), so corrections propagate and replays change nothing.
The Devices a batch references travel in the same transaction as conditional creates
(``POST`` + ``ifNoneExist``) and are referenced by ``urn:uuid`` — the server resolves them to
the existing or new Device. Serialization goes straight from dicts with Decimal values to JSON
bytes (orjson; Decimals are written verbatim, never through floats).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import orjson

from ohe.fhir import identifiers
from ohe.fhir.builders import Resource


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f").encode())
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(document: Any) -> bytes:
    return orjson.dumps(document, default=_decimal)


def identifier_of(resource: Resource) -> tuple[str, str]:
    ident = resource["identifier"][0]
    return ident["system"], ident["value"]


def update_entry(resource: Resource, *, referenced: bool = False) -> dict[str, Any]:
    """Conditional update (create if absent, update if present, 412 if duplicated).

    ``fullUrl`` (a deterministic ``urn:uuid``) only when other entries reference this one.
    """
    id_system, value = identifier_of(resource)
    entry: dict[str, Any] = {"resource": resource}
    if referenced:
        entry["fullUrl"] = identifiers.full_url(id_system, value)
    entry["request"] = {
        "method": "PUT",
        "url": identifiers.conditional_url(resource["resourceType"], id_system, value),
    }
    return entry


def stored_body(resource: Resource) -> Resource:
    """A resource read from the server as a conditional-update body (the server owns id, meta)."""
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}


def void_entry(observation: Resource) -> dict[str, Any]:
    """Mark a stored Observation ``entered-in-error`` by its identifier (the audit trail stays)."""
    return update_entry({**stored_body(observation), "status": "entered-in-error"})


def create_entry(resource: Resource) -> dict[str, Any]:
    """Conditional create (create only if no resource has this identifier)."""
    id_system, value = identifier_of(resource)
    condition = identifiers.conditional_url(resource["resourceType"], id_system, value)
    return {
        "fullUrl": identifiers.full_url(id_system, value),
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": condition.split("?", 1)[1],
        },
    }


def transaction(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def chunks(entries: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Split entries into bundles of at most ``size``, keeping each Device with its readers.

    Device create entries come first in ``entries``; every chunk repeats the devices its
    observations reference so that each transaction's ``urn:uuid`` references resolve.
    """
    devices = {e["fullUrl"]: e for e in entries if e["resource"]["resourceType"] == "Device"}
    others = [e for e in entries if e["resource"]["resourceType"] != "Device"]
    if not others:
        yield from (list(devices.values())[i : i + size] for i in range(0, len(devices), size))
        return
    for start in range(0, len(others), size):
        part = others[start : start + size]
        needed = {
            e["resource"]["device"]["reference"]
            for e in part
            if "device" in e["resource"] and e["resource"]["device"]["reference"] in devices
        }
        yield [devices[url] for url in sorted(needed)] + part
