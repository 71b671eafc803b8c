"""Withings response statuses: the ``{status, body}`` envelope and the codes the sandbox emits.

Errors are HTTP 200 with a non-zero ``status`` (provider-apis.md §1.3). Clients are expected to
act on the *group* of a status, so the sandbox only uses one representative code per situation,
listed here as data rather than scattered through the handlers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson
from flask import Response


class Status(IntEnum):
    OK = 0
    INVALID_TOKEN = 401  # "authentication failed" group (100, 101, 102, 200, 401)
    UNAUTHORIZED = 277  # "unauthorized" group (214, 277, 2553-2555): missing scope [U code]
    NO_SUCH_SUBSCRIPTION = 286  # invalid-params group; notify get on an unknown subscription
    BAD_CALLBACK = 293  # invalid-params group; callback URL failed validation or HEAD check
    NOTHING_TO_REVOKE = 294  # invalid-params group; notify revoke of an unknown subscription
    INVALID_PARAMS = 503
    TIMEOUT = 522
    BAD_STATE = 524
    TOO_MANY_REQUESTS = 601


ERROR_TEXT: dict[int, str] = {
    Status.INVALID_TOKEN: (
        "XRequestID: Not provided invalid_token: The access token provided is invalid"
    ),
    Status.UNAUTHORIZED: "Unauthorized: the access token does not grant the scope of this call",
    Status.NO_SUCH_SUBSCRIPTION: "No such subscription was found",
    Status.BAD_CALLBACK: "The callback URL is either absent or incorrect",
    Status.NOTHING_TO_REVOKE: "No such subscription could be deleted",
    Status.INVALID_PARAMS: "Invalid Params",
    Status.TIMEOUT: "Timeout",
    Status.BAD_STATE: "Bad state",
    Status.TOO_MANY_REQUESTS: "Too many requests",
}


@dataclass
class ApiError(Exception):
    """Raised anywhere in a handler; becomes an error envelope (never an HTTP error)."""

    status: int
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status} {self.detail}".strip()


def invalid(detail: str) -> ApiError:
    """The catch-all for bad input; ``detail`` goes to the sandbox log, not the client."""
    return ApiError(Status.INVALID_PARAMS, detail)


def envelope(status: int, body: dict[str, Any] | None = None) -> Response:
    payload: dict[str, Any] = {"status": int(status), "body": body if body is not None else {}}
    if status != Status.OK:
        payload["error"] = ERROR_TEXT.get(status, "An error occurred")
    return Response(orjson.dumps(payload), status=200, mimetype="application/json")
