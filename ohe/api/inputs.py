"""Request input: one place that reads JSON bodies and parameters and says what is wrong.

Every field error becomes a 400 problem naming the field (``errors: [{field, message}]``), so a
caller fixing a request never has to guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import request

from ohe.api.problems import ApiProblem

#: An EHR user id is the FHIR Patient id: FHIR's id syntax.
EHR_USER_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def invalid(field: str, message: str) -> ApiProblem:
    return ApiProblem(
        400,
        f"{field}: {message}",
        slug="invalid-request",
        title="Invalid request",
        errors=[{"field": field, "message": message}],
    )


def body() -> dict[str, Any]:
    """The JSON object body (form bodies are accepted too); 400 if it is neither."""
    if request.mimetype == "application/json" or (request.data and not request.form):
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise invalid("body", "expected a JSON object")
        return data
    return request.form.to_dict()


def inputs() -> dict[str, Any]:
    """Query parameters overlaid by the body (the reference accepted both)."""
    values: dict[str, Any] = request.args.to_dict()
    if request.method in ("POST", "PUT", "DELETE") and (request.data or request.form):
        values.update(body())
    return values


def ehr_user_id(values: dict[str, Any]) -> str:
    value = values.get("ehr_user_id")
    if value is None or value == "":
        raise invalid("ehr_user_id", "is required")
    if not isinstance(value, str) or not EHR_USER_ID.match(value):
        raise invalid("ehr_user_id", "expected the FHIR Patient id: 1-64 of A-Z a-z 0-9 - .")
    return value


def optional_url(values: dict[str, Any], field: str) -> str | None:
    value = values.get(field)
    if value in (None, ""):
        return None
    parts = urlsplit(str(value))
    if not parts.scheme or parts.scheme.lower() in ("javascript", "data", "vbscript", "file"):
        raise invalid(field, "expected an absolute URL or an app deep link (scheme://...)")
    if len(str(value)) > 1024:
        raise invalid(field, "longer than 1024 characters")
    return str(value)


def instant(values: dict[str, Any], field: str) -> datetime | None:
    value = values.get(field)
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid(field, "expected an ISO 8601 date-time, e.g. 2026-03-04T00:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def string_list(
    values: dict[str, Any], field: str, allowed: Callable[[str], bool]
) -> list[str] | None:
    value = values.get(field)
    if value in (None, "", []):
        return None
    items = value if isinstance(value, list) else str(value).split(",")
    if not all(isinstance(i, str) and allowed(i.strip()) for i in items):
        raise invalid(field, "contains unknown values")
    return [i.strip() for i in items]


def boolean(values: dict[str, Any], field: str) -> bool:
    value = values.get(field, False)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes"):
        return True
    if str(value).lower() in ("", "0", "false", "no"):
        return False
    raise invalid(field, "expected true or false")
