"""The server's own request/response model, shared by the HTTP layer and the bundle processor.

To an interaction, a transaction entry and an HTTP request are the same thing: a method, a
parsed URL, maybe a resource and a few headers. Parsing both into :class:`FhirRequest` lets
``POST [base]`` bundles reuse every interaction without going back through HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qsl, urlsplit

from ohe.sandbox.fhir.outcomes import FhirError
from ohe.sandbox.fhir.store import Record

ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ETAG = re.compile(r'^\s*(?:W/)?"?([^"\s]+)"?\s*$')


class Shape(StrEnum):
    """Which kind of URL a request addresses."""

    SYSTEM = "system"
    METADATA = "metadata"
    SYSTEM_HISTORY = "system-history"
    TYPE = "type"
    TYPE_SEARCH = "type-search"
    TYPE_HISTORY = "type-history"
    INSTANCE = "instance"
    INSTANCE_HISTORY = "instance-history"
    VERSION = "version"


#: URL patterns below the base; ``{...}`` segments are captured, the others are literal.
PATTERNS: tuple[tuple[tuple[str, ...], Shape], ...] = (
    ((), Shape.SYSTEM),
    (("metadata",), Shape.METADATA),
    (("_history",), Shape.SYSTEM_HISTORY),
    (("{type}",), Shape.TYPE),
    (("{type}", "_search"), Shape.TYPE_SEARCH),
    (("{type}", "_history"), Shape.TYPE_HISTORY),
    (("{type}", "{id}"), Shape.INSTANCE),
    (("{type}", "{id}", "_history"), Shape.INSTANCE_HISTORY),
    (("{type}", "{id}", "_history", "{version_id}"), Shape.VERSION),
)


@dataclass(frozen=True)
class FhirRequest:
    method: str
    shape: Shape
    type: str | None = None
    id: str | None = None
    version_id: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    resource: dict | None = None
    if_match: str | None = None
    if_none_exist: str | None = None
    prefer: str | None = None  # the raw Prefer header


@dataclass
class FhirResponse:
    """An interaction's answer; ``record`` supplies ETag, Last-Modified and Location."""

    status: int
    resource: dict | None = None
    record: Record | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str | None:
        return self.record.etag if self.record else None

    @property
    def location(self) -> str | None:
        """``Type/id/_history/vid`` — relative, as bundle responses carry it."""
        return self.record.location if self.record else None


def _match(segments: list[str]) -> tuple[Shape, dict[str, str]] | None:
    for pattern, shape in PATTERNS:
        if len(pattern) != len(segments):
            continue
        captured: dict[str, str] = {}
        for expected, actual in zip(pattern, segments, strict=True):
            if expected.startswith("{"):
                if actual.startswith("_") or actual == "metadata":
                    break
                captured[expected[1:-1]] = actual
            elif expected != actual:
                break
        else:
            return shape, captured
    return None


def parse(
    method: str, path: str, query: list[tuple[str, str]] | None = None, **fields
) -> FhirRequest:
    """A request for ``path`` (relative to the base); 404 for paths no interaction serves."""
    segments = [s for s in path.split("/") if s]
    matched = _match(segments)
    if matched is None:
        raise FhirError.of(404, f"no FHIR interaction is served at /{path}")
    shape, captured = matched
    for name in ("id", "version_id"):
        if name in captured and not ID.match(captured[name]):
            raise FhirError.of(400, f"{captured[name]!r} is not a valid FHIR id")
    return FhirRequest(method.upper(), shape, query=tuple(query or ()), **captured, **fields)


def parse_url(method: str, url: str, base: str, **fields) -> FhirRequest:
    """A bundle entry's ``request.url`` (relative, or absolute under this server's base)."""
    if url.startswith(base):
        url = url[len(base) :]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise FhirError.of(400, f"request.url {url!r} does not address this server")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    return parse(method, parts.path, pairs, **fields)


def version_of(etag: str) -> int:
    """The version in an ``If-Match`` ETag (``W/"3"``, ``"3"`` or ``3``); 400 if malformed."""
    match = _ETAG.match(etag)
    if not match or not match[1].isdigit():
        raise FhirError.of(400, f'If-Match {etag!r} is not a version ETag such as W/"1"')
    return int(match[1])


def prefer_return(header: str | None) -> str:
    """The ``return`` preference: minimal, representation (default) or OperationOutcome."""
    for part in re.split(r"[;,]", header or ""):
        key, _, value = part.strip().partition("=")
        if key.strip() == "return" and value.strip().strip('"'):
            return value.strip().strip('"')
    return "representation"
