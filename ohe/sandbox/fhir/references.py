"""References inside resources: finding them, reading their target, rewriting them.

Validation uses this to insist on resolvable references (``Type/id``), indexing to learn what a
resource points at, and the transaction processor to replace ``urn:uuid:`` placeholders and
conditional references (``Device?identifier=sys|val``) with the ids the server assigned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

#: ``Type/id`` or ``Type/id/_history/vid``, optionally after an absolute base URL.
_TARGET = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<vid>[A-Za-z0-9\-.]{1,64}))?$"
)
_RELATIVE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
_CONDITIONAL = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)\?(?P<query>.+)$")


def target_of(reference: str) -> tuple[str, str] | None:
    """``(type, id)`` of a relative or absolute literal reference, else None."""
    match = _TARGET.search(reference)
    if not match or not (reference.startswith("http") or _RELATIVE.match(reference)):
        return None
    return match["type"], match["id"]


def conditional(reference: str) -> tuple[str, str] | None:
    """``(type, query)`` of a conditional reference such as ``Device?identifier=s|v``."""
    match = _CONDITIONAL.match(reference)
    return (match["type"], match["query"]) if match else None


def problem(reference: str, *, allow_urn: bool) -> str | None:
    """Why ``reference`` cannot be resolved by this server, or None if it can.

    Accepted: ``Type/id[/_history/v]``, absolute http(s) URLs of that shape, ``#local``
    references to contained resources, and (inside stored Bundles) ``urn:uuid:``/``urn:oid:``.
    """
    if _RELATIVE.match(reference) or reference.startswith("#"):
        return None
    if reference.startswith(("http://", "https://")) and target_of(reference):
        return None
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        if allow_urn:
            return None
        return (
            f"unresolved reference {reference!r} (a urn:uuid reference must name the fullUrl "
            "of another entry in the same transaction)"
        )
    if conditional(reference):
        return f"conditional reference {reference!r} was not resolved"
    return f"reference {reference!r} is not of the form Type/id"


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every Reference (a dict with a string ``reference``) under ``node``, with its path."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield path, node
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from walk(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, f"{path}[{i}]")


def rewrite(node: Any, replace: Callable[[str], str | None]) -> Any:
    """A copy of ``node`` where every Reference.reference ``r`` becomes ``replace(r)``.

    ``replace`` returns None to keep a reference as it is. Narrative and other strings are left
    alone: only Reference elements are resolved.
    """
    if isinstance(node, dict):
        copy = {k: rewrite(v, replace) for k, v in node.items()}
        reference = node.get("reference")
        if isinstance(reference, str):
            new = replace(reference)
            if new is not None:
                copy["reference"] = new
        return copy
    if isinstance(node, list):
        return [rewrite(item, replace) for item in node]
    return node
