"""SampledData for intraday series and ECG waveforms, in R5 and R4 shapes.

R5 SampledData has ``interval`` + ``intervalUnit`` or ``offsets`` (never both, sdd-1); R4 has
only ``period`` in milliseconds, so irregular series are resampled onto a grid with ``E`` for
missing points. ECG waveforms keep every sample (no cap), in micro-volts, with no invented
``lowerLimit``/``upperLimit`` and no polarity flips.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from ohe.fhir.codes import (
    CODES,
    ECG_CLASSIFICATION_SYSTEM,
    INTERPRETATION_DISPLAY,
    INTERPRETATION_SYSTEM,
    RHYTHMS,
    UCUM,
    CodeRow,
)
from ohe.fhir.elements import coded, quantity
from ohe.samples import Series, Waveform

_MICRO = Decimal("0.000001")
_MS_PER_S = Decimal(1000)


def decimal_text(value: Decimal) -> str:
    """A FHIR decimal without exponent notation, source precision kept."""
    return format(value, "f")


def _origin(row: CodeRow) -> dict[str, Any]:
    return {"value": 0, "unit": row.unit_display, "system": UCUM, "code": row.unit}


def _data(values: tuple[Decimal, ...] | list[str]) -> str:
    return " ".join(v if isinstance(v, str) else decimal_text(v) for v in values)


def sampled_data(series: Series, row: CodeRow, version: str) -> dict[str, Any]:
    if version == "R5":
        sampled: dict[str, Any] = {"origin": _origin(row), "intervalUnit": "s", "dimensions": 1}
        if series.interval is not None:
            sampled["interval"] = series.interval
        else:
            sampled["offsets"] = _data(series.offsets or ())
        sampled["data"] = _data(series.values)
        return sampled
    if series.interval is not None:
        return {
            "origin": _origin(row),
            "period": series.interval * _MS_PER_S,
            "dimensions": 1,
            "data": _data(series.values),
        }
    step, grid = _resample(series)
    return {
        "origin": _origin(row),
        "period": step * _MS_PER_S,
        "dimensions": 1,
        "data": _data(grid),
    }


def _resample(series: Series) -> tuple[Decimal, list[str]]:
    """Place irregular points on the coarsest grid that keeps them apart (at least 1 s)."""
    offsets = series.offsets or ()
    gaps = [b - a for a, b in itertools.pairwise(offsets) if b > a]
    step = max(min(gaps, default=Decimal(60)), Decimal(1))
    positions = [int((offset / step).to_integral_value()) for offset in offsets]
    grid = ["E"] * (max(positions, default=0) + 1)
    for position, value in zip(positions, series.values, strict=True):
        grid[position] = decimal_text(value)
    return step, grid


def ecg_parts(
    waveform: Waveform, version: str, local_system: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The ECG's components (waveform first, impression, heart rate) and its interpretation."""
    lead = CODES["ecg_lead_i"]
    spacing = (_MS_PER_S / waveform.sampling_hz).quantize(_MICRO).normalize()
    sampled: dict[str, Any] = {"origin": _origin(lead), "factor": 1, "dimensions": 1}
    if version == "R5":
        sampled.update(interval=spacing, intervalUnit="ms")
    else:
        sampled["period"] = spacing
    sampled["data"] = " ".join(map(str, waveform.samples))
    components: list[dict[str, Any]] = [
        {"code": coded("ecg_lead_i", local_system), "valueSampledData": sampled}
    ]
    interpretation = None
    rhythm = RHYTHMS.get(waveform.classification or "")
    if rhythm is not None:
        components.append(
            {
                "code": coded("ecg_impression", local_system),
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": ECG_CLASSIFICATION_SYSTEM,
                            "code": rhythm.code,
                            "display": rhythm.display,
                        }
                    ],
                    "text": waveform.classification_label or rhythm.display,
                },
            }
        )
        interpretation = {
            "coding": [
                {
                    "system": INTERPRETATION_SYSTEM,
                    "code": rhythm.interpretation,
                    "display": INTERPRETATION_DISPLAY[rhythm.interpretation],
                }
            ]
        }
    if waveform.heart_rate is not None and waveform.heart_rate > 0:
        components.append(
            {
                "code": coded("ecg_heart_rate", local_system),
                "valueQuantity": quantity(waveform.heart_rate, CODES["ecg_heart_rate"]),
            }
        )
    return components, interpretation
