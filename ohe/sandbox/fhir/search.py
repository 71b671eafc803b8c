"""Search: query strings parsed against the catalog, compiled to SQL over the index tables.

Parameters are strict: an unknown name or modifier is a 400, because silently ignoring a
misspelled parameter returns *more* matches — the worst outcome for a conditional update.
Repeated parameters are ANDed, comma-separated values ORed, as the spec says. Every criterion
becomes ``r.id IN (SELECT ... FROM <index> ...)`` so SQLite drives the query from the index.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ohe.sandbox.fhir import references
from ohe.sandbox.fhir.catalog import FhirVersion, Kind, SearchParam
from ohe.sandbox.fhir.dates import Instant, now_us, parse_range
from ohe.sandbox.fhir.outcomes import FhirError
from ohe.sandbox.fhir.store import Record, Session

DEFAULT_COUNT = 50
MAX_COUNT = 1000
#: Result parameters accepted and ignored: they change presentation, not the matches.
IGNORED = frozenset({"_format", "_pretty", "_total"})
SORTS = {"_id": "r.id", "_lastUpdated": "r.updated_us"}
MODIFIERS: dict[Kind, frozenset[str]] = {
    Kind.TOKEN: frozenset({"not", "missing"}),
    Kind.REFERENCE: frozenset({"missing"}),  # plus a target type: subject:Patient=123
    Kind.DATE: frozenset({"missing"}),
}
INDEX_TABLE = {
    Kind.TOKEN: "token_index",
    Kind.REFERENCE: "reference_index",
    Kind.DATE: "date_index",
}
#: Date prefixes over the target range [lo, hi) and the search range [low, high) (spec 3.2.1.5.6).
DATE_PREFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "eq": ("({lo} >= ? AND {hi} <= ?)", ("low", "high")),
    "ne": ("NOT ({lo} >= ? AND {hi} <= ?)", ("low", "high")),
    "gt": ("{hi} > ?", ("high",)),
    "lt": ("{lo} < ?", ("low",)),
    "ge": ("({hi} > ? OR ({lo} >= ? AND {hi} <= ?))", ("high", "low", "high")),
    "le": ("({lo} < ? OR ({lo} >= ? AND {hi} <= ?))", ("low", "low", "high")),
    "sa": ("{lo} >= ?", ("high",)),
    "eb": ("{hi} <= ?", ("low",)),
}
_UNESCAPED = {",": re.compile(r"(?<!\\),"), "|": re.compile(r"(?<!\\)\|")}


@dataclass(frozen=True)
class Clause:
    """One search parameter occurrence: its values are alternatives (OR)."""

    param: SearchParam
    modifier: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    type: str
    clauses: tuple[Clause, ...]
    count: int = DEFAULT_COUNT
    offset: int = 0
    summary_count: bool = False
    order: str = "r.seq"
    pairs: tuple[tuple[str, str], ...] = ()  # the matching parameters, for paging links


def _split(value: str, sep: str) -> list[str]:
    parts = _UNESCAPED[sep].split(value)
    return [
        p.replace("\\,", ",").replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")
        for p in parts
    ]


def _bad(diagnostics: str) -> FhirError:
    return FhirError.of(400, diagnostics, code="invalid")


def integer(name: str, value: str, low: int) -> int:
    if not value.isdigit() or int(value) < low:
        raise _bad(f"{name} must be an integer >= {low}, not {value!r}")
    return int(value)


def _sort(value: str) -> str:
    keys = []
    for key in value.split(","):
        column = SORTS.get(key.lstrip("-"))
        if column is None:
            raise _bad(f"_sort={key} is not supported (use {', '.join(SORTS)}, optionally with -)")
        keys.append(f"+{column} DESC" if key.startswith("-") else f"+{column}")
    return ", ".join([*keys, "+r.seq"])


def _summary(value: str) -> bool:
    if value not in ("count", "false"):
        raise _bad(f"_summary={value} is not supported (only count and false)")
    return value == "count"


#: Result parameters: the Query field each one sets, and how its value is read.
RESULT_PARAMS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "_count": ("count", lambda v: min(integer("_count", v, 0), MAX_COUNT)),
    "_offset": ("offset", lambda v: integer("_offset", v, 0)),
    "_summary": ("summary_count", _summary),
    "_sort": ("order", _sort),
}


def parse(
    version: FhirVersion, resource_type: str, pairs: Sequence[tuple[str, str]], *, condition=False
) -> Query:
    """A :class:`Query`, or a 400 naming the first thing this server does not understand."""
    known = version.params(resource_type)
    clauses: list[Clause] = []
    kept: list[tuple[str, str]] = []
    options: dict[str, Any] = {}
    for name, value in pairs:
        if name in IGNORED:
            continue
        if name in RESULT_PARAMS:
            field, read = RESULT_PARAMS[name]
            options[field] = read(value)
        else:
            clauses.append(_clause(resource_type, known, name, value))
        if name != "_offset":
            kept.append((name, value))
    if condition and not clauses:
        raise _bad("a condition needs at least one search parameter, e.g. identifier=system|value")
    # With criteria, sort the few matches ("+" stops SQLite from walking the whole type in seq
    # order and probing each row); without, walking the seq index is the cheapest plan.
    options.setdefault("order", "+r.seq" if clauses else "r.seq")
    return replace(Query(resource_type, tuple(clauses), pairs=tuple(kept)), **options)


def parse_condition(version: FhirVersion, resource_type: str, text: str) -> Query:
    """A conditional URL's query (``If-None-Exist``, ``PUT Type?...``) as a Query."""
    query = text.split("?", 1)[1] if "?" in text else text
    return parse(version, resource_type, parse_qsl(query, keep_blank_values=True), condition=True)


def _clause(resource_type: str, known: dict[str, SearchParam], name: str, value: str) -> Clause:
    base, _, modifier = name.partition(":")
    param = known.get(base)
    if param is None:
        raise _bad(
            f"unknown search parameter {base!r} for {resource_type} "
            f"(supported: {', '.join(sorted(known))})"
        )
    if modifier and modifier not in MODIFIERS[param.kind]:
        is_type = param.kind is Kind.REFERENCE and modifier[:1].isupper()
        if not is_type:
            raise _bad(f"modifier :{modifier} is not supported on {base}")
    if modifier == "missing" and value not in ("true", "false"):
        raise _bad(f"{name} must be true or false")
    values = tuple(v for v in _split(value, ",") if v != "")
    if not values:
        raise _bad(f"search parameter {name} has no value")
    return Clause(param, modifier or None, values)


def _token(clause: Clause, value: str) -> tuple[str, list]:
    column = clause.param.column
    if column:
        return f"r.{column} = ?", [value]
    parts = _split(value, "|")
    if len(parts) == 1:
        return "x.code = ?", [parts[0]]
    system, code = parts[0], "|".join(parts[1:])
    if not code:
        return "x.system = ?", [system]
    return "(x.system = ? AND x.code = ?)", [system, code]


def _reference(clause: Clause, value: str) -> tuple[str, list]:
    param, modifier = clause.param, clause.modifier
    target = references.target_of(value) if "/" in value else None
    if "/" in value and target is None:
        raise _bad(f"{param.name}={value} is not a reference (Type/id or id)")
    wanted_type = target[0] if target else (modifier if modifier else param.target)
    rid = target[1] if target else value
    if wanted_type:
        return "(x.target_id = ? AND x.target_type = ?)", [rid, wanted_type]
    return "x.target_id = ?", [rid]


def _date(clause: Clause, value: str) -> tuple[str, list]:
    column = clause.param.column
    lo, hi = (f"r.{column}", f"(r.{column} + 1)") if column else ("x.low", "x.high")
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in DATE_PREFIXES else value
    try:
        found = parse_range(text.replace(" ", "+"))  # an unencoded '+' arrives as a space
    except ValueError as exc:
        raise _bad(f"{value!r} is not a valid date search value: {exc}") from None
    template, bounds = DATE_PREFIXES[prefix]
    return template.format(lo=lo, hi=hi), [getattr(found, b) for b in bounds]


#: Per kind: the SQL condition one search value puts on the index row ``x`` (or on ``r``).
VALUE_SQL: dict[Kind, Callable[[Clause, str], tuple[str, list]]] = {
    Kind.TOKEN: _token,
    Kind.REFERENCE: _reference,
    Kind.DATE: _date,
}


def _clause_sql(query: Query, clause: Clause) -> tuple[str, list]:
    param = clause.param
    if clause.modifier == "missing":
        negate = "NOT " if clause.values == ("true",) else ""
        table = INDEX_TABLE[param.kind]
        sql = f"r.id {negate}IN (SELECT x.id FROM {table} x WHERE x.type = ? AND x.param = ?)"  # noqa: S608
        return sql, [query.type, param.name]
    parts = [VALUE_SQL[param.kind](clause, v) for v in clause.values]
    either = " OR ".join(sql for sql, _ in parts)
    params = [p for _, ps in parts for p in ps]
    negate = "NOT " if clause.modifier == "not" else ""
    if param.column:
        return f"{negate}({either})", params
    table = INDEX_TABLE[param.kind]
    sql = (
        f"r.id {negate}IN (SELECT x.id FROM {table} x"  # noqa: S608 - table names are constants
        f" WHERE x.type = ? AND x.param = ? AND ({either}))"
    )
    return sql, [query.type, param.name, *params]


def where(query: Query) -> tuple[str, list]:
    sql, params = ["r.type = ?", "r.deleted = 0"], [query.type]
    for clause in query.clauses:
        clause_sql, clause_params = _clause_sql(query, clause)
        sql.append(clause_sql)
        params.extend(clause_params)
    return " AND ".join(sql), params


def ids_sql(query: Query, limit: int) -> tuple[str, list]:
    """The statement behind :func:`matching_ids` (tests check its plan uses the indexes)."""
    sql, params = where(query)
    return f"SELECT r.id FROM resource r WHERE {sql} LIMIT ?", [*params, limit]  # noqa: S608


def matching_ids(session: Session, query: Query, limit: int = 2) -> list[str]:
    """Ids matching a condition; ``limit=2`` is enough to tell 0, 1 and "several" apart."""
    return [row[0] for row in session.query(*ids_sql(query, limit))]


def run(session: Session, query: Query) -> tuple[list[Record], int]:
    """One page of matches and the total."""
    sql, params = where(query)
    total = session.query(f"SELECT count(*) FROM resource r WHERE {sql}", params)[0][0]  # noqa: S608
    if query.summary_count or query.count == 0:
        return [], total
    rows = session.query(
        f"SELECT r.id, r.version, r.updated_us, r.body FROM resource r WHERE {sql}"  # noqa: S608
        f" ORDER BY {query.order} LIMIT ? OFFSET ?",
        [*params, query.count, query.offset],
    )
    return [Record(query.type, r[0], r[1], r[2], False, r[3]) for r in rows], total


def _link(base: str, query: Query, offset: int) -> str:
    pairs = [(k, v) for k, v in query.pairs if k != "_count"]
    pairs += [("_count", str(query.count))] if query.count != DEFAULT_COUNT else []
    pairs += [("_offset", str(offset))] if offset else []
    return f"{base}/{query.type}" + (f"?{urlencode(pairs)}" if pairs else "")


def bundle(base: str, query: Query, records: list[Record], total: int) -> dict:
    """A ``searchset`` Bundle with ``self``/``next``/``previous`` links."""
    links = [{"relation": "self", "url": _link(base, query, query.offset)}]
    if not query.summary_count and query.count and query.offset + query.count < total:
        links.append({"relation": "next", "url": _link(base, query, query.offset + query.count)})
    if query.offset and not query.summary_count:
        previous = max(0, query.offset - max(query.count, 1))
        links.append({"relation": "previous", "url": _link(base, query, previous)})
    result: dict = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": Instant.of_us(now_us()).text},
        "type": "searchset",
        "total": total,
        "link": links,
    }
    entries = [
        {
            "fullUrl": f"{base}/{r.type}/{r.id}",
            "resource": r.resource(),
            "search": {"mode": "match"},
        }
        for r in records
    ]
    if entries:
        result["entry"] = entries
    return result
