"""Form-parameter parsing with Withings semantics: anything malformed is "Invalid Params" (503).

The contract sends every parameter in an ``application/x-www-form-urlencoded`` body, so only
the form is read (a parameter in the query string is ignored, as a strict server would).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from .status import invalid

if TYPE_CHECKING:
    from .context import Caller, Sandbox

T = TypeVar("T")


@dataclass(frozen=True)
class Params:
    form: Mapping[str, str]

    def has(self, name: str) -> bool:
        return self.form.get(name, "") != ""

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.form.get(name, "")
        if value == "":
            if required:
                raise invalid(f"missing {name}")
            return None
        return value

    def integer(
        self, name: str, *, required: bool = False, default: int | None = None
    ) -> int | None:
        value = self.text(name, required=required)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise invalid(f"{name} is not an integer: {value!r}") from None

    def integers(self, name: str) -> list[int] | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return [int(part) for part in value.split(",") if part.strip() != ""]
        except ValueError:
            raise invalid(f"{name} is not a comma list of integers: {value!r}") from None

    def ymd(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise invalid(f"{name} is not YYYY-MM-DD: {value!r}") from None

    def offset(self) -> int:
        value = self.integer("offset", default=0) or 0
        if value < 0:
            raise invalid("negative offset")
        return value

    def fields(self, known: Collection[str]) -> tuple[str, ...]:
        """``data_fields``: the requested subset of ``known`` (all when absent).

        Unknown names are ignored rather than rejected: the published field lists grow over
        time and a client asking for a newer field should still get the others.
        """
        value = self.text("data_fields")
        if value is None:
            return tuple(known)
        asked = {part.strip() for part in value.split(",")}
        return tuple(f for f in known if f in asked)

    def window_ymd_or_lastupdate(self) -> tuple[str | None, str | None, int | None]:
        """``startdateymd``/``enddateymd`` *or* ``lastupdate``, never both, one required."""
        start, end, lastupdate = self.ymd("startdateymd"), self.ymd("enddateymd"), None
        if self.has("lastupdate"):
            if start or end:
                raise invalid("lastupdate together with startdateymd/enddateymd")
            lastupdate = self.integer("lastupdate")
        elif start is None or end is None:
            raise invalid("startdateymd and enddateymd (or lastupdate) are required")
        elif end < start:
            raise invalid("enddateymd before startdateymd")
        return start, end, lastupdate


def paged(rows: list[T], size: int, offset: int) -> tuple[list[T], bool, int]:
    """Cut one page from ``size + 1`` fetched rows: (page, more, offset of the next page).

    ``offset`` is returned as 0 on the last page; clients only read it when ``more`` is set.
    """
    more = len(rows) > size
    page = rows[:size]
    return page, more, offset + len(page) if more else 0


def dated_page(
    sb: Sandbox, caller: Caller, p: Params, table: str, order_by: str
) -> tuple[list[Any], bool, int]:
    """One page of a date-keyed table (``activity``, ``sleep``): a ymd window or ``lastupdate``.

    ``table`` and ``order_by`` are literals of the calling handler, never request input.
    """
    start, end, lastupdate = p.window_ymd_or_lastupdate()
    offset = p.offset()
    if lastupdate is not None:
        where, args = "modified >= ?", [lastupdate]
    else:
        where, args = "date BETWEEN ? AND ?", [start, end]
    rows = sb.store.all(
        f"SELECT * FROM {table} WHERE userid = ? AND {where} "  # noqa: S608
        f"ORDER BY {order_by} LIMIT ? OFFSET ?",
        [caller.userid, *args, sb.config.page_size + 1, offset],
    )
    return paged(rows, sb.config.page_size, offset)
