"""Bundles posted to the base URL: atomic ``transaction`` and independent ``batch``.

A transaction runs in one store write transaction: a failing entry raises, the store rolls
everything back, and the client gets one OperationOutcome naming the entry. Entries run in the
spec's order (DELETE, POST, PUT/PATCH, GET) whatever their order in the bundle, and every POST/PUT
target is resolved *before* anything is written, because an Observation may point (by
``urn:uuid:``) at a Device that a later entry creates; the placeholders are then rewritten to the
assigned ``Type/id`` wherever they occur in the entries' resources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode

from ohe.sandbox.fhir import interactions as rest
from ohe.sandbox.fhir.dates import Instant, now_us
from ohe.sandbox.fhir.outcomes import FhirError, information, status_line
from ohe.sandbox.fhir.protocol import FhirRequest, FhirResponse, Shape, parse_url, prefer_return
from ohe.sandbox.fhir.references import rewrite

#: Processing order of a transaction (FHIR R5 §3.2.0.13.2).
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
RESPONSE_TYPE = {"transaction": "transaction-response", "batch": "batch-response"}
T = TypeVar("T")


@dataclass
class Entry:
    """One bundle entry, parsed; ``target`` is the id a POST/PUT will write."""

    index: int
    full_url: str | None
    request: FhirRequest | None = None
    error: FhirError | None = None
    target: str | None = None
    found: bool = False  # a conditional create that matched: answer 200, write nothing

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"

    @property
    def req(self) -> FhirRequest:
        if self.request is None:
            raise RuntimeError("entry without a parsed request")
        return self.request


def _at(entry: Entry, call: Callable[..., T], *args: object) -> T:
    try:
        return call(*args)
    except FhirError as err:
        raise err.at(entry.where) from None


def _parse_entry(ctx: rest.Context, index: int, raw: dict) -> Entry:
    entry = Entry(index, raw.get("fullUrl"))
    request = raw.get("request") or {}
    method = str(request.get("method", "")).upper()
    try:
        if method not in ORDER:
            raise FhirError.of(400, f"request.method {method or '(missing)'} is not supported")
        entry.request = parse_url(
            method,
            str(request.get("url", "")),
            ctx.base,
            resource=raw.get("resource"),
            if_match=request.get("ifMatch"),
            if_none_exist=request.get("ifNoneExist"),
        )
        rest.route(entry.request)  # 405 for e.g. PATCH or POST to an instance URL
        if method in ("POST", "PUT") and not isinstance(raw.get("resource"), dict):
            raise FhirError.of(400, f"a {method} entry needs a resource")
    except FhirError as err:
        entry.error = err.at(entry.where)
    return entry


def process(ctx: rest.Context, req: FhirRequest) -> FhirResponse:
    bundle = req.resource
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError.of(400, "POST [base] takes a Bundle of type transaction or batch")
    kind = bundle.get("type")
    if kind not in RESPONSE_TYPE:
        raise FhirError.of(
            400,
            f"Bundle.type {kind!r} cannot be processed; POST [base]/Bundle stores a Bundle",
            expression="Bundle.type",
        )
    raw_entries = bundle.get("entry") or []
    shell = {
        **bundle,
        "entry": [{k: v for k, v in e.items() if k != "resource"} for e in raw_entries],
    }
    ctx.validator.check(shell, "Bundle")  # structure of everything but the resources
    entries = [_parse_entry(ctx, i, e) for i, e in enumerate(raw_entries)]
    prefer = prefer_return(req.prefer) if req.prefer else "minimal"
    results = _transaction(ctx, entries) if kind == "transaction" else _batch(ctx, entries)
    return FhirResponse(
        200, _response_bundle(ctx.base, RESPONSE_TYPE[kind], entries, results, prefer)
    )


def _condition_key(resource_type: str, condition: str) -> tuple[str, str]:
    query = condition.split("?", 1)[-1]
    return resource_type, urlencode(sorted(parse_qsl(query, keep_blank_values=True)))


def _resolve(ctx: rest.Context, entry: Entry, claimed: dict, conditions: dict) -> None:
    """Decide which resource a POST/PUT entry writes, before any entry is written."""
    req = entry.req
    resource_type = rest.resource_type_of(ctx, req)
    if req.method == "POST":
        entry.target = rest.new_id()
        if req.if_none_exist is not None:
            key = _condition_key(resource_type, req.if_none_exist)
            if key in conditions:  # the same conditional create twice: the first one wins
                entry.target, entry.found = conditions[key].target, True
                return
            conditions[key] = entry
            found = rest.matches(ctx, resource_type, req.if_none_exist)
            if found:
                entry.target, entry.found = found[0], True
    elif req.shape is Shape.TYPE:
        condition = urlencode(req.query)
        key = _condition_key(resource_type, condition)
        if key in conditions:
            other = conditions[key].index
            raise FhirError.of(400, f"Bundle.entry[{other}] has the same condition {condition}")
        conditions[key] = entry
        entry.target = rest.conditional_target(ctx, resource_type, condition, req.resource or {})
    else:
        entry.target = req.id
    if not entry.found:
        other = claimed.setdefault((resource_type, entry.target), entry.index)
        if other != entry.index:
            raise FhirError.of(
                400, f"Bundle.entry[{other}] also writes {resource_type}/{entry.target}"
            )


def _write(ctx: rest.Context, entry: Entry) -> FhirResponse:
    req, target = entry.req, entry.target or ""
    resource_type = req.type or ""
    resource = req.resource or {}
    if req.method == "POST":
        if entry.found:
            return rest.existing(ctx, resource_type, target)
        return rest.store_new(ctx, resource_type, target, resource)
    if req.shape is Shape.INSTANCE and resource.get("id") != req.id:
        raise FhirError.of(400, f"the resource's id must be {req.id!r} (the id in request.url)")
    return rest.store_update(ctx, resource_type, target, resource, req.if_match)


def _transaction(ctx: rest.Context, entries: list[Entry]) -> dict[int, FhirResponse]:
    for entry in entries:
        if entry.error:
            raise entry.error  # nothing has been written yet
    ordered = sorted(entries, key=lambda e: (ORDER[e.req.method], e.index))
    writes = [e for e in ordered if e.req.method in ("POST", "PUT")]
    results: dict[int, FhirResponse] = {}
    with ctx.store.write() as session:
        tx = replace(ctx, session=session)
        for entry in (e for e in ordered if e.req.method == "DELETE"):
            results[entry.index] = _at(entry, rest.handle, tx, entry.req)
        claimed: dict = {}
        conditions: dict = {}
        aliases: dict[str, str] = {}
        for entry in writes:
            _at(entry, _resolve, tx, entry, claimed, conditions)
            if entry.full_url:
                aliases[entry.full_url] = f"{entry.req.type}/{entry.target}"
        for entry in writes:
            resolved = rewrite(entry.req.resource, aliases.get)
            entry.request = replace(entry.req, resource=resolved)
            results[entry.index] = _at(entry, _write, tx, entry)
        for entry in (e for e in ordered if e.req.method in ("GET", "HEAD")):
            results[entry.index] = _at(entry, rest.handle, tx, entry.req)
    return results


def _batch(ctx: rest.Context, entries: list[Entry]) -> dict[int, FhirResponse | FhirError]:
    """Each entry on its own, in bundle order; a failure answers that entry only."""
    results: dict[int, FhirResponse | FhirError] = {}
    for entry in entries:
        if entry.error:
            results[entry.index] = entry.error
            continue
        try:
            results[entry.index] = rest.dispatch(ctx, entry.req)
        except FhirError as err:
            results[entry.index] = err.at(entry.where)
    return results


def _response_entry(base: str, entry: Entry, result: FhirResponse | FhirError, prefer: str) -> dict:
    if isinstance(result, FhirError):
        return {"response": {"status": status_line(result.status), "outcome": result.outcome()}}
    is_read = entry.req.method in ("GET", "HEAD")
    response: dict = {"status": status_line(result.status)}
    out: dict = {}
    record = result.record
    if record is not None:
        if not record.deleted:
            out["fullUrl"] = f"{base}/{record.type}/{record.id}"
            if not is_read:
                response["location"] = record.location
        response["etag"] = record.etag
        response["lastModified"] = record.last_updated.text
    if result.resource is not None and (is_read or prefer == "representation"):
        out["resource"] = result.resource
    if prefer == "OperationOutcome" and not is_read:
        response["outcome"] = information(f"{entry.req.method} {status_line(result.status)}")
    out["response"] = response
    return out


def _response_bundle(
    base: str, kind: str, entries: list[Entry], results: dict, prefer: str
) -> dict:
    """The response: one entry per request entry, in the request's order."""
    return {
        "resourceType": "Bundle",
        "id": rest.new_id(),
        "meta": {"lastUpdated": Instant.of_us(now_us()).text},
        "type": kind,
        "entry": [_response_entry(base, e, results[e.index], prefer) for e in entries],
    }
