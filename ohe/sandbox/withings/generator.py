"""Deterministic, realistic history for a sandbox user.

Everything a user has is derived from the user id: a profile (body size, blood pressure, habits,
devices) from ``Random(userid)``, and each local day from ``Random("userid:date")``. A day's
data therefore does not depend on how much history was asked for, and two sandboxes given the
same user id agree. Values are produced in real units; ``measure.encode`` turns them into the
``value * 10^unit`` wire form when they are stored.

Only summary-level rows are generated here (a year for 20 users is ~100 000 rows, a second of
work); minute-level series and ECG signals are computed on request by ``signals``.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from .config import DAY, HOUR
from .tables import DEVICE_MODELS


@dataclass(frozen=True)
class Device:
    deviceid: str
    model_id: int
    battery: str
    first_session_date: int
    last_session_date: int

    @property
    def kind(self) -> str:
        return DEVICE_MODELS[self.model_id].kind


@dataclass(frozen=True)
class Group:
    attrib: int
    date: int
    created: int
    deviceid: str | None
    measures: tuple[tuple[int, float], ...]  # (meastype, real value)


@dataclass(frozen=True)
class ActivityDay:
    date: str
    deviceid: str
    modified: int
    data: dict[str, float | int]


@dataclass(frozen=True)
class SleepNight:
    date: str
    startdate: int
    enddate: int
    created: int
    deviceid: str
    data: dict[str, object]


@dataclass(frozen=True)
class EcgRecord:
    timestamp: int
    deviceid: str
    afib: int | None  # None: a failed recording (no signal, no heart rate)
    heart_rate: int | None
    systole: int | None
    diastole: int | None
    wearposition: int


@dataclass
class History:
    devices: list[Device] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    activity: list[ActivityDay] = field(default_factory=list)
    sleep: list[SleepNight] = field(default_factory=list)
    ecg: list[EcgRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """Stable traits of one simulated person."""

    height: float
    weight: float
    fat_ratio: float
    systolic: float
    diastolic: float
    resting_hr: float
    steps: float
    bedtime_hour: float
    afib_prone: bool
    models: tuple[int, ...]


def device_id(userid: int, model_id: int) -> str:
    return hashlib.sha1(f"withings-sandbox:{userid}:{model_id}".encode()).hexdigest()  # noqa: S324


def profile_for(userid: int) -> Profile:
    rng = random.Random(userid)
    height = rng.uniform(1.55, 1.95)
    scale = rng.choices((5, 6), weights=(7, 3))[0]
    bpm = rng.choices((44, 45, None), weights=(6, 2, 2))[0]
    watch = rng.choices((93, 94), weights=(7, 3))[0]
    models = tuple(m for m in (scale, bpm, watch) if m is not None)
    return Profile(
        height=round(height, 2),
        weight=rng.uniform(20, 31) * height * height,
        fat_ratio=rng.uniform(0.14, 0.36),
        systolic=rng.uniform(108, 148),
        diastolic=rng.uniform(68, 92),
        resting_hr=rng.uniform(54, 76),
        steps=rng.uniform(3500, 12000),
        bedtime_hour=rng.uniform(21.8, 24.6),
        afib_prone=rng.random() < 0.2,
        models=models,
    )


def local_days(tz: ZoneInfo, start: int, end: int) -> Iterator[tuple[date, int]]:
    """Each local date touching [start, end] with the unix time of its local midnight."""
    day = datetime.fromtimestamp(start, tz).date()
    last = datetime.fromtimestamp(end, tz).date()
    while day <= last:
        yield day, int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())
        day += timedelta(days=1)


def local_midnight(timezone: str, day: str) -> int:
    """Unix time of the start of local date ``day`` (YYYY-MM-DD) in ``timezone``."""
    d = date.fromisoformat(day)
    return int(datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(timezone)).timestamp())


def generate(userid: int, timezone: str, history_start: int, now: int) -> History:
    """All summary-level data of ``userid`` between ``history_start`` and ``now``."""
    tz = ZoneInfo(timezone)
    prof = profile_for(userid)
    rng = random.Random(userid)
    devices = {
        DEVICE_MODELS[m].kind: Device(
            device_id(userid, m),
            m,
            rng.choice(("high", "high", "medium", "low")),
            history_start - rng.randint(1, 90) * DAY,
            now - rng.randint(60, 6 * HOUR),
        )
        for m in prof.models
    }
    history = History(devices=list(devices.values()))
    history.groups.append(Group(4, history_start, history_start, None, ((4, prof.height),)))
    for day, midnight in local_days(tz, history_start, now):
        rng = random.Random(f"{userid}:{day.isoformat()}")
        _day(history, Day(rng, prof, devices, day, midnight, history_start, now))
    # An upload can lag its measurement by up to an hour; nothing is stored in the future.
    history.groups = [replace(g, created=min(g.created, now)) for g in history.groups]
    return history


@dataclass(frozen=True)
class Day:
    """One local day being generated: its RNG, the person, their devices and the time bounds."""

    rng: random.Random
    prof: Profile
    devices: dict[str, Device]
    day: date
    midnight: int
    start: int
    now: int

    def at(self, earliest: float, latest: float) -> int | None:
        """A random time between two local hours of this day, if it lies inside the history."""
        t = self.midnight + self.rng.randint(int(earliest * HOUR), int(latest * HOUR))
        return t if self.start <= t and t + 600 <= self.now else None


def _day(out: History, d: Day) -> None:
    rng, devices = d.rng, d.devices
    if rng.random() < 0.78 and (t := d.at(6.3, 9)):
        out.groups.append(_weigh_in(d, t))
    for hour in (7.5, 20.5):
        if rng.random() < 0.3 and (t := d.at(hour, hour + 1.5)):
            out.groups.append(_blood_pressure(d, devices.get("bpm"), t))
    if "watch" in devices and rng.random() < 0.15 and (t := d.at(0, 24)):
        spo2 = ((54, float(rng.choice((94, 95, 96, 97, 97, 98, 98, 99)))),)
        out.groups.append(Group(0, t, t + rng.randint(60, 900), devices["watch"].deviceid, spo2))
    if rng.random() < 0.05 and (t := d.at(8, 22)):
        out.groups.append(_temperature(rng, devices.get("watch"), t))
    if "watch" in devices:
        if (row := _activity(d, devices["watch"])) is not None:
            out.activity.append(row)
        night = _sleep(d, devices["watch"]) if rng.random() < 0.93 else None
        if night is not None and night.startdate >= d.start:
            out.sleep.append(night)
    if rng.random() < 0.25 and (t := d.at(9, 21)):
        recorder = next((x for x in devices.values() if DEVICE_MODELS[x.model_id].ecg_hz), None)
        if recorder is not None:
            out.ecg.append(_ecg(d, recorder, t))


def _weigh_in(d: Day, t: int) -> Group:
    rng, prof = d.rng, d.prof
    season = 1.2 * math.sin(2 * math.pi * d.day.toordinal() / 365.25)
    weight = prof.weight + season + rng.gauss(0, 0.35)
    lag = rng.randint(20, 600)
    roll = rng.random()
    if roll < 0.04:  # typed in the app: weight only, no device
        return Group(2, t, t + lag, None, ((1, round(weight, 1)),))
    attrib = 0
    if roll < 0.07:  # someone else stepped on the shared scale
        attrib, weight = 1, weight + rng.choice((-1, 1)) * rng.uniform(8, 25)
    scale = d.devices["scale"]
    fat_ratio = prof.fat_ratio + rng.gauss(0, 0.006)
    fat = weight * fat_ratio
    free = weight - fat
    measures = [
        (1, round(weight, 2)),
        (5, round(free, 2)),
        (6, round(fat_ratio * 100, 2)),
        (8, round(fat, 2)),
        (76, round(free * 0.93 - 2.9, 2)),
        (77, round(free * 0.72, 2)),
        (88, round(2.9 + free * 0.01, 2)),
    ]
    if scale.model_id == 6:  # Body Cardio: standing heart rate and pulse wave velocity
        measures.append((11, float(round(prof.resting_hr + rng.gauss(6, 4)))))
        measures.append((91, round(rng.uniform(5, 9), 3)))
    return Group(attrib, t, t + lag, scale.deviceid, tuple(measures))


def _blood_pressure(d: Day, bpm: Device | None, t: int) -> Group:
    rng, prof = d.rng, d.prof
    sys_ = round(prof.systolic + rng.gauss(0, 7))
    dia = round(min(prof.diastolic + rng.gauss(0, 5), sys_ - 25))
    pulse = round(prof.resting_hr + rng.gauss(4, 5))
    measures = ((9, float(dia)), (10, float(sys_)), (11, float(pulse)))
    if bpm is None or rng.random() < 0.03:
        return Group(2, t, t + rng.randint(30, 3600), None, measures)
    return Group(0, t, t + rng.randint(5, 300), bpm.deviceid, measures)


def _temperature(rng: random.Random, watch: Device | None, t: int) -> Group:
    if watch is not None and watch.model_id == 94:
        return Group(0, t, t + 300, watch.deviceid, ((73, round(rng.uniform(33.0, 35.6), 2)),))
    return Group(2, t, t + 120, None, ((71, round(rng.uniform(36.2, 37.6), 1)),))


def _activity(d: Day, watch: Device) -> ActivityDay | None:
    rng, prof, day, midnight, now = d.rng, d.prof, d.day, d.midnight, d.now
    if midnight + 7 * HOUR > now:
        return None
    done = min(1.0, (now - midnight) / DAY)
    weekend = day.weekday() >= 5
    steps = round(max(300.0, rng.gauss(prof.steps * (0.8 if weekend else 1.0), 1800)) * done)
    moderate = round(steps / 100 * rng.uniform(3, 7))
    intense = round(steps / 100 * rng.uniform(0, 2.5))
    soft = round(steps / 100 * rng.uniform(10, 20))
    calories = round(steps * 0.045 + intense * 0.12, 2)
    hr_min = round(prof.resting_hr - rng.uniform(2, 8))
    hr_max = round(prof.resting_hr + 50 + intense / 60 * 1.5)
    modified = min(now - rng.randint(1, 600), midnight + DAY + rng.randint(600, 5 * HOUR))
    data: dict[str, float | int] = {
        "steps": steps,
        "distance": round(steps * rng.uniform(0.66, 0.8), 2),
        "elevation": round(steps / 1000 * rng.uniform(0.5, 2.5), 2),
        "soft": soft,
        "moderate": moderate,
        "intense": intense,
        "active": moderate + intense,
        "calories": calories,
        "totalcalories": round(calories + prof.weight * 22 * done, 2),
        "hr_average": round(prof.resting_hr + rng.uniform(8, 16)),
        "hr_min": hr_min,
        "hr_max": hr_max,
        "hr_zone_0": round(done * rng.uniform(30000, 45000)),
        "hr_zone_1": moderate,
        "hr_zone_2": round(intense * 0.7),
        "hr_zone_3": round(intense * 0.3),
    }
    return ActivityDay(day.isoformat(), watch.deviceid, modified, data)


def _sleep(d: Day, watch: Device) -> SleepNight | None:
    """The night that ends on the morning of ``d.day`` (its ``date``)."""
    rng, prof, midnight = d.rng, d.prof, d.midnight
    start = midnight - DAY + int((prof.bedtime_hour + rng.gauss(0, 0.5)) * HOUR)
    in_bed = int(rng.uniform(6.2, 9.2) * HOUR)
    end = start + in_bed
    created = end + rng.randint(300, 3 * HOUR)
    if created > d.now:
        return None
    data = night_data(rng, prof, in_bed)
    return SleepNight(d.day.isoformat(), start, end, created, watch.deviceid, data)


def night_data(rng: random.Random, prof: Profile, in_bed: int) -> dict[str, object]:
    """A sleep summary's ``data`` for ``in_bed`` seconds in bed, internally consistent."""
    latency = rng.randint(4, 35) * 60
    wakeup_latency = rng.randint(2, 20) * 60
    wakeups = rng.randint(0, 4)
    waso = wakeups * rng.randint(3, 12) * 60
    asleep = in_bed - latency - wakeup_latency - waso
    deep = round(asleep * rng.uniform(0.13, 0.24) / 60) * 60
    rem = round(asleep * rng.uniform(0.17, 0.26) / 60) * 60
    light = asleep - deep - rem
    hr_avg = round(prof.resting_hr - rng.uniform(3, 9))
    rr_avg = rng.randint(13, 17)
    snoring = rng.randint(0, 40) * 60
    return {
        "total_timeinbed": in_bed,
        "total_sleep_time": asleep,
        "lightsleepduration": light,
        "deepsleepduration": deep,
        "remsleepduration": rem,
        "sleep_efficiency": round(asleep / in_bed, 2),
        "sleep_latency": latency,
        "wakeup_latency": wakeup_latency,
        "wakeupduration": latency + waso + wakeup_latency,
        "wakeupcount": wakeups,
        "waso": waso,
        "nb_rem_episodes": rng.randint(3, 6),
        "out_of_bed_count": rng.choice((0, 0, 0, 1, 2)),
        "hr_average": hr_avg,
        "hr_min": hr_avg - rng.randint(4, 10),
        "hr_max": hr_avg + rng.randint(10, 30),
        "rr_average": rr_avg,
        "rr_min": rr_avg - rng.randint(2, 4),
        "rr_max": rr_avg + rng.randint(2, 6),
        "breathing_disturbances_intensity": rng.randint(0, 35),
        "snoring": snoring,
        "snoringepisodecount": snoring // 600,
        "sleep_score": round(min(98, max(35, 40 + asleep / HOUR * 7 - wakeups * 3))),
        "night_events": {
            "1": [0],
            "2": [latency],
            "3": [in_bed - wakeup_latency],
            "4": [in_bed],
        },
        "durationtosleep": latency,
        "durationtowakeup": wakeup_latency,
    }


def _ecg(d: Day, device: Device, t: int) -> EcgRecord:
    rng, prof = d.rng, d.prof
    bpm_core = device.model_id == 44
    if rng.random() < 0.04:  # a failed recording: listed, but without ECG or heart rate
        return EcgRecord(t, device.deviceid, None, None, None, None, 1)
    weights = (6, 3, 1) if prof.afib_prone else (92, 2, 6)
    afib = rng.choices((0, 1, 2), weights=weights)[0]
    heart_rate = round(prof.resting_hr + rng.gauss(6, 6) + (25 if afib == 1 else 0))
    systole = round(prof.systolic + rng.gauss(0, 7)) if bpm_core else None
    diastole = round(prof.diastolic + rng.gauss(0, 5)) if bpm_core else None
    wear = 3 if bpm_core else rng.choice((1, 1, 1, 0))
    return EcgRecord(t, device.deviceid, afib, heart_rate, systole, diastole, wear)
