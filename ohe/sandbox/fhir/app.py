"""The Flask application: HTTP in, :class:`FhirRequest` through the interactions, FHIR JSON out.

Everything under ``/fhir`` goes through one view: the path is parsed into a request, routed by the
table in :mod:`interactions`, and the answer rendered with the headers the spec asks for
(ETag, Last-Modified, Location, ``Prefer`` handling). Faults and authentication run first, in a
``before_request`` hook, so they apply to every FHIR interaction alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from ohe.sandbox.fhir import admin, auth
from ohe.sandbox.fhir.catalog import VERSIONS, FhirVersion
from ohe.sandbox.fhir.faults import FaultConfig, Faults
from ohe.sandbox.fhir.indexing import indexer
from ohe.sandbox.fhir.interactions import Context, dispatch, interaction
from ohe.sandbox.fhir.outcomes import FhirError, information, status_line
from ohe.sandbox.fhir.protocol import FhirRequest, FhirResponse, Shape, parse, prefer_return
from ohe.sandbox.fhir.stats import Stats
from ohe.sandbox.fhir.store import Store
from ohe.sandbox.fhir.validation import Validator

FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})
JSON_FORMATS = frozenset({"json", *JSON_TYPES})
FORM = "application/x-www-form-urlencoded"
MAX_BODY = 64 * 1024 * 1024
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]
#: Requests whose answer carries the written resource (and so honours ``Prefer: return=``).
WRITES = frozenset({("POST", Shape.TYPE), ("PUT", Shape.TYPE), ("PUT", Shape.INSTANCE)})


@dataclass(frozen=True)
class Sandbox:
    """The long-lived state of one server process, kept in ``app.extensions``."""

    store: Store
    version: FhirVersion
    validator: Validator
    faults: Faults
    stats: Stats
    auth: auth.Auth


def create_app(
    db_path: Path | str,
    fhir_version: str = "R5",
    *,
    bearer_token: str | None = None,
    oauth_client: str | None = None,
    token_ttl: int = auth.DEFAULT_TOKEN_TTL,
    faults: FaultConfig | None = None,
    seed: int | None = None,
) -> Flask:
    """The sandbox FHIR server as a WSGI app; ``seed`` makes random faults reproducible."""
    if fhir_version not in VERSIONS:
        raise ValueError(f"fhir_version must be one of {', '.join(VERSIONS)}")
    version = VERSIONS[fhir_version]
    stats = Stats()
    sandbox = Sandbox(
        store=Store(db_path, version.name, indexer(version), on_commit=stats.committed),
        version=version,
        validator=Validator(version),
        faults=Faults(faults, seed),
        stats=stats,
        auth=auth.Auth(auth.AuthConfig.parse(bearer_token, oauth_client, token_ttl)),
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["ohe_sandbox_fhir"] = sandbox
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(auth.blueprint)
    app.register_blueprint(fhir)
    return app


fhir = Blueprint("sandbox_fhir", __name__, url_prefix="/fhir")


def _sandbox() -> Sandbox:
    return current_app.extensions["ohe_sandbox_fhir"]


@fhir.before_request
def gate() -> None:
    """Faults first (as a gateway in front of the server would), then authentication."""
    sandbox = _sandbox()
    sandbox.stats.request(request.method)
    delay, fault = sandbox.faults.decide()
    if delay:
        time.sleep(delay)
    if fault is not None:
        sandbox.stats.fault(fault.kind)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        raise FhirError.of(fault.status, fault.message, headers=headers)
    if request.path.rstrip("/") == "/fhir/metadata":
        return  # the CapabilityStatement is public, as SMART discovery requires
    problem = sandbox.auth.problem(request.headers.get("Authorization"))
    if problem:
        sandbox.stats.auth("rejected")
        challenge = (
            f'Bearer realm="sandbox-fhir", error="invalid_token", error_description="{problem}"'
        )
        raise FhirError.of(401, problem, code="login", headers={"WWW-Authenticate": challenge})


@fhir.route("", defaults={"path": ""}, methods=METHODS)
@fhir.route("/", defaults={"path": ""}, methods=METHODS)
@fhir.route("/<path:path>", methods=METHODS)
def serve(path: str) -> Response:
    sandbox = _sandbox()
    _check_format()
    req = _fhir_request(path)
    sandbox.stats.interaction(interaction(req))
    base = request.url_root.rstrip("/") + "/fhir"
    ctx = Context(
        sandbox.store, sandbox.version, sandbox.validator, sandbox.auth.config.describe(), base
    )
    return _render(dispatch(ctx, req), req, base)


@fhir.after_request
def count_status(response: Response) -> Response:
    _sandbox().stats.status(response.status_code)
    return response


@fhir.errorhandler(Exception)
def error(exc: Exception) -> Response:
    if isinstance(exc, FhirError):
        err = exc
    elif isinstance(exc, HTTPException):
        err = FhirError.of(exc.code or 500, exc.description or exc.name)
    else:
        current_app.logger.exception("unhandled error in %s %s", request.method, request.path)
        err = FhirError.of(500, f"internal error: {type(exc).__name__}: {exc}", code="exception")
    return Response(orjson.dumps(err.outcome()), err.status, err.headers, content_type=FHIR_JSON)


def _check_format() -> None:
    """JSON is the only format; ask for XML and get 406 rather than JSON you cannot parse."""
    wanted = request.args.get("_format")
    if wanted is not None and wanted.split(";")[0].strip() not in JSON_FORMATS:
        raise FhirError.of(406, f"_format={wanted} is not supported (JSON only)")
    accept = request.accept_mimetypes
    if accept.provided and not any(accept[t] for t in JSON_TYPES):
        raise FhirError.of(406, "only application/fhir+json responses are available")


def _json_body() -> Any:
    data = request.get_data()
    if not data:
        return None
    if request.mimetype and request.mimetype not in JSON_TYPES:
        raise FhirError.of(415, f"Content-Type {request.mimetype} is not supported; send FHIR JSON")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FhirError.of(400, f"the body is not valid JSON: {exc}", code="structure") from None


def _fhir_request(path: str) -> FhirRequest:
    query = list(request.args.items(multi=True))
    resource = None
    if request.method in ("POST", "PUT", "PATCH"):
        if request.mimetype == FORM:  # POST [type]/_search with the parameters in the body
            query += list(request.form.items(multi=True))
        else:
            resource = _json_body()
    headers = request.headers
    return parse(
        request.method,
        path,
        query,
        resource=resource,
        if_match=headers.get("If-Match"),
        if_none_exist=headers.get("If-None-Exist"),
        prefer=headers.get("Prefer"),
    )


def _render(resp: FhirResponse, req: FhirRequest, base: str) -> Response:
    headers = dict(resp.headers)
    body = resp.resource
    record = resp.record
    if record is not None:
        headers["ETag"] = record.etag
        headers["Last-Modified"] = record.last_updated.http_date()
    if (req.method, req.shape) in WRITES and record is not None:
        headers["Location"] = f"{base}/{record.location}"
        prefer = prefer_return(req.prefer)
        if prefer == "minimal":
            body = None
        elif prefer == "OperationOutcome":
            body = information(f"{req.method} {status_line(resp.status)}: {record.location}")
    if body is None or resp.status == 204:
        return Response(b"", resp.status, headers)
    return Response(orjson.dumps(body), resp.status, headers, content_type=FHIR_JSON)
