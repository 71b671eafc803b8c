"""Pages in flight between chain steps: inline when small, by reference in Redis when large.

A broker message must stay small (a year of ECGs is megabytes), so a fetched page or a
transformed batch larger than ``INLINE_LIMIT`` is stored in the coordination backend under a
deterministic key with a TTL and only the key travels. Deterministic keys make redelivered
tasks overwrite, not pile up. A reference that has expired means the work is older than anyone
should wait for; the stage is re-run from the fetch by the sweeper.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ohe.extensions import state
from ohe.fhir.bundle import dumps
from ohe.resilience.errors import ApiError

INLINE_LIMIT = 32 * 1024
TTL = 24 * 3600.0

Ref = dict[str, Any]


class PageExpired(ApiError):
    """The referenced page is gone from the store (TTL passed or Redis flushed)."""


def key(kind: str, run_id: int, number: int) -> str:
    return f"page:{kind}:{run_id}:{number}"


def put(kind: str, run_id: int, number: int, document: Any) -> Ref:
    """Store ``document`` (JSON with Decimals) and return the reference to pass on."""
    data = dumps(document)
    if len(data) <= INLINE_LIMIT:
        return {"inline": data.decode()}
    name = key(kind, run_id, number)
    state().coordination.put(name, data, TTL)
    return {"key": name, "bytes": len(data)}


def get(ref: Ref) -> Any:
    """The document behind a reference; numbers come back as Decimal (no float rounding)."""
    if "inline" in ref:
        data: bytes | str = ref["inline"]
    else:
        found = state().coordination.get(ref["key"])
        if found is None:
            raise PageExpired(f"page {ref['key']} expired before it was processed")
        data = found
    return json.loads(data, parse_float=Decimal)


def exists(ref: Ref) -> bool:
    return "inline" in ref or state().coordination.get(ref["key"]) is not None
