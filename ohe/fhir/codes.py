"""The one codes table: every data type's LOINC/SNOMED/MDC codes, UCUM unit, category and shape.

Adding a data type is one row here plus its tests; builders read nothing else. Codes marked
"(verify)" in fhir-mapping.md are kept here so one edit fixes them everywhere. Codes without a
confirmed LOINC use the deployment's own code system (``LOCAL``, resolved per deployment to
``<identifier base>/CodeSystem/ohe-observation``), never a made-up LOINC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
MDC = "urn:oid:2.16.840.1.113883.6.24"
UCUM = "http://unitsofmeasure.org"
LOCAL = "local"  # placeholder, replaced by the deployment's code system URL at build time
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ECG_CLASSIFICATION_SYSTEM = "http://hl7.org/fhir/uv/phr/CodeSystem/ecg-classification-codes"

CATEGORY_DISPLAY = MappingProxyType(
    {
        "vital-signs": "Vital Signs",
        "activity": "Activity",
        "exam": "Exam",
        "procedure": "Procedure",
        "laboratory": "Laboratory",
    }
)


class Shape(enum.StrEnum):
    QUANTITY = "quantity"  # valueQuantity
    PANEL = "panel"  # components, no value (blood pressure)
    SUMMARY = "summary"  # valueQuantity plus components (a night of sleep)
    SAMPLED = "sampled"  # valueSampledData (intraday series grouped per hour)
    ECG = "ecg"  # waveform component + impression + heart rate, interpretation
    COMPONENT = "component"  # only ever a component of another row


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str


@dataclass(frozen=True)
class CodeRow:
    data_type: str
    codes: tuple[Code, ...]
    text: str
    unit: str  # UCUM code
    unit_display: str
    category: str
    shape: Shape


def _row(data_type, shape, category, unit, unit_display, text, *codes):  # noqa: PLR0917
    return CodeRow(
        data_type, tuple(Code(*c) for c in codes), text, unit, unit_display, category, shape
    )


Q, P, S, D, E, C = (
    Shape.QUANTITY,
    Shape.PANEL,
    Shape.SUMMARY,
    Shape.SAMPLED,
    Shape.ECG,
    Shape.COMPONENT,
)
HR = (LOINC, "8867-4", "Heart rate")
SPO2 = ((LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
        (LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"))  # fmt: skip

_ROWS: tuple[CodeRow, ...] = (
    # vital signs
    _row("heart_rate", Q, "vital-signs", "/min", "beats/minute", "Heart rate",
         HR, (SNOMED, "364075005", "Heart rate")),
    _row("heart_rate_intraday", D, "vital-signs", "/min", "beats/minute", "Heart rate", HR),
    _row("resting_heart_rate", Q, "vital-signs", "/min", "beats/minute", "Resting heart rate",
         (LOINC, "40443-4", "Heart rate --resting"), (SNOMED, "444981005", "Resting heart rate")),
    _row("hrv_sdnn", Q, "vital-signs", "ms", "ms", "Heart rate variability (SDNN)",
         (LOINC, "80404-7", "R-R interval.standard deviation (Heart rate variability)")),
    _row("hrv_rmssd", Q, "vital-signs", "ms", "ms", "Heart rate variability (RMSSD)",
         (LOCAL, "hrv-rmssd", "Heart rate variability, RMSSD")),
    _row("rr_intervals", D, "vital-signs", "ms", "ms", "R-R intervals",
         (LOINC, "8637-1", "R-R interval")),
    _row("blood_pressure", P, "vital-signs", "mm[Hg]", "mmHg", "Blood pressure",
         (LOINC, "85354-9", "Blood pressure panel with all children optional")),
    _row("systolic", C, "vital-signs", "mm[Hg]", "mmHg", "Systolic blood pressure",
         (LOINC, "8480-6", "Systolic blood pressure")),
    _row("diastolic", C, "vital-signs", "mm[Hg]", "mmHg", "Diastolic blood pressure",
         (LOINC, "8462-4", "Diastolic blood pressure")),
    _row("spo2", Q, "vital-signs", "%", "%", "Oxygen saturation (SpO2)", *SPO2),
    _row("spo2_intraday", D, "vital-signs", "%", "%", "Oxygen saturation (SpO2)", *SPO2),
    _row("body_temperature", Q, "vital-signs", "Cel", "°C", "Body temperature",
         (LOINC, "8310-5", "Body temperature")),
    _row("respiratory_rate", Q, "vital-signs", "/min", "breaths/minute", "Respiratory rate",
         (LOINC, "9279-1", "Respiratory rate")),
    _row("respiratory_rate_intraday", D, "vital-signs", "/min", "breaths/minute",
         "Respiratory rate", (LOINC, "9279-1", "Respiratory rate")),
    _row("weight", Q, "vital-signs", "kg", "kg", "Body weight", (LOINC, "29463-7", "Body weight")),
    _row("height", Q, "vital-signs", "cm", "cm", "Body height", (LOINC, "8302-2", "Body height")),
    _row("bmi", Q, "vital-signs", "kg/m2", "kg/m2", "Body mass index",
         (LOINC, "39156-5", "Body mass index (BMI) [Ratio]")),
    # body composition, cardio-fitness, glucose
    _row("fat_mass", Q, "exam", "kg", "kg", "Body fat mass",
         (LOINC, "73708-0", "Body fat [Mass] Calculated")),
    _row("fat_ratio", Q, "exam", "%", "%", "Body fat percentage",
         (LOINC, "41982-0", "Percentage of body fat Measured")),
    _row("fat_free_mass", Q, "exam", "kg", "kg", "Fat-free mass",
         (LOINC, "91557-9", "Lean body weight")),
    _row("muscle_mass", Q, "exam", "kg", "kg", "Muscle mass",
         (LOINC, "73964-9", "Body muscle mass Calculated")),
    _row("bone_mass", Q, "exam", "kg", "kg", "Bone mass", (LOCAL, "bone-mass", "Bone mass")),
    _row("hydration", Q, "exam", "kg", "kg", "Body water mass",
         (LOINC, "101683-1", "Body water mass")),
    _row("pulse_wave_velocity", Q, "exam", "m/s", "m/s", "Pulse wave velocity",
         (LOINC, "77196-4", "Pulse wave velocity")),
    _row("skin_temperature", Q, "exam", "Cel", "°C", "Skin temperature",
         (LOINC, "61008-9", "Body surface temperature")),
    _row("vo2_max", Q, "activity", "mL/min/kg", "mL/min/kg", "VO2 max",
         (LOCAL, "vo2-max", "Maximal oxygen uptake (VO2 max)")),
    _row("glucose", Q, "laboratory", "mg/dL", "mg/dL", "Blood glucose",
         (LOINC, "41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer")),
    # activity
    _row("steps_daily", Q, "activity", "/d", "steps/day", "Steps per day",
         (LOINC, "41950-7", "Number of steps in 24 hour Measured")),
    _row("steps_interval", D, "activity", "{steps}", "steps", "Steps",
         (LOINC, "55423-8", "Number of steps in unspecified time Pedometer")),
    _row("distance_daily", Q, "activity", "m", "m", "Distance per day",
         (LOCAL, "distance", "Distance travelled")),
    _row("calories_active_daily", Q, "activity", "kcal", "kcal", "Active energy per day",
         (LOINC, "41981-2", "Calories burned")),
    _row("floors_daily", Q, "activity", "{#}", "floors", "Floors climbed per day",
         (LOINC, "100304-5", "Flights climbed [#] Reporting Period")),
    # sleep: the night's total asleep as the value, stages and context as components
    _row("sleep", S, "activity", "min", "min", "Sleep duration",
         (LOINC, "93832-4", "Sleep duration")),
    _row("sleep_deep", C, "activity", "min", "min", "Deep sleep duration",
         (LOINC, "93831-6", "Deep sleep duration")),
    _row("sleep_light", C, "activity", "min", "min", "Light sleep duration",
         (LOINC, "93830-8", "Light sleep duration")),
    _row("sleep_rem", C, "activity", "min", "min", "REM sleep duration",
         (LOINC, "93829-0", "REM sleep duration")),
    _row("sleep_awake", C, "activity", "min", "min", "Awake duration",
         (LOCAL, "sleep-awake-duration", "Time awake during the sleep period")),
    _row("sleep_time_in_bed", C, "activity", "min", "min", "Time in bed",
         (LOCAL, "sleep-time-in-bed", "Time in bed")),
    _row("sleep_efficiency", C, "activity", "%", "%", "Sleep efficiency",
         (LOCAL, "sleep-efficiency", "Sleep efficiency")),
    _row("sleep_heart_rate", C, "activity", "/min", "beats/minute", "Average heart rate", HR),
    _row("sleep_respiratory_rate", C, "activity", "/min", "breaths/minute",
         "Average respiratory rate", (LOINC, "9279-1", "Respiratory rate")),
    # ECG: component[0] is always the waveform (the reference's mobile app reads it there)
    _row("ecg", E, "procedure", "uV", "µV", "Single-lead ECG",
         (MDC, "131328", "MDC_ECG_ELEC_POTL")),
    _row("ecg_lead_i", C, "procedure", "uV", "µV", "ECG lead I",
         (MDC, "131329", "MDC_ECG_ELEC_POTL_I")),
    _row("ecg_impression", C, "procedure", "", "", "ECG rhythm classification",
         (LOINC, "8601-7", "EKG impression")),
    _row("ecg_heart_rate", C, "procedure", "/min", "beats/minute", "Average heart rate", HR),
)  # fmt: skip

CODES: MappingProxyType[str, CodeRow] = MappingProxyType({r.data_type: r for r in _ROWS})

#: Data types a sample may carry (everything that is not only a component).
SAMPLE_TYPES: frozenset[str] = frozenset(
    r.data_type for r in _ROWS if r.shape is not Shape.COMPONENT
)


@dataclass(frozen=True)
class Rhythm:
    code: str
    display: str
    interpretation: str  # v3 ObservationInterpretation: N, A, IND


#: ECG rhythm classification (PHR IG ecg-classification-codes) and its interpretation.
RHYTHMS: MappingProxyType[str, Rhythm] = MappingProxyType(
    {
        "sinusRhythm": Rhythm("sinusRhythm", "Sinus rhythm", "N"),
        "atrialFibrillation": Rhythm("atrialFibrillation", "Atrial fibrillation", "A"),
        "inconclusiveOther": Rhythm("inconclusiveOther", "Inconclusive", "IND"),
        "inconclusiveHighHeartRate": Rhythm(
            "inconclusiveHighHeartRate", "Inconclusive, high heart rate", "IND"
        ),
        "inconclusiveLowHeartRate": Rhythm(
            "inconclusiveLowHeartRate", "Inconclusive, low heart rate", "IND"
        ),
        "inconclusivePoorReading": Rhythm(
            "inconclusivePoorReading", "Inconclusive, poor reading", "IND"
        ),
    }
)

INTERPRETATION_DISPLAY = MappingProxyType({"N": "Normal", "A": "Abnormal", "IND": "Indeterminate"})
