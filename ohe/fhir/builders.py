"""Sample → Observation (R5 by default, R4 on request), as plain JSON-ready dicts.

Why dicts and not fhir.resources models: building models costs ~120 µs per Observation, which
would make transformation the bottleneck; the builders emit plain dicts whose shape the tests
prove valid with full fhir.resources validation for every data type and version (and a property
test for arbitrary samples). Static parts (codes, categories, meta, subject) are built once and
shared between resources; nothing mutates a built resource.

Transformation is pure: no I/O, no clock (``issued`` is left out on purpose, so re-syncing an
unchanged measurement produces an identical resource and the server keeps its version).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ohe.fhir import identifiers
from ohe.fhir.codes import CODES, CodeRow, Shape
from ohe.fhir.elements import category, coded, local_code_system, quantity
from ohe.fhir.sampled import ecg_parts, sampled_data
from ohe.samples import DeviceRef, Modality, Sample

Resource = dict[str, Any]


class BuildContext:
    """What a resource needs about the patient, link and deployment; built once per page."""

    __slots__ = (
        "_device_urls",
        "identifier_base",
        "local_system",
        "meta",
        "patient",
        "provider",
        "scope",
        "subject",
        "systems",
        "version",
    )

    def __init__(
        self,
        *,
        provider: str,
        patient: str,
        scope: str,
        identifier_base: str,
        source: str,
        version: str = "R5",
    ) -> None:
        if version not in ("R5", "R4"):
            raise ValueError("version must be R5 or R4")
        self.provider = provider
        self.patient = patient
        self.scope = scope
        self.version = version
        self.identifier_base = identifier_base.rstrip("/")
        self.local_system = local_code_system(self.identifier_base)
        self.subject = {"reference": patient}
        self.meta = {
            "source": source,
            "tag": [
                {"system": f"{self.local_system.rsplit('/', 1)[0]}/ohe-provider", "code": provider}
            ],
        }
        self.systems = {
            kind: identifiers.system(self.identifier_base, provider, kind)
            for kind in identifiers.RECORD_KINDS
        }
        self._device_urls: dict[str, str] = {}

    def identifier(self, kind: str, natural_key: str) -> dict[str, str]:
        return {"system": self.systems[kind], "value": f"{self.scope}:{natural_key}"}

    def device_url(self, device: DeviceRef) -> str:
        """The bundle-internal ``urn:uuid`` of a device (same device, same urn, every time)."""
        url = self._device_urls.get(device.device_id)
        if url is None:
            url = identifiers.full_url(self.systems["device"], f"{self.scope}:{device.device_id}")
            self._device_urls[device.device_id] = url
        return url


@lru_cache(maxsize=16)
def _self_reported(local_system: str) -> dict[str, Any]:
    return {
        "coding": [{"system": local_system, "code": "self-reported", "display": "Self-reported"}],
        "text": "self-reported",
    }


def _component(data_type: str, value: Any, ctx: BuildContext) -> dict[str, Any]:
    row = CODES[data_type]
    return {"code": coded(data_type, ctx.local_system), "valueQuantity": quantity(value, row)}


# --- shapes ------------------------------------------------------------------------------------


def _quantity(obs: Resource, sample: Sample, row: CodeRow, ctx: BuildContext) -> None:
    if sample.value is None:
        raise ValueError(f"{sample.data_type} needs a value")
    obs["valueQuantity"] = quantity(sample.value, row)


def _panel(obs: Resource, sample: Sample, row: CodeRow, ctx: BuildContext) -> None:
    if not sample.components:
        raise ValueError(f"{sample.data_type} needs components")
    obs["component"] = [_component(c.data_type, c.value, ctx) for c in sample.components]


def _summary(obs: Resource, sample: Sample, row: CodeRow, ctx: BuildContext) -> None:
    _quantity(obs, sample, row, ctx)
    if sample.components:
        obs["component"] = [_component(c.data_type, c.value, ctx) for c in sample.components]


def _sampled(obs: Resource, sample: Sample, row: CodeRow, ctx: BuildContext) -> None:
    if sample.series is None:
        raise ValueError(f"{sample.data_type} needs a series")
    obs["valueSampledData"] = sampled_data(sample.series, row, ctx.version)


def _ecg(obs: Resource, sample: Sample, row: CodeRow, ctx: BuildContext) -> None:
    if sample.waveform is None:
        raise ValueError("ecg needs a waveform")
    components, interpretation = ecg_parts(sample.waveform, ctx.version, ctx.local_system)
    obs["component"] = components
    if interpretation is not None:
        obs["interpretation"] = [interpretation]


SHAPES: dict[Shape, Callable[[Resource, Sample, CodeRow, BuildContext], None]] = {
    Shape.QUANTITY: _quantity,
    Shape.PANEL: _panel,
    Shape.SUMMARY: _summary,
    Shape.SAMPLED: _sampled,
    Shape.ECG: _ecg,
}


@lru_cache(maxsize=4096)
def context_for(  # noqa: PLR0917 - the cache key is the argument tuple
    provider: str, patient: str, scope: str, identifier_base: str, source: str, version: str
) -> BuildContext:
    """One BuildContext per link and deployment per process: its fragments are built once and
    stay the same objects, which lets the fast validation recognise them as verified."""
    return BuildContext(
        provider=provider,
        patient=patient,
        scope=scope,
        identifier_base=identifier_base,
        source=source,
        version=version,
    )


def build_observation(sample: Sample, ctx: BuildContext) -> Resource | None:
    """One Observation for one sample; ``None`` for a reading that is not the patient's."""
    if sample.modality is Modality.AMBIGUOUS:
        return None
    row = CODES[sample.data_type]
    obs: Resource = {
        "resourceType": "Observation",
        "meta": ctx.meta,
        "identifier": [ctx.identifier(sample.record_kind, sample.source_id)],
        "status": sample.status.value,
        "category": category(row.category),
        "code": coded(sample.data_type, ctx.local_system),
        "subject": ctx.subject,
    }
    if sample.effective_end is None:
        obs["effectiveDateTime"] = sample.effective_start.isoformat()
    else:
        obs["effectivePeriod"] = {
            "start": sample.effective_start.isoformat(),
            "end": sample.effective_end.isoformat(),
        }
    if sample.modality is Modality.SELF_REPORTED:
        obs["performer"] = [ctx.subject]
        obs["method"] = _self_reported(ctx.local_system)
    elif sample.device is not None:
        obs["device"] = {"reference": ctx.device_url(sample.device)}
    SHAPES[row.shape](obs, sample, row, ctx)
    return obs
