"""Where providers and FHIR meet: a fetched page becomes validated transaction entries.

Pure apart from the metrics it counts: ``Provider.parse`` turns the provider's page into
samples, the FHIR builders turn samples into resources for this link's patient, validation
drops (and counts, and logs) anything invalid, and every Device the page's observations
reference travels with them as a conditional create.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ohe.fhir import bundle
from ohe.fhir.builders import BuildContext, build_observation, context_for
from ohe.fhir.devices import build_device
from ohe.fhir.identifiers import link_scope
from ohe.fhir.validation import validator
from ohe.models import ProviderLink
from ohe.observability.metrics import DATA_POINTS, SAMPLES_SKIPPED
from ohe.providers.base import FetchRequest, Provider
from ohe.samples import Modality, Sample
from ohe.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkInfo:
    """What transformation needs to know about a link (no tokens)."""

    link_id: int
    provider: str
    external_user_id: str
    patient_reference: str
    ehr_user_id: str

    @classmethod
    def of(cls, link: ProviderLink) -> LinkInfo:
        return cls(
            link_id=link.id,
            provider=link.provider.provider_type,
            external_user_id=link.external_user_id,
            patient_reference=link.ehr_user.patient_reference,
            ehr_user_id=link.ehr_user.ehr_user_id,
        )


def build_context(settings: Settings, link: LinkInfo) -> BuildContext:
    return context_for(
        link.provider,
        link.patient_reference,
        link_scope(settings.secret_key, link.provider, link.external_user_id),
        settings.fhir_identifier_base,
        f"{settings.public_url}#{link.provider}",
        settings.fhir_version,
    )


@dataclass
class Transformed:
    entries: list[dict[str, Any]]
    samples: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # source ids of the samples kept


def keep(samples: list[Sample], wanted: frozenset[str] | None) -> tuple[list[Sample], Counter[str]]:
    """The patient's samples of the wanted types, and why the others were skipped."""
    kept: list[Sample] = []
    skipped: Counter[str] = Counter()
    for sample in samples:
        if sample.modality is Modality.AMBIGUOUS:
            skipped["ambiguous"] += 1
        elif wanted is not None and sample.data_type not in wanted:
            skipped["excluded_type"] += 1
        else:
            kept.append(sample)
    return kept, skipped


def transform_page(
    provider: Provider,
    request: FetchRequest,
    payload: dict[str, Any],
    *,
    ctx: BuildContext,
    wanted: frozenset[str] | None,
    validation_mode: str,
) -> Transformed:
    kept, skipped = keep(provider.parse(request, payload), wanted)
    observations = [r for r in (build_observation(s, ctx) for s in kept) if r is not None]
    devices = {s.device.device_id: s.device for s in kept if s.device is not None}
    referenced = {o["device"]["reference"] for o in observations if "device" in o}
    device_resources = [
        build_device(d, ctx, with_state=False)
        for d in devices.values()
        if ctx.device_url(d) in referenced
    ]
    valid, rejected = validator(validation_mode, ctx.version).partition(
        device_resources + observations
    )
    entries = [
        bundle.create_entry(r) if r["resourceType"] == "Device" else bundle.update_entry(r)
        for r in valid
    ]
    for sample in kept:
        DATA_POINTS.labels(provider.name, sample.data_type).inc()
    for reason, count in skipped.items():
        SAMPLES_SKIPPED.labels(provider.name, reason).inc(count)
    return Transformed(entries, len(kept), skipped, rejected, [s.source_id for s in kept])
