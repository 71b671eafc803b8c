"""Deterministic business identifiers: the idempotency key of every resource we write.

``system`` is a URI owned by the deployment, per provider and record kind
(``<base>/<provider>/<kind>``, never the provider's domain); ``value`` is
``<link scope>:<provider natural key>``. The link scope is an opaque keyed hash of the provider
account, so identifiers are unique across patients without carrying any PHI (no patient id, no
MRN), and cannot be guessed from provider ids. Re-syncs, webhook replays and Celery redeliveries
therefore always address the same resource.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache
from urllib.parse import quote

from ohe.crypto import keyed_digest

# The identifier kinds OHE writes, by the resource type that carries them.
KINDS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "Observation": (
        "measure",
        "activity-day",
        "intraday-hour",
        "sleep",
        "ecg",
        "datapoint",
        "daily",
    ),
    "Device": ("device",),
    "DeviceAssociation": ("device-association",),
}
RECORD_KINDS = frozenset(kind for kinds in KINDS_BY_TYPE.values() for kind in kinds)
_URN_NAMESPACE = uuid.UUID("9d3c1f64-39a4-4c1e-9a35-6f1f0b7c2d11")


def link_scope(secret: str, provider: str, external_user_id: str) -> str:
    """First 16 hex of HMAC-SHA256(secret, provider + external user id): opaque, stable."""
    return keyed_digest(secret, "link-scope", provider, external_user_id, length=16)


def natural_key(resource: dict, id_system: str, scope: str) -> str | None:
    """The provider's key in ``resource``'s identifier of ``id_system`` written for this link
    (``scope``), or None when the resource is not this link's."""
    prefix = f"{scope}:"
    for ident in resource.get("identifier", []):
        value = str(ident.get("value", ""))
        if ident.get("system") == id_system and value.startswith(prefix):
            return value[len(prefix) :]
    return None


def system(base: str, provider: str, kind: str) -> str:
    if kind not in RECORD_KINDS:
        raise ValueError(f"unknown identifier kind {kind!r}")
    return f"{base}/{provider}/{kind}"


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~:-]*")


@lru_cache(maxsize=256)
def _quoted_system(id_system: str) -> str:
    return quote(id_system, safe=":/")


def conditional_url(resource_type: str, id_system: str, value: str) -> str:
    """``Type?identifier=system|value`` with both parts percent-encoded around a literal ``|``.

    Hot path (one per resource): systems are few and cached; values are usually URL-safe.
    """
    if not _URL_SAFE.fullmatch(value):
        value = quote(value, safe=":")
    return f"{resource_type}?identifier={_quoted_system(id_system)}|{value}"


def full_url(id_system: str, value: str) -> str:
    """A deterministic ``urn:uuid`` for bundle-internal references (same input, same bundle)."""
    return f"urn:uuid:{uuid.uuid5(_URN_NAMESPACE, id_system + '|' + value)}"
