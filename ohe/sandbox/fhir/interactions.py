"""The RESTful interactions, as handlers of :class:`FhirRequest` routed by a table.

Handlers run inside a store session that :func:`dispatch` opens (a read snapshot or one
serialized write transaction). The bundle processor calls the same handlers and the write
primitives below inside its own single transaction, which is how a transaction gets exactly the
REST semantics of its entries — and why conditional checks and writes can never interleave.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from ohe.sandbox.fhir import capability, references, search
from ohe.sandbox.fhir.catalog import FhirVersion
from ohe.sandbox.fhir.dates import Instant, now_us, parse_range
from ohe.sandbox.fhir.outcomes import FhirError, status_line
from ohe.sandbox.fhir.protocol import FhirRequest, FhirResponse, Shape, version_of
from ohe.sandbox.fhir.store import Change, Record, Session, Store
from ohe.sandbox.fhir.validation import Validator

HISTORY_PARAMS = frozenset({"_count", "_offset", "_since", "_format", "_pretty"})
HISTORY_STATUS = {"POST": 201, "PUT": 200, "DELETE": 204}


@dataclass(frozen=True)
class Context:
    """Everything a handler needs; ``session`` is set while a store transaction is open."""

    store: Store
    version: FhirVersion
    validator: Validator
    security: str | None  # how clients authenticate, for the CapabilityStatement
    base: str
    session: Session | None = None

    @property
    def db(self) -> Session:
        if self.session is None:
            raise RuntimeError("handler called outside a store session")
        return self.session


Handler = Callable[[Context, FhirRequest], FhirResponse]


@dataclass(frozen=True)
class Route:
    interaction: str
    handler: Handler
    session: str | None  # "read", "write", or None when the handler manages its own


def new_id() -> str:
    return str(uuid.uuid4())


def resource_type_of(ctx: Context, req: FhirRequest) -> str:
    resource_type = req.type or ""
    if not ctx.version.supports(resource_type):
        raise FhirError.of(
            404,
            f"resource type {resource_type!r} is not supported by this FHIR {ctx.version.name}"
            f" server (supported: {', '.join(sorted(ctx.version.types))})",
            code="not-supported",
        )
    return resource_type


def _body(req: FhirRequest, resource_type: str) -> dict:
    resource = req.resource
    if resource is None:
        raise FhirError.of(
            400, f"{req.method} needs a resource of type {resource_type} in the body"
        )
    if not isinstance(resource, dict):
        raise FhirError.of(400, "the body must be a JSON object (a FHIR resource)")
    found = resource.get("resourceType")
    if found is None:
        raise FhirError.of(400, "the resource has no resourceType", code="structure")
    if found != resource_type:
        raise FhirError.of(400, f"the body is a {found}, but the URL addresses {resource_type}")
    return resource


def _check_version(current: Record | None, if_match: str) -> None:
    wanted = version_of(if_match)
    if current is None or current.deleted:
        raise FhirError.of(
            412, f"If-Match {if_match}: the resource does not exist", code="conflict"
        )
    if current.version != wanted:
        raise FhirError.of(
            412,
            f"If-Match {if_match} does not match the current version {current.etag}",
            code="conflict",
        )


def matches(ctx: Context, resource_type: str, condition: str) -> list[str]:
    """Ids matching a conditional URL: [] or [id]; 412 when several match."""
    query = search.parse_condition(ctx.version, resource_type, condition)
    ids = search.matching_ids(ctx.db, query, limit=2)
    if len(ids) > 1:
        raise FhirError.of(
            412,
            f"{resource_type}?{condition} matches more than one resource",
            code="multiple-matches",
        )
    return ids


def _resolve_conditional_reference(ctx: Context, reference: str) -> str | None:
    found = references.conditional(reference)
    if found is None:
        return None
    resource_type, condition = found
    if not ctx.version.supports(resource_type):
        raise FhirError.of(400, f"conditional reference {reference!r}: unsupported type")
    query = search.parse_condition(ctx.version, resource_type, condition)
    ids = search.matching_ids(ctx.db, query, limit=2)
    if len(ids) != 1:
        count = "no" if not ids else "several"
        raise FhirError.of(
            412, f"conditional reference {reference!r} matches {count} resources (needs one)"
        )
    return f"{resource_type}/{ids[0]}"


def prepare(ctx: Context, resource_type: str, resource: dict, rid: str) -> dict:
    """The resource as it will be stored: id set, conditional references resolved, validated."""
    prepared = references.rewrite(
        {**resource, "id": rid}, lambda r: _resolve_conditional_reference(ctx, r)
    )
    ctx.validator.check(prepared, resource_type)
    return prepared


# --- write primitives (shared with the bundle processor) -----------------------------------


def store_new(ctx: Context, resource_type: str, rid: str, resource: dict) -> FhirResponse:
    record, _ = ctx.db.save(resource_type, rid, prepare(ctx, resource_type, resource, rid), "POST")
    return FhirResponse(201, record.resource(), record)


def existing(ctx: Context, resource_type: str, rid: str) -> FhirResponse:
    """Conditional create matched: 200 with the stored resource, nothing written."""
    record = ctx.db.current(resource_type, rid)
    if record is None or record.deleted:
        raise FhirError.of(404, f"{resource_type}/{rid} is not known")
    ctx.db.changes[Change.UNCHANGED] += 1
    return FhirResponse(200, record.resource(), record)


def store_update(
    ctx: Context, resource_type: str, rid: str, resource: dict, if_match: str | None
) -> FhirResponse:
    """Update, or create at a client id; identical content keeps the current version."""
    if if_match is not None:
        _check_version(ctx.db.current(resource_type, rid), if_match)
    prepared = prepare(ctx, resource_type, resource, rid)
    record, change = ctx.db.save(resource_type, rid, prepared, "PUT")
    return FhirResponse(201 if change is Change.CREATED else 200, record.resource(), record)


def remove(ctx: Context, resource_type: str, rid: str, if_match: str | None) -> FhirResponse:
    current = ctx.db.current(resource_type, rid)
    if current is None:
        raise FhirError.of(404, f"{resource_type}/{rid} is not known")
    if if_match is not None:
        _check_version(current, if_match)
    if current.deleted:
        return FhirResponse(204, record=current)  # deleting twice changes nothing
    return FhirResponse(204, record=ctx.db.tombstone(resource_type, rid))


# --- handlers -------------------------------------------------------------------------------


def read(ctx: Context, req: FhirRequest) -> FhirResponse:
    resource_type = resource_type_of(ctx, req)
    record = ctx.db.current(resource_type, req.id or "")
    return _found(record, f"{resource_type}/{req.id}")


def vread(ctx: Context, req: FhirRequest) -> FhirResponse:
    resource_type = resource_type_of(ctx, req)
    vid = req.version_id or ""
    record = ctx.db.version(resource_type, req.id or "", int(vid)) if vid.isdigit() else None
    return _found(record, f"{resource_type}/{req.id}/_history/{vid}")


def _found(record: Record | None, what: str) -> FhirResponse:
    if record is None:
        raise FhirError.of(404, f"{what} is not known")
    if record.deleted:
        raise FhirError.of(410, f"{what} was deleted", headers={"ETag": record.etag})
    return FhirResponse(200, record.resource(), record)


def create(ctx: Context, req: FhirRequest) -> FhirResponse:
    resource_type = resource_type_of(ctx, req)
    resource = _body(req, resource_type)
    if req.if_none_exist is not None:
        found = matches(ctx, resource_type, req.if_none_exist)
        if found:
            return existing(ctx, resource_type, found[0])
    return store_new(ctx, resource_type, new_id(), resource)  # a client id in POST is ignored


def update(ctx: Context, req: FhirRequest) -> FhirResponse:
    resource_type = resource_type_of(ctx, req)
    resource = _body(req, resource_type)
    if resource.get("id") != req.id:
        raise FhirError.of(400, f"the resource's id must be {req.id!r} (the id in the URL)")
    return store_update(ctx, resource_type, req.id or "", resource, req.if_match)


def conditional_target(ctx: Context, resource_type: str, condition: str, resource: dict) -> str:
    """Where a conditional update writes: the one match, else the body's id, else a new id."""
    found = matches(ctx, resource_type, condition)
    body_id = resource.get("id")
    if found:
        if body_id is not None and body_id != found[0]:
            raise FhirError.of(400, f"body id {body_id!r} differs from the match {found[0]!r}")
        return found[0]
    if body_id is not None:
        current = ctx.db.current(resource_type, body_id)
        if current is not None and not current.deleted:
            raise FhirError.of(409, f"{resource_type}/{body_id} exists but does not match")
        return body_id
    return new_id()


def conditional_update(ctx: Context, req: FhirRequest) -> FhirResponse:
    resource_type = resource_type_of(ctx, req)
    resource = _body(req, resource_type)
    target = conditional_target(ctx, resource_type, urlencode(req.query), resource)
    return store_update(ctx, resource_type, target, resource, req.if_match)


def delete(ctx: Context, req: FhirRequest) -> FhirResponse:
    return remove(ctx, resource_type_of(ctx, req), req.id or "", req.if_match)


def conditional_delete(ctx: Context, req: FhirRequest) -> FhirResponse:
    resource_type = resource_type_of(ctx, req)
    found = matches(ctx, resource_type, urlencode(req.query))
    if not found:
        return FhirResponse(204)
    return remove(ctx, resource_type, found[0], req.if_match)


def search_type(ctx: Context, req: FhirRequest) -> FhirResponse:
    query = search.parse(ctx.version, resource_type_of(ctx, req), req.query)
    records, total = search.run(ctx.db, query)
    return FhirResponse(200, search.bundle(ctx.base, query, records, total))


def history(ctx: Context, req: FhirRequest) -> FhirResponse:
    resource_type = resource_type_of(ctx, req) if req.type else None
    params = dict(req.query)
    unknown = set(params) - HISTORY_PARAMS
    if unknown:
        raise FhirError.of(400, f"unsupported _history parameters: {', '.join(sorted(unknown))}")
    count = min(search.integer("_count", params.get("_count", "50"), 1), search.MAX_COUNT)
    offset = search.integer("_offset", params.get("_offset", "0"), 0)
    try:
        since = parse_range(params["_since"]).low if "_since" in params else None
    except ValueError as exc:
        raise FhirError.of(400, f"_since: {exc}") from None
    if req.id and ctx.db.current(resource_type or "", req.id) is None:
        raise FhirError.of(404, f"{resource_type}/{req.id} is not known")
    records, total = ctx.db.history(resource_type, req.id, since, count, offset)
    bundle: dict = {
        "resourceType": "Bundle",
        "id": new_id(),
        "meta": {"lastUpdated": Instant.of_us(now_us()).text},
        "type": "history",
        "total": total,
        "link": [{"relation": "self", "url": f"{ctx.base}/{_path(req)}"}],
    }
    if offset + count < total:
        query = urlencode({**params, "_count": count, "_offset": offset + count})
        bundle["link"].append({"relation": "next", "url": f"{ctx.base}/{_path(req)}?{query}"})
    entries = [_history_entry(ctx.base, r) for r in records]
    if entries:
        bundle["entry"] = entries
    return FhirResponse(200, bundle)


def _path(req: FhirRequest) -> str:
    return "/".join(p for p in (req.type, req.id, "_history") if p)


def _history_entry(base: str, record: Record) -> dict:
    status = (
        201 if record.method == "PUT" and record.version == 1 else HISTORY_STATUS[record.method]
    )
    url = record.type if record.method == "POST" else f"{record.type}/{record.id}"
    entry: dict = {"fullUrl": f"{base}/{record.type}/{record.id}"}
    if record.body is not None:
        entry["resource"] = record.resource()
    entry["request"] = {"method": record.method, "url": url}
    entry["response"] = {
        "status": status_line(status),
        "etag": record.etag,
        "lastModified": record.last_updated.text,
    }
    return entry


def capabilities(ctx: Context, req: FhirRequest) -> FhirResponse:
    return FhirResponse(200, capability.statement(ctx.version, ctx.base, auth=ctx.security))


def _bundle(ctx: Context, req: FhirRequest) -> FhirResponse:
    from ohe.sandbox.fhir import bundles  # bundles builds on this module's handlers

    return bundles.process(ctx, req)


ROUTES: dict[tuple[str, Shape], Route] = {
    ("GET", Shape.METADATA): Route("capabilities", capabilities, None),
    ("POST", Shape.SYSTEM): Route("bundle", _bundle, None),
    ("GET", Shape.SYSTEM_HISTORY): Route("history-system", history, "read"),
    ("GET", Shape.TYPE): Route("search-type", search_type, "read"),
    ("GET", Shape.TYPE_SEARCH): Route("search-type", search_type, "read"),
    ("POST", Shape.TYPE_SEARCH): Route("search-type", search_type, "read"),
    ("POST", Shape.TYPE): Route("create", create, "write"),
    ("PUT", Shape.TYPE): Route("conditional-update", conditional_update, "write"),
    ("DELETE", Shape.TYPE): Route("conditional-delete", conditional_delete, "write"),
    ("GET", Shape.TYPE_HISTORY): Route("history-type", history, "read"),
    ("GET", Shape.INSTANCE): Route("read", read, "read"),
    ("PUT", Shape.INSTANCE): Route("update", update, "write"),
    ("DELETE", Shape.INSTANCE): Route("delete", delete, "write"),
    ("GET", Shape.INSTANCE_HISTORY): Route("history-instance", history, "read"),
    ("GET", Shape.VERSION): Route("vread", vread, "read"),
}


def route(req: FhirRequest) -> Route:
    method = "GET" if req.method == "HEAD" else req.method
    found = ROUTES.get((method, req.shape))
    if found is None:
        allowed = sorted(m for m, shape in ROUTES if shape is req.shape)
        raise FhirError.of(
            405,
            f"{req.method} is not supported here (allowed: {', '.join(allowed)})",
            headers={"Allow": ", ".join(allowed)},
        )
    return found


def interaction(req: FhirRequest) -> str:
    """The interaction name counted in ``/_sandbox/stats``."""
    name = route(req).interaction
    if name == "create" and req.if_none_exist is not None:
        return "conditional-create"
    if name == "bundle":
        kind = req.resource.get("type") if isinstance(req.resource, dict) else None
        return kind if kind in ("transaction", "batch") else "bundle"
    return name


def handle(ctx: Context, req: FhirRequest) -> FhirResponse:
    """Run a request inside the caller's session (bundle entries)."""
    return route(req).handler(ctx, req)


def dispatch(ctx: Context, req: FhirRequest) -> FhirResponse:
    """Run a request in a session of its own: a read snapshot or one write transaction."""
    found = route(req)
    if found.session is None:
        return found.handler(ctx, req)
    opener = ctx.store.write if found.session == "write" else ctx.store.read
    with opener() as session:
        return found.handler(replace(ctx, session=session), req)
