"""The stream table (endpoint families with their own cursor) and the appli → streams table.

Everything stream-specific is reached through ``SPECS``: the provider and the session look a
stream up here instead of branching on its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ohe.providers.base import FetchRequest, FetchResult, Stream
from ohe.providers.withings import activity, ecg, intraday, measures, sleep
from ohe.providers.withings.paging import Call, Plan
from ohe.samples import Sample

METRICS, ACTIVITY = "user.metrics", "user.activity"


@dataclass(frozen=True)
class StreamSpec:
    stream: Stream
    plan: Callable[[Plan], FetchRequest]
    fetch: Callable[[Call, FetchRequest], FetchResult]
    parse: Callable[[FetchRequest, dict[str, Any]], list[Sample]]


def _spec(name: str, module: Any, scope: str, max_backfill_days: int | None = None) -> StreamSpec:
    stream = Stream(
        name,
        module.DATA_TYPES,
        scope,
        max_backfill_days,
        frozenset(getattr(module, "COMPLETE_KINDS", ())),
    )
    return StreamSpec(stream, module.plan, module.fetch, module.parse)


SPECS: Mapping[str, StreamSpec] = MappingProxyType(
    {
        spec.stream.name: spec
        for spec in (
            _spec("measures", measures, METRICS),  # getmeas, all meastypes in one call
            _spec("activity", activity, ACTIVITY),  # getactivity, daily totals
            _spec("intraday", intraday, ACTIVITY, intraday.MAX_BACKFILL_DAYS),
            _spec("sleep", sleep, ACTIVITY),  # sleep getsummary, one row per night
            _spec("ecg", ecg, METRICS),  # heart list + get
        )
    }
)
STREAMS: Mapping[str, Stream] = MappingProxyType({n: s.stream for n, s in SPECS.items()})

#: Notification category (appli) → streams to re-fetch (§1.10). Event-only categories map to
#: no stream: bed in/out (50/51), BPM inflation done (52), ECG failed (55); glucose (58) has
#: no sample type in OHE yet; 46 is a user action (``action`` = unlink / delete / update).
APPLI_STREAMS: Mapping[int, tuple[str, ...]] = MappingProxyType(
    {
        1: ("measures",),  # weight and body composition
        2: ("measures",),  # temperature
        4: ("measures",),  # blood pressure, heart pulse, SpO2
        16: ("activity", "intraday"),
        44: ("sleep",),
        54: ("ecg",),
        46: (),
        50: (),
        51: (),
        52: (),
        55: (),
        58: (),
    }
)
USER_ACTION_APPLI = 46
USER_ACTIONS = frozenset({"unlink", "delete", "update"})
