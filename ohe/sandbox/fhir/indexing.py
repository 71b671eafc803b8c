"""Search index rows extracted from a resource, driven by the catalog's search parameters.

Every write replaces a resource's rows in three tables (tokens, references, dates), so searches
and conditional operations are indexed lookups instead of scans over stored JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ohe.sandbox.fhir import references
from ohe.sandbox.fhir.catalog import FhirVersion, Kind, SearchParam
from ohe.sandbox.fhir.dates import DateRange, parse_range, period_range


@dataclass
class IndexRows:
    """What one resource contributes to the search indexes."""

    tokens: list[tuple[str, str, str]] = field(default_factory=list)  # param, system, code
    references: list[tuple[str, str, str]] = field(default_factory=list)  # param, type, id
    dates: list[tuple[str, int, int]] = field(default_factory=list)  # param, low, high


def values_at(node: Any, path: str) -> Iterator[Any]:
    """Values at a dotted path; lists are flattened and ``name[x]`` matches any choice type."""
    if not path:
        yield node
        return
    head, _, rest = path.partition(".")
    items = node if isinstance(node, list) else [node]
    for item in items:
        if not isinstance(item, dict):
            continue
        if head.endswith("[x]"):
            stem = head[:-3]
            found = [
                v for k, v in item.items() if k.startswith(stem) and k[len(stem) :][:1].isupper()
            ]
        else:
            found = [item[head]] if head in item else []
        for value in found:
            for leaf in value if isinstance(value, list) else [value]:
                yield from values_at(leaf, rest)


def _tokens(param: SearchParam, value: Any) -> Iterator[tuple[str, str]]:
    """(system, code) pairs of a code, Coding, CodeableConcept or Identifier."""
    if isinstance(value, str):
        yield param.system or "", value
    elif isinstance(value, dict):
        if isinstance(value.get("coding"), list):
            for coding in value["coding"]:
                yield from _tokens(param, coding)
        elif "code" in value:
            yield value.get("system", ""), str(value["code"])
        elif "value" in value:
            yield value.get("system", ""), str(value["value"])


def _reference(param: SearchParam, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        target = references.target_of(value["reference"])
        if target and (param.target is None or target[0] == param.target):
            yield target


def _date(param: SearchParam, value: Any) -> Iterator[tuple[int, int]]:
    """(low, high) microseconds of a date, dateTime, instant or Period."""
    try:
        if isinstance(value, str):
            found: DateRange = parse_range(value)
        elif isinstance(value, dict) and ("start" in value or "end" in value):
            found = period_range(value.get("start"), value.get("end"))
        else:
            return
    except ValueError:
        return  # validation rejects malformed dates before anything is indexed
    yield found.low, found.high


#: Per kind: how to read values, and which IndexRows list (= table) they go to.
EXTRACT: dict[Kind, tuple[Callable[[SearchParam, Any], Iterator[tuple]], str]] = {
    Kind.TOKEN: (_tokens, "tokens"),
    Kind.REFERENCE: (_reference, "references"),
    Kind.DATE: (_date, "dates"),
}


def index_rows(params: Iterable[SearchParam], resource: dict) -> IndexRows:
    rows = IndexRows()
    for param in params:
        if param.column:
            continue
        extract, table = EXTRACT[param.kind]
        target = getattr(rows, table)
        for value in values_at(resource, param.path):
            target.extend((param.name, *item) for item in extract(param, value))
    return rows


def indexer(version: FhirVersion) -> Callable[[str, dict], IndexRows]:
    """The function the store calls on every write, bound to one FHIR version's table."""
    tables = {t: version.params(t).values() for t in version.types}

    def index(resource_type: str, resource: dict) -> IndexRows:
        return index_rows(tables.get(resource_type, ()), resource)

    return index
