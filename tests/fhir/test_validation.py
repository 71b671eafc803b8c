"""Validation: the fast default check reaches the same verdict as full fhir.resources validation."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from ohe.fhir.builders import build_observation
from ohe.fhir.devices import build_device
from ohe.fhir.validation import InvalidResource, Validator, strict_check
from ohe.samples import Modality, Sample
from tests.fhir.conftest import make_context
from tests.fhir.strategies import devices, samples


def _verdict(check, resource) -> bool:
    try:
        check(resource)
    except InvalidResource:
        return False
    return True


# Corruptions of data-derived elements a provider could cause, and of shared fragments. Dates
# are absent on purpose: the fast mode trusts builders to render them from validated datetimes
# (test_sample_datetimes_are_always_fhir_date_times checks that), and does not re-parse them.
MUTATIONS = {
    "empty identifier value": lambda r: r["identifier"][0].__setitem__("value", ""),
    "bogus status": lambda r: r.__setitem__("status", "bogus"),
    "nan value": lambda r: r.get("valueQuantity", {}).__setitem__("value", Decimal("NaN")),
    "huge value": lambda r: r.get("valueQuantity", {}).__setitem__("value", Decimal("1" * 25)),
    "string value": lambda r: r.get("valueQuantity", {}).__setitem__("value", "72"),
    "empty unit": lambda r: r.get("valueQuantity", {}).__setitem__("unit", ""),
    "bad subject": lambda r: r.__setitem__("subject", {"reference": "not a reference"}),
    "relative system": lambda r: r["identifier"][0].__setitem__("system", "withings/measure"),
    "unknown element": lambda r: r.__setitem__("flavour", "sweet"),
    "missing code": lambda r: r.pop("code"),
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=samples().filter(lambda s: s.modality is not Modality.AMBIGUOUS),
    version=st.sampled_from(["R5", "R4"]),
    mutation=st.sampled_from([None, *MUTATIONS]),
)
def test_fast_and_full_validation_agree(sample: Sample, version: str, mutation: str | None) -> None:
    ctx = make_context(version)
    fast = Validator("fast", version)
    fast.check(build_observation(sample, ctx))  # a first, valid resource primes the fragments
    resource = build_observation(sample, ctx)  # shares the fragments, owns its data parts
    if mutation is not None:
        MUTATIONS[mutation](resource)
    full = _verdict(lambda r: strict_check(r, version), resource)
    assert _verdict(fast.check, resource) == full, mutation
    assert full == (mutation is None or _harmless(mutation, resource))


def _harmless(mutation: str, resource: dict) -> bool:
    """Mutations of an element the resource does not have leave it valid."""
    quantity_mutation = mutation in {"nan value", "huge value", "string value", "empty unit"}
    return quantity_mutation and "valueQuantity" not in resource


@settings(max_examples=100, deadline=None)
@given(device=devices, version=st.sampled_from(["R5", "R4"]))
def test_fast_and_full_agree_on_devices(device, version: str) -> None:
    ctx = make_context(version)
    validator = Validator("fast", version)
    validator.check(build_device(device, ctx))
    for corrupt in (None, lambda r: r.__setitem__("status", "broken"),
                    lambda r: r.__setitem__("manufacturer", "")):  # fmt: skip
        candidate = build_device(device, ctx)
        if corrupt:
            corrupt(candidate)
        fast = _verdict(validator.check, candidate)
        assert fast == _verdict(lambda r: strict_check(r, version), candidate)
        assert fast == (corrupt is None)


def _errors(resource_type: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "ohe_fhir_validation_errors_total", {"resource_type": resource_type}
        )
        or 0.0
    )


@pytest.mark.parametrize("mode", ["fast", "strict"])
def test_invalid_resources_are_counted_logged_and_dropped_the_rest_goes_on(
    mode: str, caplog
) -> None:
    ctx = make_context()
    from tests.fhir.test_builders import representative

    good = [build_observation(representative(t), ctx) for t in ("weight", "spo2", "ecg")]
    bad = copy.deepcopy(good[0])
    bad["status"] = "bogus"
    before = _errors("Observation")
    valid, reasons = Validator(mode, "R5").partition([good[0], bad, good[1], good[2]])
    assert valid == good
    assert reasons == ["Observation.status: 'bogus' is not a status code"]
    assert _errors("Observation") == before + 1
    record = next(r for r in caplog.records if r.message == "invalid FHIR resource dropped")
    assert record.error_type == "validation_error"
    assert "bogus" in record.reason


def test_sample_datetimes_are_always_fhir_date_times() -> None:
    """What the fast mode relies on: a Sample's instants always render as FHIR dateTimes."""
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    from ohe.fhir.validation import _DATE_TIME

    paris_1900 = datetime(1900, 1, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))  # LMT: +00:09:21
    with pytest.raises(ValueError, match="offset with seconds"):
        Sample("weight", "measure", "x", paris_1900, value=Decimal(1))
    for offset in (timedelta(hours=-12), timedelta(0), timedelta(hours=5, minutes=45)):
        instant = datetime(2026, 3, 4, 8, 15, 30, 123456, tzinfo=timezone(offset))
        sample = Sample("weight", "measure", "x", instant, value=Decimal(1))
        assert _DATE_TIME.match(sample.effective_start.isoformat())
