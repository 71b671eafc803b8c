"""One JSON error format for every 4xx and 5xx: RFC 9457 problem details.

``type`` is ``about:blank`` for plain HTTP errors (then ``title`` is the status phrase) and a
``urn:ohe:problem:<slug>`` for our own problem types; ``detail`` says what is wrong in words a
caller can act on; ``request_id`` lets support find the log lines. Internals never leak: an
unhandled error becomes a 500 that says only that, plus the request id.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, g, json
from werkzeug.exceptions import HTTPException

from ohe.observability.scrub import scrub

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class ApiProblem(Exception):
    """Raise from a view to answer with a problem body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug
        self.title = title
        self.headers = headers or {}
        self.extra = extra


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:ohe:problem:{slug}" if slug else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": scrub(detail),
    }
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _from_api_problem(exc: ApiProblem) -> Response:
    return problem(
        exc.status, exc.detail, slug=exc.slug, title=exc.title, headers=exc.headers, **exc.extra
    )


def _from_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers = {}
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    detail = {
        404: "No resource at this URL; check the path (routes end with a slash).",
        405: "This URL does not accept that method.",
        413: "The request body is larger than the server accepts (OHE_MAX_REQUEST_BYTES).",
    }.get(status, exc.description or HTTPStatus(status).phrase)
    return problem(status, detail, headers=headers)


def _from_unhandled(exc: Exception) -> Response:
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"operation": "http_request", "error_type": type(exc).__name__},
    )
    return problem(
        500,
        "An unexpected error occurred; it has been logged. Quote the request id when reporting it.",
    )


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiProblem, _from_api_problem)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(Exception, _from_unhandled)
