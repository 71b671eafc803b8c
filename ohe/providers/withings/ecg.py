"""The ``ecg`` stream: heart v2 ``list``, then ``get`` of each signal in the same fetch (§1.6).

The page payload carries the full waveforms, so ``parse`` stays pure. A page holds at most
``SIGNALS_PER_PAGE`` recordings (each ``get`` is a rate-limited call and 9,000 to 10,000 samples):
the page token is ``"<list offset>:<index in that list page>"`` and the list page is re-read
for each slice. The window's end is fixed when the run is planned, so re-reading a list page
returns the same rows. Failed recordings (no ``ecg``) are skipped; a BPM Core recording's
blood pressure becomes its own blood-pressure sample. Samples are never capped and polarity
is never inverted (``wearposition`` 2 is the right *arm*, not a reason to flip anything).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ohe.providers.base import FetchRequest, FetchResult
from ohe.providers.withings import paging
from ohe.providers.withings.values import Skips, device, instant, number
from ohe.resilience.errors import ValidationError
from ohe.samples import Component, Sample, Waveform

log = logging.getLogger(__name__)

PATH = "/v2/heart"
SIGNALS_PER_PAGE = 10
OVERLAP = 3600  # recordings can reach Withings a little after later ones
DATA_TYPES = frozenset({"ecg", "blood_pressure"})
SIGNAL_FIELDS = ("signal", "sampling_frequency", "heart_rate", "model", "wearposition")

#: ``afib`` → (rhythm classification key of the codes table, Withings' own label).
AFIB: dict[int, tuple[str, str]] = {
    0: ("sinusRhythm", "negative"),
    1: ("atrialFibrillation", "positive"),
    2: ("inconclusiveOther", "inconclusive"),
}


def plan(p: paging.Plan) -> FetchRequest:
    if p.cursor is not None:
        return FetchRequest(
            p.stream, start=max(p.cursor - OVERLAP, 0), end=p.end, cursor=str(p.cursor)
        )
    return FetchRequest(p.stream, start=p.start, end=p.end)


def _position(request: FetchRequest) -> tuple[int, int]:
    list_offset, _, index = (request.page or "0:0").partition(":")
    return paging.unix(list_offset), paging.unix(index or 0)


def fetch(call: paging.Call, request: FetchRequest) -> FetchResult:
    list_offset, index = _position(request)
    body = call(
        PATH,
        "list",
        {"startdate": request.start, "enddate": request.end, "offset": list_offset or None},
    )
    rows = [r for r in body.get("series") or [] if isinstance(r, dict)]
    chunk: list[dict[str, Any]] = []
    signals: dict[str, dict[str, Any]] = {}
    asked = 0
    while index < len(rows) and asked < SIGNALS_PER_PAGE:
        row = rows[index]
        index += 1
        chunk.append(row)
        signalid = (row.get("ecg") or {}).get("signalid")
        if signalid is None:
            continue  # a failed recording: listed, nothing to get
        asked += 1
        if (signal := _signal(call, signalid)) is not None:
            signals[str(signalid)] = signal
    if index < len(rows):
        following = dataclasses.replace(request, page=f"{list_offset}:{index}")
    else:
        after = paging.next_offset_page(dataclasses.replace(request, page=str(list_offset)), body)
        following = dataclasses.replace(after, page=f"{after.page}:0") if after else None
    return FetchResult(
        payload={"series": chunk, "signals": signals},
        records=len(chunk),
        next_request=following,
        next_cursor=paging.next_cursor(request, paging.latest([r.get("timestamp") for r in rows])),
    )


def _signal(call: paging.Call, signalid: Any) -> dict[str, Any] | None:
    """One recording's signal; None when Withings no longer has it (deleted since ``list``)."""
    try:
        body = call(PATH, "get", {"signalid": signalid})
    except ValidationError:
        log.warning(
            "ECG signal listed but not retrievable; skipped",
            extra={"operation": "fetch", "provider": "withings", "stream": "ecg"},
        )
        return None
    return {field: body.get(field) for field in SIGNAL_FIELDS}


def parse(request: FetchRequest, payload: dict[str, Any]) -> list[Sample]:
    skips = Skips(request.stream)
    signals = payload.get("signals") or {}
    samples = skips.guarded(payload.get("series") or [], lambda r: _recording(r, signals, skips))
    skips.log()
    return samples


def _recording(row: dict[str, Any], signals: dict[str, Any], skips: Skips) -> list[Sample]:
    signalid = (row.get("ecg") or {}).get("signalid")
    if signalid is None:
        skips.add("failed_recording")  # no ECG, no heart rate: nothing was measured
        return []
    start = instant(row["timestamp"])
    dev = device(row.get("deviceid"), None, row.get("model"))
    samples = []
    signal = signals.get(str(signalid))
    if signal and signal.get("signal"):
        waveform = _waveform(row, signal)
        duration = Decimal(len(waveform.samples)) / waveform.sampling_hz
        samples.append(
            Sample(
                "ecg",
                "ecg",
                str(signalid),
                effective_start=start,
                effective_end=start + timedelta(seconds=float(duration)),
                waveform=waveform,
                device=dev,
            )
        )
    else:
        skips.add("signal_unavailable")
    pressure = row.get("bloodpressure") or {}
    if pressure.get("systole") is not None and pressure.get("diastole") is not None:
        panel = (
            Component("systolic", number(pressure["systole"])),
            Component("diastolic", number(pressure["diastole"])),
        )
        samples.append(  # the recording's record kind: getmeas does not return this reading
            Sample(
                "blood_pressure",
                "ecg",
                f"{signalid}:bp",
                effective_start=start,
                components=panel,
                device=dev,
            )
        )
    return samples


def _waveform(row: dict[str, Any], signal: dict[str, Any]) -> Waveform:
    afib = (row.get("ecg") or {}).get("afib")
    classification, label = AFIB.get(afib, (None, None))  # type: ignore[arg-type]
    heart_rate = row.get("heart_rate")
    if heart_rate is None:
        heart_rate = signal.get("heart_rate")
    rate = number(heart_rate) if heart_rate is not None else None
    return Waveform(
        samples=tuple(int(v) for v in signal["signal"]),
        sampling_hz=number(signal["sampling_frequency"]),
        classification=classification,
        classification_label=label,
        heart_rate=rate if rate is not None and rate > 0 else None,
    )
