"""Inbound validation: fhir.resources models plus the rules those models do not enforce.

The models check structure, cardinality and primitive formats, and reject elements of the other
FHIR release (R4 ``Device.deviceName`` in R5, R5 ``Device.displayName`` in R4). They do not check
required value-set bindings or invariants (platform-notes §2.6): ``Observation.status = "bogus"``
passes. The tables below close that gap for the elements OHE writes, and every reference must be
one the server can resolve — a client that sends anything else has a bug we want to surface.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ohe.sandbox.fhir import references
from ohe.sandbox.fhir.catalog import FhirVersion
from ohe.sandbox.fhir.outcomes import FhirError, Issue

MAX_ISSUES = 20


@dataclass(frozen=True)
class CodeRule:
    """A required binding: the element's code must come from ``codes``.

    ``system`` is set for CodeableConcept-typed elements: one coding must carry that system and
    one of the codes (DeviceAssociation.status is a CodeableConcept in R5).
    """

    resource_type: str
    element: str
    codes: frozenset[str]
    system: str | None = None


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


OBSERVATION_STATUS = _codes(
    "registered preliminary final amended corrected cancelled entered-in-error unknown"
)
BUNDLE_TYPES_R4 = _codes(
    "document message transaction transaction-response batch batch-response history searchset "
    "collection"
)

RULES: Mapping[str, tuple[CodeRule, ...]] = {
    "R5": (
        CodeRule("Observation", "status", OBSERVATION_STATUS),
        CodeRule("Device", "status", _codes("active inactive entered-in-error")),
        CodeRule(
            "DeviceAssociation",
            "status",
            _codes("implanted explanted attached entered-in-error unknown"),
            system="http://hl7.org/fhir/deviceassociation-status",
        ),
        CodeRule("Bundle", "type", BUNDLE_TYPES_R4 | {"subscription-notification"}),
    ),
    "R4": (
        CodeRule("Observation", "status", OBSERVATION_STATUS),
        CodeRule("Device", "status", _codes("active inactive entered-in-error unknown")),
        CodeRule("Bundle", "type", BUNDLE_TYPES_R4),
    ),
}


def _sampled_data_one_grid(resource: dict) -> Iterator[tuple[str, str]]:
    """sdd-1 (R5): a SampledData has ``interval`` or ``offsets``, never both, never neither."""
    for path, node in _elements(resource, ""):
        one_grid = isinstance(node, dict) and ("interval" in node) != ("offsets" in node)
        if path.endswith("SampledData") and isinstance(node, dict) and not one_grid:
            yield path, "SampledData needs exactly one of interval and offsets (sdd-1)"


#: Invariants per FHIR version: functions yielding (path, message) for each violation.
INVARIANTS: Mapping[str, tuple[Callable[[dict], Iterator[tuple[str, str]]], ...]] = {
    "R5": (_sampled_data_one_grid,),
    "R4": (),
}

#: Friendlier wording for the pydantic errors a client most often triggers.
PHRASES: Mapping[str, str] = {
    "extra_forbidden": "is not an element of {type} in FHIR {version}",
    "missing": "is required",
    "model_field_validation.missing": "is required",
}
ISSUE_CODES: Mapping[str, str] = {
    "extra_forbidden": "structure",
    "missing": "required",
    "model_field_validation.missing": "required",
}


def _elements(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else key
            yield child, value
            yield from _elements(value, child)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _elements(item, f"{path}[{i}]")


def _resources(node: Any, path: str) -> Iterator[tuple[str, dict]]:
    """The resource and every resource nested in it (contained, Bundle entries)."""
    if isinstance(node, dict) and isinstance(node.get("resourceType"), str):
        yield path, node
    for child_path, value in _elements(node, path):
        if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
            yield child_path, value


def _loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class Validator:
    """Validates resources for one FHIR version; 400 for unparseable input, 422 for invalid."""

    def __init__(self, version: FhirVersion) -> None:
        self.version = version
        self._lookup = importlib.import_module(version.models).get_fhir_model_class
        self._rules = {(r.resource_type, r.element): r for r in RULES[version.name]}
        self._invariants = INVARIANTS[version.name]
        # Import every model now: the first request should not pay ~0.2 s per type.
        self._models = {t: self._lookup(t) for t in version.types}

    def model(self, resource_type: str) -> Any:
        if resource_type not in self._models:
            self._models[resource_type] = self._lookup(resource_type)
        return self._models[resource_type]

    def check(self, resource: Any, expected_type: str | None = None) -> None:
        if not isinstance(resource, dict):
            raise FhirError.of(400, "the body must be a JSON object (a FHIR resource)")
        found = resource.get("resourceType")
        if not isinstance(found, str):
            raise FhirError.of(400, "the resource has no resourceType", code="structure")
        if expected_type and found != expected_type:
            raise FhirError.of(400, f"expected a {expected_type} resource, got {found}")
        if not self.version.supports(found):
            raise FhirError.of(
                400, f"resource type {found} is not supported by this {self.version.name} server"
            )
        issues = self._model_issues(found, resource) + self._own_issues(resource)
        if issues:
            raise FhirError(422, issues[:MAX_ISSUES])

    def _model_issues(self, resource_type: str, resource: dict) -> list[Issue]:
        try:
            self.model(resource_type).model_validate(resource)
        except (
            ValueError
        ) as exc:  # pydantic's ValidationError; fhir.resources does not re-export it
            if not callable(getattr(exc, "errors", None)):
                raise
            issues = []
            for error in exc.errors()[:MAX_ISSUES]:
                where = f"{resource_type}.{_loc(error['loc'])}"
                phrase = PHRASES.get(error["type"], error["msg"])
                text = phrase.format(type=resource_type, version=self.version.name)
                code = ISSUE_CODES.get(error["type"], "value")
                issues.append(Issue(code, f"{where} {text}", expression=(where,)))
            return issues
        return []

    def _own_issues(self, resource: dict) -> list[Issue]:
        allow_urn = resource.get("resourceType") == "Bundle"
        top = resource["resourceType"]
        issues = []
        for path, nested in _resources(resource, top):
            issues += self._code_issues(path, nested)
        for check in self._invariants:  # each invariant walks the whole tree itself
            issues += [
                Issue("invariant", f"{top}.{where}: {text}", expression=(f"{top}.{where}",))
                for where, text in check(resource)
            ]
        for path, ref in references.walk(resource, resource["resourceType"]):
            problem = references.problem(ref["reference"], allow_urn=allow_urn)
            if problem:
                where = f"{path}.reference"
                issues.append(Issue("invalid", f"{where}: {problem}", expression=(where,)))
        return issues

    def _code_issues(self, path: str, resource: dict) -> list[Issue]:
        issues = []
        for (resource_type, element), rule in self._rules.items():
            if resource.get("resourceType") != resource_type or element not in resource:
                continue
            value = resource[element]
            where = f"{path}.{element}"
            if rule.system is None:
                if value in rule.codes:
                    continue
                wanted = f"one of {', '.join(sorted(rule.codes))}"
                text = f"{where} {value!r} is not {wanted}"
            else:
                codings = value.get("coding", []) if isinstance(value, dict) else []
                if any(
                    isinstance(c, dict)
                    and c.get("system") == rule.system
                    and c.get("code") in rule.codes
                    for c in codings
                ):
                    continue
                codes = ", ".join(sorted(rule.codes))
                text = f"{where} needs a coding from {rule.system} with code {codes}"
            issues.append(Issue("code-invalid", text, expression=(where,)))
        return issues
