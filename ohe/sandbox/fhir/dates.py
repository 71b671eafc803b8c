"""FHIR dates as half-open ranges of epoch microseconds, so precision decides what matches.

The spec defines date search on ranges, not points: ``2026-03-04`` is the whole day
``[00:00, next 00:00)``, ``2026-03-04T10:00:00Z`` is one second, a Period runs from its start to
the end of its (inclusive) end. Indexing and searching both go through :func:`parse_range`, so a
stored value and a search value of the same text always describe the same range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.utils import format_datetime

MIN_US = -(2**62)
MAX_US = 2**62
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DATE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class DateRange:
    """``[low, high)`` in microseconds since the epoch."""

    low: int
    high: int


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _plus_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


def _zone(tz: str | None) -> tzinfo:
    """Times without a zone are read as UTC: the spec leaves that choice to the server."""
    if tz is None or tz == "Z":
        return UTC
    sign = 1 if tz[0] == "+" else -1
    return timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))


def parse_range(text: str) -> DateRange:
    """The range a FHIR date, dateTime or instant covers; ValueError if it is not one."""
    match = _DATE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a FHIR date/dateTime")
    g = match.groupdict()
    start = datetime(
        int(g["year"]),
        int(g["month"] or 1),
        int(g["day"] or 1),
        int(g["hour"] or 0),
        int(g["minute"] or 0),
        int(g["second"] or 0),
        int((g["fraction"] or ".0")[1:7].ljust(6, "0")),
        tzinfo=_zone(g["tz"]),
    )
    if g["fraction"]:
        step: timedelta | None = timedelta(microseconds=10 ** max(0, 7 - len(g["fraction"])))
    elif g["second"]:
        step = timedelta(seconds=1)
    elif g["minute"]:
        step = timedelta(minutes=1)
    elif g["day"]:
        step = timedelta(days=1)
    else:
        step = None
    try:
        end = start + step if step else _plus_months(start, 1 if g["month"] else 12)
        high = to_us(end)
    except OverflowError:
        high = MAX_US
    return DateRange(to_us(start), high)


def period_range(start: str | None, end: str | None) -> DateRange:
    """A Period: open ends reach to the end of time; ``end`` is inclusive to its precision."""
    low = parse_range(start).low if start else MIN_US
    high = parse_range(end).high if end else MAX_US
    return DateRange(low, high)


@dataclass(frozen=True)
class Instant:
    """A server timestamp: FHIR ``instant`` text plus the same moment in microseconds."""

    text: str
    us: int

    @classmethod
    def of_us(cls, us: int) -> Instant:
        moment = EPOCH + timedelta(microseconds=us)
        return cls(moment.isoformat(timespec="microseconds"), us)

    def http_date(self) -> str:
        """The ``Last-Modified`` header form."""
        moment = EPOCH + timedelta(microseconds=self.us)
        return format_datetime(moment.replace(microsecond=0), usegmt=True)


def now_us() -> int:
    return to_us(datetime.now(UTC))
