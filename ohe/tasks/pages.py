"""Pages in flight between chain steps, kept by reference in the coordination store.

Only a key travels through the broker: messages stay small (a year of ECGs is megabytes), and
no measurement ever appears in a broker message, in Celery's task log lines (which print
arguments and results) or in Flower. Keys are deterministic, so a redelivered task overwrites
instead of piling up; a TTL bounds how long anything is kept. A reference that has expired
means the work is older than anyone should wait for: the stage is re-run from the fetch.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ohe.extensions import state
from ohe.fhir.bundle import dumps
from ohe.resilience.errors import ApiError

TTL = 24 * 3600.0

Ref = dict[str, Any]


class PageExpired(ApiError):
    """The referenced page is gone from the store (TTL passed or Redis flushed)."""


def key(kind: str, run_id: int, number: int) -> str:
    return f"page:{kind}:{run_id}:{number}"


def put(kind: str, run_id: int, number: int, document: Any) -> Ref:
    """Store ``document`` (JSON with Decimals) and return the reference to pass on."""
    data = dumps(document)
    name = key(kind, run_id, number)
    state().coordination.put(name, data, TTL)
    return {"key": name, "bytes": len(data)}


def get(ref: Ref) -> Any:
    """The document behind a reference; numbers come back as Decimal (no float rounding)."""
    data = state().coordination.get(ref["key"])
    if data is None:
        raise PageExpired(f"page {ref['key']} expired before it was processed")
    return json.loads(data, parse_float=Decimal)


def exists(ref: Ref) -> bool:
    return state().coordination.get(ref["key"]) is not None
