"""Every resource is checked before it leaves; an invalid one is counted, logged and dropped.

Two modes (``OHE_FHIR_VALIDATION``):

- ``strict``: full fhir.resources validation (R5 models, or R4B for R4) of the JSON that goes on
  the wire, plus the rules fhir.resources does not enforce (required code bindings for statuses,
  reference syntax, absolute code-system URIs, FHIR decimal precision). About 120-165 µs per
  Observation: right for tests and cautious deployments, too slow to be the default.
- ``fast`` (default): the builders assemble resources from fragments that never change within a
  page (codes, categories, meta, subject, identifier systems); those are verified once, with the
  strict checks, and remembered. Per resource only the parts that come from provider data are
  checked (identifier value, status, numbers, texts, SampledData strings). Property tests feed
  arbitrary samples through every builder and prove that both modes reach the same verdict.
  Dates are not re-parsed in this mode: builders render them from timezone-aware datetimes
  that ``Sample`` validated, so they are valid by construction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson
from fhir.resources import get_fhir_model_class
from fhir.resources.R4B import get_fhir_model_class as get_r4b_model_class

from ohe.fhir.builders import Resource
from ohe.fhir.bundle import dumps
from ohe.observability.metrics import FHIR_VALIDATION_ERRORS

log = logging.getLogger(__name__)

OBSERVATION_STATUSES = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
     "entered-in-error", "unknown"}
)  # fmt: skip
DEVICE_STATUSES = {
    "R5": frozenset({"active", "inactive", "entered-in-error"}),
    "R4": frozenset({"active", "inactive", "entered-in-error", "unknown"}),
}
ASSOCIATION_STATUSES = frozenset(
    {"implanted", "explanted", "attached", "entered-in-error", "unknown"}
)
ASSOCIATION_SYSTEM = "http://hl7.org/fhir/deviceassociation-status"
MAX_DIGITS = 18  # FHIR decimals: at least 18 digits must be supported; we never send more
_REFERENCE = re.compile(r"^(urn:uuid:[0-9a-f-]{36}|[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})$")
_ABSOLUTE_URI = re.compile(r"^(https?://\S+|urn:\S+)$")
_DATE_TIME = re.compile(
    r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|"
    r"3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?"
    r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$"
)
_SAMPLE = re.compile(r"^(-?\d+(\.\d+)?|E|U|L)( (-?\d+(\.\d+)?|E|U|L))*$")


class InvalidResource(ValueError):
    """A resource failed validation; the message names the element and the rule."""


# --- rules shared by both modes ----------------------------------------------------------------


def _decimal(value: Any, where: str, part: str = "") -> None:
    """Finite numbers within ±10^18 (what FHIR servers must handle); hot path, kept cheap.

    Hot-path helpers take the location in two parts and only join them to report an error.
    """
    kind = type(value)
    if kind is Decimal:
        if not value.is_finite() or not -MAX_DIGITS <= value.adjusted() <= MAX_DIGITS:
            raise InvalidResource(f"{where}{part}: not a finite number within ±10^{MAX_DIGITS}")
    elif kind is not int:
        raise InvalidResource(f"{where}{part}: expected a number")


def _text(value: Any, where: str, part: str = "") -> None:
    if type(value) is not str or not value:
        raise InvalidResource(f"{where}{part}: expected a non-empty string")


_SAMPLE_CHARS = "0123456789.-EUL "


def _sampled(sampled: dict[str, Any], where: str) -> None:
    """Cheap SampledData rules (both modes); the exact data grammar is checked in strict mode."""
    data = sampled.get("data")
    if type(data) is not str or not data or data.strip(_SAMPLE_CHARS) or "  " in data:
        raise InvalidResource(f"{where}.data: expected space-separated decimals or E/U/L")
    for key in ("interval", "period", "factor"):
        if key in sampled:
            _decimal(sampled[key], where, f".{key}")
            if sampled[key] <= 0:
                raise InvalidResource(f"{where}.{key}: must be positive")
    offsets = sampled.get("offsets")
    if offsets is not None:
        if type(offsets) is not str or not offsets or offsets.strip(_SAMPLE_CHARS):
            raise InvalidResource(f"{where}.offsets: expected space-separated decimals")
        if offsets.count(" ") != data.count(" "):
            raise InvalidResource(f"{where}.offsets: one offset per data point is required")


def _sampled_grammar(resource: Resource) -> None:
    """Strict mode: every SampledData string matches FHIR's grammar exactly."""
    parts = [resource, *resource.get("component", ())]
    for part in parts:
        sampled = part.get("valueSampledData")
        if sampled is None:
            continue
        for key in ("data", "offsets"):
            if key in sampled and not _SAMPLE.match(sampled[key]):
                raise InvalidResource(f"SampledData.{key}: does not match the FHIR grammar")


def _date_time(value: Any, where: str) -> None:
    if type(value) is not str or not _DATE_TIME.match(value):
        raise InvalidResource(f"{where}: {value!r} is not a FHIR dateTime")


def _quantity(quantity: dict[str, Any], where: str) -> None:
    _decimal(quantity.get("value"), where, ".value")
    _text(quantity.get("unit"), where, ".unit")
    _text(quantity.get("code"), where, ".code")


def _value_parts(container: dict[str, Any], where: str) -> None:
    if "valueQuantity" in container:
        _quantity(container["valueQuantity"], f"{where}.valueQuantity")
    if "valueSampledData" in container:
        _sampled(container["valueSampledData"], f"{where}.valueSampledData")
    if "valueCodeableConcept" in container:
        concept = container["valueCodeableConcept"]
        if "text" in concept:
            _text(concept["text"], f"{where}.valueCodeableConcept.text")


def _observation_data(resource: Resource, version: str) -> None:
    """Per-resource checks of everything that comes from provider data (the hot path)."""
    _text(resource["identifier"][0].get("value"), "Observation.identifier[0].value")
    if resource.get("status") not in OBSERVATION_STATUSES:
        raise InvalidResource(
            f"Observation.status: {resource.get('status')!r} is not a status code"
        )
    instant = resource.get("effectiveDateTime")
    if instant is not None:
        _date_time(instant, "Observation.effectiveDateTime")
    else:
        period = resource.get("effectivePeriod") or {}
        _date_time(period.get("start"), "Observation.effectivePeriod.start")
        _date_time(period.get("end"), "Observation.effectivePeriod.end")
    quantity = resource.get("valueQuantity")
    if quantity is not None:
        _quantity(quantity, "Observation.valueQuantity")
    elif "valueSampledData" in resource:
        _sampled(resource["valueSampledData"], "Observation.valueSampledData")
    for index, component in enumerate(resource.get("component", ())):
        _value_parts(component, f"Observation.component[{index}]")


def _quick_observation(  # noqa: PLR0911, PLR0912 - one flat function is the point here
    resource: Resource,
    verified: dict[tuple[Any, ...], Any],
    _id: Any = id,
    _type: Any = type,
    _str: Any = str,
    _decimal_type: Any = Decimal,
    _int: Any = int,
    _statuses: Any = OBSERVATION_STATUSES,
    _chars: str = _SAMPLE_CHARS,
    _max: int = MAX_DIGITS,
) -> bool:
    """True when a quantity or SampledData Observation is certainly valid.

    The common shapes of a page, checked in one flat function with local names (no helper
    calls, no global lookups): the data-derived parts are checked, and the shared fragments
    must be ones already verified in full. Anything else, or anything doubtful, returns False
    and takes the detailed path, which names the exact problem.
    """
    get = resource.get
    if "component" in resource:
        return False
    ident = resource["identifier"][0]
    if (
        _id(get("code")),
        _id(get("meta")),
        _id(get("subject")),
        _id(get("category")),
        _id(ident.get("system")),
        len(resource),
    ) not in verified:
        return False
    value = ident.get("value")
    if _type(value) is not _str or not value or get("status") not in _statuses:
        return False
    # effective[x] is not re-parsed here: builders render it from timezone-aware datetimes that
    # Sample validated (whole-minute UTC offsets), so it is a valid FHIR dateTime by
    # construction (the property tests check every builder). The detailed path parses it.
    if "effectiveDateTime" not in resource and "effectivePeriod" not in resource:
        return False
    quantity = get("valueQuantity")
    if quantity is not None:
        number, unit, code = quantity.get("value"), quantity.get("unit"), quantity.get("code")
        if _type(number) is _decimal_type:
            if not number.is_finite() or not -_max <= number.adjusted() <= _max:
                return False
        elif _type(number) is not _int:
            return False
        return _type(unit) is _str and unit != "" and _type(code) is _str and code != ""
    sampled = get("valueSampledData")
    if sampled is None:
        return False
    data = sampled.get("data")
    if _type(data) is not _str or not data or data.strip(_chars) or "  " in data:
        return False
    spacing = sampled.get("interval", sampled.get("period"))
    if spacing is not None:
        if "offsets" in sampled:
            return False
        if _type(spacing) is _decimal_type:
            return spacing.is_finite() and spacing > 0 and spacing.adjusted() <= _max
        return _type(spacing) is _int and spacing > 0
    offsets = sampled.get("offsets")
    return (
        _type(offsets) is _str
        and offsets != ""
        and not offsets.strip(_chars)
        and offsets.count(" ") == data.count(" ")
    )


def _device_data(resource: Resource, version: str) -> None:
    _text(resource["identifier"][0].get("value"), "Device.identifier[0].value")
    if resource.get("status") not in DEVICE_STATUSES[version]:
        raise InvalidResource(f"Device.status: {resource.get('status')!r} is not a status code")
    for key in ("manufacturer", "displayName", "modelNumber"):
        if key in resource:
            _text(resource[key], f"Device.{key}")
    for name in [*resource.get("name", ()), *resource.get("deviceName", ())]:
        _text(name.get("value", name.get("name")), "Device.name")
    kinds = resource.get("type", [])
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        _text(kind.get("text"), "Device.type.text")
    for prop in resource.get("property", ()):
        concept = prop.get("valueCodeableConcept") or (prop.get("valueCode") or [{}])[0]
        _text(concept.get("text"), "Device.property.value")


def _association_data(resource: Resource, version: str) -> None:
    if version != "R5":
        raise InvalidResource("DeviceAssociation: not available in R4")
    _text(resource["identifier"][0].get("value"), "DeviceAssociation.identifier[0].value")
    codings = resource.get("status", {}).get("coding", [])
    if (
        not codings
        or codings[0].get("system") != ASSOCIATION_SYSTEM
        or (codings[0].get("code") not in ASSOCIATION_STATUSES)
    ):
        raise InvalidResource("DeviceAssociation.status: expected a deviceassociation-status code")


DATA_RULES: dict[str, Callable[[Resource, str], None]] = {
    "Observation": _observation_data,
    "Device": _device_data,
    "DeviceAssociation": _association_data,
}


def _fragment_rules(resource: Resource) -> None:
    """Rules on the shared fragments (references, systems) that fhir.resources does not check."""
    for key in ("subject", "device"):
        reference = resource.get(key, {}).get("reference")
        if reference is not None and not _REFERENCE.match(reference):
            raise InvalidResource(
                f"{resource['resourceType']}.{key}: {reference!r} is not a reference"
            )
    for ident in resource.get("identifier", ()):
        if not _ABSOLUTE_URI.match(ident.get("system", "")):
            raise InvalidResource(
                f"{resource['resourceType']}.identifier.system: not an absolute URI"
            )
    for coding in resource.get("code", {}).get("coding", ()):
        if not _ABSOLUTE_URI.match(coding.get("system", "")):
            raise InvalidResource(f"{resource['resourceType']}.code.system: not an absolute URI")


# --- the two modes -------------------------------------------------------------------------------


def strict_check(resource: Resource, version: str) -> None:
    """Full validation of the wire JSON with fhir.resources plus the shared rules."""
    resource_type = resource.get("resourceType")
    rules = DATA_RULES.get(resource_type)  # type: ignore[arg-type]
    if rules is None:
        raise InvalidResource(f"{resource_type}: not a resource type OHE writes")
    rules(resource, version)
    _fragment_rules(resource)
    _sampled_grammar(resource)
    getter = get_fhir_model_class if version == "R5" else get_r4b_model_class
    try:
        model = getter(resource_type)
    except KeyError:
        raise InvalidResource(f"{resource_type}: not available in {version}") from None
    try:
        model.model_validate(orjson.loads(dumps(resource)))
    except ValueError as exc:
        first = str(exc).splitlines()
        raise InvalidResource(" ".join(first[1:3]).strip() or first[0]) from None


MAX_VERIFIED = 50_000


def _fragments(resource: Resource) -> tuple[Any, ...]:
    return (
        resource.get("code"),
        resource.get("meta"),
        resource.get("subject"),
        resource.get("category"),
        resource["identifier"][0].get("system"),
        [c.get("code") for c in resource.get("component", ())],
    )


class Validator:
    """Checks resources in the configured mode; remembers fragments already verified.

    One per mode and FHIR version per process (:func:`validator`): fragments verified once
    stay verified for the life of the process; the verified fragments are held here, so their
    identities cannot be reused by other objects.
    """

    def __init__(self, mode: str, version: str) -> None:
        if mode not in ("fast", "strict"):
            raise ValueError("mode must be fast or strict")
        self.mode = mode
        self.version = version
        # key -> the fragment objects themselves: holding them keeps their ids from being reused
        self._verified: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def check(self, resource: Resource) -> None:
        """Raise :class:`InvalidResource` naming the element and rule if the resource is invalid."""
        if self.mode == "strict":
            strict_check(resource, self.version)
            return
        resource_type = resource["resourceType"]
        if resource_type == "Observation" and _quick_observation(resource, self._verified):
            return
        rules = DATA_RULES.get(resource_type)
        if rules is None:
            raise InvalidResource(f"{resource_type}: not a resource type OHE writes")
        rules(resource, self.version)
        key = self._fragment_key(resource)
        if key not in self._verified:
            # First resource of its kind from these fragments: verify everything, once.
            strict_check(resource, self.version)
            if len(self._verified) >= MAX_VERIFIED:
                self._verified.clear()
            self._verified[key] = _fragments(resource)

    @staticmethod
    def _fragment_key(resource: Resource) -> tuple[Any, ...]:
        """Identity of the shared fragments a builder used, and how many elements there are.

        Any element added, removed or replaced by something else changes the key. For the
        common shapes the key is the one :func:`_quick_observation` looks up.
        """
        key = (
            id(resource.get("code")),
            id(resource.get("meta")),
            id(resource.get("subject")),
            id(resource.get("category")),
            id(resource["identifier"][0].get("system")),
            len(resource),
        )
        components = resource.get("component")
        if components:
            return (*key, tuple(id(c.get("code")) for c in components))
        return key

    def partition(self, resources: Iterable[Resource]) -> tuple[list[Resource], list[str]]:
        """Valid resources, and the reasons for each one dropped (counted and logged here)."""
        valid: list[Resource] = []
        reasons: list[str] = []
        quick, verified, fast = _quick_observation, self._verified, self.mode == "fast"
        for resource in resources:
            if fast and resource["resourceType"] == "Observation" and quick(resource, verified):
                valid.append(resource)
                continue
            try:
                self.check(resource)
            except InvalidResource as exc:
                resource_type = resource.get("resourceType", "unknown")
                FHIR_VALIDATION_ERRORS.labels(resource_type).inc()
                log.warning(
                    "invalid FHIR resource dropped",
                    extra={
                        "operation": "fhir_validate",
                        "error_type": "validation_error",
                        "resource_type": resource_type,
                        "reason": str(exc),
                    },
                )
                reasons.append(str(exc))
            else:
                valid.append(resource)
        return valid, reasons


@lru_cache(maxsize=4)
def validator(mode: str, version: str) -> Validator:
    """The process-wide validator of a mode and FHIR version."""
    return Validator(mode, version)
