"""Minute-level series and ECG signals, computed on request instead of stored.

A year of per-minute data is half a million rows per user; deriving it from a seeded RNG keyed
by (user, day) — or by the stored sleep night / ECG record — gives the same answer on every
call at no storage cost, and keeps it consistent with the stored daily rows (the intraday steps
of a day add up to that day's ``getactivity`` steps).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

WAKING = (7 * 60, 22 * 60)  # minutes of the local day when walking bouts happen


@dataclass(frozen=True)
class DayTotals:
    """The stored daily row an intraday day is scaled to."""

    userid: int
    date: str
    midnight: int
    steps: int
    resting_hr: float


def split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` split into ``parts`` random non-negative integers that add up exactly."""
    if parts <= 0:
        return []
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    scale = total / sum(weights)
    shares = [int(w * scale) for w in weights]
    shares[-1] += total - sum(shares)
    return shares


def intraday_day(day: DayTotals) -> dict[int, dict[str, int | float]]:
    """Samples of one local day keyed by unix time: steps per active minute, HR every 10 min."""
    rng = random.Random(f"intraday:{day.userid}:{day.date}")
    active: dict[int, float] = {}
    for _ in range(rng.randint(8, 20)):
        start = rng.randint(*WAKING)
        pace = rng.uniform(0.3, 1.0)
        for minute in range(start, min(start + rng.randint(3, 40), 24 * 60)):
            active[minute] = active.get(minute, 0.0) + pace
    minutes = sorted(active)
    steps: list[int] = []
    if minutes:  # steps proportional to pace, the remainder on the last minute: exact total
        scale = day.steps / sum(active[m] for m in minutes)
        steps = [int(active[m] * scale) for m in minutes]
        steps[-1] += day.steps - sum(steps)
    samples: dict[int, dict[str, int | float]] = {}
    for minute, count in zip(minutes, steps, strict=True):
        if count <= 0:
            continue
        samples[day.midnight + minute * 60] = {
            "steps": count,
            "elevation": 1 if rng.random() < 0.03 else 0,
            "calories": round(count * 0.045, 2),
            "distance": round(count * 0.72, 2),
            "duration": 60,
        }
    for minute in range(0, 24 * 60, 10):
        asleep = minute < 6 * 60 or minute >= 23 * 60
        boost = 0 if asleep else 8 + 35 * active.get(minute, 0.0)
        hr = round(day.resting_hr - (6 if asleep else 0) + boost + rng.gauss(0, 3))
        samples.setdefault(day.midnight + minute * 60, {})["heart_rate"] = hr
    return samples


@dataclass(frozen=True)
class Night:
    """The stored sleep summary a hypnogram is derived from."""

    id: int
    startdate: int
    data: dict


def hypnogram(night: Night) -> list[tuple[int, int, int]]:
    """(start, end, state) segments whose per-state durations match the summary exactly.

    States: 0 awake, 1 light, 2 deep, 3 REM. Sleep is laid out in ``nb_rem_episodes`` cycles of
    light → deep → light → REM, with the night's wake-ups (``waso``) between cycles.
    """
    d = night.data
    rng = random.Random(f"sleep:{night.id}")
    cycles = max(1, int(d.get("nb_rem_episodes") or 4))
    light = split(int(d["lightsleepduration"]), 2 * cycles, rng)
    deep = split(int(d["deepsleepduration"]), cycles, rng)
    rem = split(int(d["remsleepduration"]), cycles, rng)
    wakes = split(int(d["waso"]), int(d["wakeupcount"]), rng)
    wake_after = (
        set(rng.sample(range(cycles - 1), min(len(wakes), cycles - 1))) if cycles > 1 else set()
    )
    plan: list[tuple[int, int]] = [(0, int(d["sleep_latency"]))]
    for c in range(cycles):
        plan += [(1, light[2 * c]), (2, deep[c]), (1, light[2 * c + 1]), (3, rem[c])]
        if c in wake_after and wakes:
            plan.append((0, wakes.pop()))
    plan += [(0, w) for w in wakes]  # wake-ups that found no slot between cycles
    plan.append((0, int(d["wakeup_latency"])))
    segments: list[tuple[int, int, int]] = []
    t = night.startdate
    for state, length in plan:
        if length <= 0:
            continue
        if segments and segments[-1][2] == state:
            start, _, _ = segments.pop()
            segments.append((start, t + length, state))
        else:
            segments.append((t, t + length, state))
        t += length
    return segments


SLEEP_SAMPLERS = {
    # field -> (value for a minute in a state, rng) ; hr/rr lower in deep sleep
    "hr": lambda state, base, rng: round(base["hr"] - (4 if state == 2 else 0) + rng.gauss(0, 2)),
    "rr": lambda state, base, rng: round(base["rr"] - (1 if state == 2 else 0) + rng.gauss(0, 1)),
    "snoring": lambda state, base, rng: rng.choice((0, 0, 0, 0, 20, 60)) if state in (1, 2) else 0,
    "sdnn_1": lambda state, base, rng: round(rng.uniform(25, 80), 1),
    "rmssd": lambda state, base, rng: round(rng.uniform(20, 70), 1),
    "hrv_quality": lambda state, base, rng: rng.choice((1, 2, 3, 4)),
}


def segment_series(night: Night, start: int, end: int, state: int, fields: tuple[str, ...]) -> dict:
    """Per-minute ``{"<unix>": value}`` maps of the requested fields for one segment."""
    rng = random.Random(f"sleep:{night.id}:{start}")
    base = {"hr": night.data.get("hr_average", 58), "rr": night.data.get("rr_average", 15)}
    minutes = range(start - start % 60 + 60 if start % 60 else start, end, 60)
    return {
        f: {str(ts): SLEEP_SAMPLERS[f](state, base, rng) for ts in minutes}
        for f in fields
        if f in SLEEP_SAMPLERS
    }


# (offset from the R peak in s, width in s, amplitude in µV) of the P, Q, R, S and T waves.
BEAT_WAVES = (
    (-0.2, 0.025, 120.0),
    (-0.03, 0.01, -140.0),
    (0.0, 0.011, 1100.0),
    (0.03, 0.012, -280.0),
    (0.28, 0.05, 310.0),
)


def ecg_signal(
    signalid: int, *, heart_rate: int, afib: int, hz: int, seconds: int, lead_gain: float
) -> list[int]:
    """A synthetic single-lead ECG in micro-volts: PQRST beats, wander and noise.

    With ``afib == 1`` the rhythm is irregularly irregular, P waves are absent and the baseline
    carries 5-7 Hz fibrillatory waves, so a viewer (or a classifier) sees something AF-shaped.
    """
    rng = random.Random(f"ecg:{signalid}")
    n = hz * seconds
    signal = [0.0] * n
    mean_rr = 60.0 / max(30, heart_rate)
    t = rng.uniform(0.1, mean_rr)
    while t < seconds + 0.5:
        for offset, width, amplitude in BEAT_WAVES:
            if afib == 1 and offset < -0.1:
                continue  # no P wave in atrial fibrillation
            centre = (t + offset) * hz
            lo, hi = max(0, int(centre - 4 * width * hz)), min(n, int(centre + 4 * width * hz) + 1)
            spread = 2 * (width * hz) ** 2
            peak = amplitude * lead_gain
            for i in range(lo, hi):
                signal[i] += peak * math.exp(-((i - centre) ** 2) / spread)
        jitter = rng.uniform(0.55, 1.45) if afib == 1 else rng.gauss(1.0, 0.03)
        t += mean_rr * jitter
    wander_hz, wander_phase = rng.uniform(0.15, 0.4), rng.uniform(0, 2 * math.pi)
    fib_hz = rng.uniform(5, 7)
    for i in range(n):
        x = i / hz
        signal[i] += 40 * math.sin(2 * math.pi * wander_hz * x + wander_phase) + rng.gauss(0, 9)
        if afib == 1:
            signal[i] += 35 * math.sin(2 * math.pi * fib_hz * x)
    return [round(v) for v in signal]
