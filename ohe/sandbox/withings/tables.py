"""The Withings vocabulary as data: measure types, device models, notification categories.

Sources: provider-apis.md §1.5 (meastype table), §1.9 (devices) and §1.10 (appli categories).
Behaviour elsewhere reads these tables instead of branching on numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = ("user.info", "user.metrics", "user.activity", "user.sleepevents")


@dataclass(frozen=True)
class MeasType:
    """One row of the meastype table; ``exponent`` is the finest power of ten devices report."""

    type: int
    name: str
    exponent: int
    applis: tuple[int, ...]
    alias: str  # the admin API field name, e.g. {"weight_kg": 72.5}


MEASTYPES: dict[int, MeasType] = {
    m.type: m
    for m in (
        MeasType(1, "weight", -3, (1,), "weight_kg"),
        MeasType(4, "height", -2, (), "height_m"),
        MeasType(5, "fat-free mass", -3, (1,), "fat_free_mass_kg"),
        MeasType(6, "fat ratio", -3, (1,), "fat_ratio"),
        MeasType(8, "fat mass", -3, (1,), "fat_mass_kg"),
        MeasType(9, "diastolic BP", 0, (4,), "diastolic"),
        MeasType(10, "systolic BP", 0, (4,), "systolic"),
        MeasType(11, "heart pulse", 0, (4,), "pulse"),
        MeasType(12, "temperature", -2, (2,), "temperature"),
        MeasType(54, "SpO2", 0, (4,), "spo2"),
        MeasType(71, "body temperature", -2, (1, 2), "body_temperature"),
        MeasType(73, "skin temperature", -2, (1, 2), "skin_temperature"),
        MeasType(76, "muscle mass", -2, (1,), "muscle_mass_kg"),
        MeasType(77, "hydration", -2, (1,), "hydration_kg"),
        MeasType(88, "bone mass", -2, (1,), "bone_mass_kg"),
        MeasType(91, "pulse wave velocity", -3, (1,), "pulse_wave_velocity"),
    )
}
MEASTYPE_BY_ALIAS = {m.alias: m.type for m in MEASTYPES.values()}

# Heart pulse (11) is measured by BP monitors *and* cardio scales: it takes the category of the
# group it is in ("4 (1 on scales)") and only falls back to its own appli when alone.
FOLLOWS_GROUP = frozenset({11})


def applis_for_types(types: set[int]) -> set[int]:
    """Notification categories (§1.10) a change to a group with these meastypes triggers."""
    own = {a for t in types - FOLLOWS_GROUP for a in MEASTYPES[t].applis}
    return own or {a for t in types for a in MEASTYPES[t].applis}


# Notification categories: appli -> scope needed to subscribe (§1.10). 53 (signed, app-level)
# and 62 (unconfirmed) are deliberately absent: subscribing to them is "Invalid Params" here.
APPLI_SCOPES: dict[int, str] = {
    1: "user.metrics",
    2: "user.metrics",
    4: "user.metrics",
    16: "user.activity",
    44: "user.activity",
    46: "user.info",
    50: "user.sleepevents",
    51: "user.sleepevents",
    52: "user.metrics",
    54: "user.metrics",
    55: "user.metrics",
    58: "user.metrics",
}
APPLI_ACTIVITY = 16
APPLI_SLEEP = 44
APPLI_USER = 46
APPLI_ECG = 54


@dataclass(frozen=True)
class DeviceModel:
    model_id: int
    name: str
    type: str  # the getdevice ``type`` string
    kind: str  # what the generator uses it for: scale, bpm, watch, thermo
    ecg_hz: int = 0  # ECG sampling frequency (Hz), 0 = no ECG
    ecg_seconds: int = 0


DEVICE_MODELS: dict[int, DeviceModel] = {
    d.model_id: d
    for d in (
        DeviceModel(5, "Body+", "Scale", "scale"),
        DeviceModel(6, "Body Cardio", "Scale", "scale"),
        DeviceModel(44, "BPM Core", "Blood Pressure Monitor", "bpm", 500, 20),
        DeviceModel(45, "BPM Connect", "Blood Pressure Monitor", "bpm"),
        DeviceModel(91, "Move ECG", "Activity Tracker", "watch", 300, 30),
        DeviceModel(93, "ScanWatch", "Activity Tracker", "watch", 300, 30),
        DeviceModel(94, "ScanWatch 2", "Activity Tracker", "watch", 300, 30),
        DeviceModel(70, "Thermo", "Smart Connected Thermometer", "thermo"),
    )
}

# Which device records a group, by the kinds of meastypes in it (first match wins).
DEVICE_KIND_BY_TYPE: tuple[tuple[frozenset[int], str], ...] = (
    (frozenset({9, 10}), "bpm"),
    (frozenset({1, 5, 6, 8, 76, 77, 88, 91}), "scale"),
    (frozenset({54, 73}), "watch"),
    (frozenset({12, 71}), "thermo"),
    (frozenset({11}), "bpm"),
)


def device_kind_for(types: set[int]) -> str | None:
    return next((kind for members, kind in DEVICE_KIND_BY_TYPE if types & members), None)


# Sleep summary ``model`` (16 tracker, 32 sleep monitor) by device kind.
SLEEP_MODEL_BY_KIND = {"watch": 16, "sleep": 32}

ACTIVITY_FIELDS = (
    "steps",
    "distance",
    "elevation",
    "soft",
    "moderate",
    "intense",
    "active",
    "calories",
    "totalcalories",
    "hr_average",
    "hr_min",
    "hr_max",
    "hr_zone_0",
    "hr_zone_1",
    "hr_zone_2",
    "hr_zone_3",
)
INTRADAY_FIELDS = ("steps", "elevation", "calories", "distance", "duration", "heart_rate")
SLEEP_SERIES_FIELDS = ("hr", "rr", "snoring", "sdnn_1", "rmssd", "hrv_quality")
SLEEP_SUMMARY_FIELDS = (
    "total_timeinbed",
    "total_sleep_time",
    "lightsleepduration",
    "deepsleepduration",
    "remsleepduration",
    "sleep_efficiency",
    "sleep_latency",
    "wakeup_latency",
    "wakeupduration",
    "wakeupcount",
    "waso",
    "nb_rem_episodes",
    "out_of_bed_count",
    "hr_average",
    "hr_min",
    "hr_max",
    "rr_average",
    "rr_min",
    "rr_max",
    "breathing_disturbances_intensity",
    "snoring",
    "snoringepisodecount",
    "sleep_score",
    "night_events",
    "durationtosleep",
    "durationtowakeup",
)

TIMEZONES = (
    "Europe/Paris",
    "America/New_York",
    "Europe/London",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Europe/Berlin",
    "America/Sao_Paulo",
)
