"""API-key authentication, deny by default.

Every route needs ``Authorization: Bearer <key>`` unless its view is decorated ``@public``
(probes, metrics, webhooks authenticated by provider-specific means, the signed link and OAuth
callback pages). A test walks the URL map to keep it that way. Keys are random, high-entropy
strings; only their SHA-256 is stored, so a lookup by hash is both fast and safe.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlalchemy import select

from ohe.api.problems import ApiProblem
from ohe.crypto import sha256_hex
from ohe.extensions import db
from ohe.models import ApiKey, utcnow

PUBLIC_ATTR = "_ohe_public"
KEY_PREFIX = "ohe_"
LAST_USED_RESOLUTION = timedelta(minutes=1)

F = TypeVar("F", bound=Callable[..., Any])


def public(view: F) -> F:
    """Mark a view as reachable without an API key (it must authenticate by other means)."""
    setattr(view, PUBLIC_ATTR, True)
    return view


def is_public(view: Callable[..., Any] | None) -> bool:
    return bool(getattr(view, PUBLIC_ATTR, False))


def create_key(name: str) -> tuple[ApiKey, str]:
    """A new key row and the plaintext key, which is never stored and shown only once."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=plaintext[:12], key_hash=sha256_hex(plaintext))
    db.session.add(row)
    return row, plaintext


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(
        401,
        detail,
        slug="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="ohe"'},
    )


def require_api_key() -> None:
    """``before_request`` hook: refuse anonymous calls to every non-public view."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or is_public(view):
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(
            "This endpoint needs an API key in the Authorization header, as 'Bearer <key>'."
        )
    key = db.session.scalar(
        select(ApiKey).where(
            ApiKey.key_hash == sha256_hex(token.strip()), ApiKey.revoked_at.is_(None)
        )
    )
    if key is None:
        raise _unauthorized("The API key is not valid (unknown or revoked).")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
        db.session.commit()
    g.api_key_id = key.id
