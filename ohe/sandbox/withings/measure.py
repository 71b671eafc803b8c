"""``POST /measure action=getmeas`` and the measure-group writes behind the admin API.

Groups are stored once with their measures; ``getmeas`` filters by type, window and
``lastupdate`` in SQL and pages with an integer ``more`` (0/1), as the v1 endpoint does
(provider-apis.md §1.1, §1.5).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from .context import Caller, Sandbox
from .generator import Group
from .params import Params, paged
from .status import invalid
from .store import FIRST_GRPID
from .tables import DEVICE_MODELS, MEASTYPES

CATEGORY_REAL, CATEGORY_GOALS = 1, 2


def encode(value: float | str | Decimal, exponent: int) -> tuple[int, int]:
    """Real value → (``value``, ``unit``) with ``value * 10^unit`` = real value.

    Trailing zeros are dropped (72.50 kg → 725, -1) as Withings does, so the unit varies between
    groups and a client that assumes a fixed unit per type fails here rather than in production.
    """
    scaled = int(Decimal(str(value)).scaleb(-exponent).quantize(Decimal(1), ROUND_HALF_EVEN))
    unit = exponent
    while scaled and scaled % 10 == 0 and unit < 0:
        scaled, unit = scaled // 10, unit + 1
    return scaled, unit


@dataclass(frozen=True)
class Change:
    """What a write touched, for notifications: the meastypes and the dates (old and new)."""

    userid: int
    grpid: int
    types: frozenset[int]
    dates: tuple[int, ...]


def insert_groups(
    conn: sqlite3.Connection, first_grpid: int, userid: int, groups: Iterable[Group]
) -> list[int]:
    grpids, group_rows, measure_rows = [], [], []
    for grpid, group in enumerate(groups, start=first_grpid):
        grpids.append(grpid)
        group_rows.append(
            (
                grpid,
                userid,
                group.attrib,
                group.date,
                group.created,
                group.created,
                CATEGORY_REAL,
                group.deviceid,
            )
        )
        for mtype, value in group.measures:
            measure_rows.append((grpid, mtype, *encode(value, MEASTYPES[mtype].exponent)))
    conn.executemany("INSERT INTO measure_groups VALUES (?, ?, ?, ?, ?, ?, ?, ?)", group_rows)
    conn.executemany("INSERT INTO measures VALUES (?, ?, ?, ?)", measure_rows)
    return grpids


def add_group(sb: Sandbox, userid: int, group: Group) -> Change:
    with sb.store.tx() as conn:
        first = sb.store.next_id("measure_groups", "grpid", FIRST_GRPID)
        (grpid,) = insert_groups(conn, first, userid, [group])
    types = frozenset(t for t, _ in group.measures)
    return Change(userid, grpid, types, (group.date,))


def edit_group(
    sb: Sandbox,
    userid: int,
    grpid: int,
    *,
    measures: Sequence[tuple[int, float]],
    date: int | None,
    attrib: int | None,
) -> Change:
    """Edit in place: the group keeps its ``grpid`` and gets a new ``modified``."""
    with sb.store.tx() as conn:
        row = _owned(sb, userid, grpid)
        conn.execute(
            "UPDATE measure_groups SET date = ?, attrib = ?, modified = ? WHERE grpid = ?",
            (
                date or row["date"],
                row["attrib"] if attrib is None else attrib,
                sb.clock.now(),
                grpid,
            ),
        )
        for mtype, value in measures:
            conn.execute(
                "INSERT OR REPLACE INTO measures VALUES (?, ?, ?, ?)",
                (grpid, mtype, *encode(value, MEASTYPES[mtype].exponent)),
            )
        types = {
            r["type"] for r in conn.execute("SELECT type FROM measures WHERE grpid = ?", (grpid,))
        }
    return Change(userid, grpid, frozenset(types), tuple({row["date"], date or row["date"]}))


def delete_group(sb: Sandbox, userid: int, grpid: int) -> Change:
    with sb.store.tx() as conn:
        row = _owned(sb, userid, grpid)
        types = {
            r["type"] for r in conn.execute("SELECT type FROM measures WHERE grpid = ?", (grpid,))
        }
        conn.execute("DELETE FROM measures WHERE grpid = ?", (grpid,))
        conn.execute("DELETE FROM measure_groups WHERE grpid = ?", (grpid,))
    return Change(userid, grpid, frozenset(types), (row["date"],))


class NotFound(LookupError):
    pass


def _owned(sb: Sandbox, userid: int, grpid: int) -> sqlite3.Row:
    row = sb.store.one(
        "SELECT * FROM measure_groups WHERE grpid = ? AND userid = ?", (grpid, userid)
    )
    if row is None:
        raise NotFound(f"user {userid} has no measure group {grpid}")
    return row


def getmeas(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    types = p.integers("meastypes") or ([t] if (t := p.integer("meastype")) is not None else None)
    category = p.integer("category", default=CATEGORY_REAL)
    if category not in (CATEGORY_REAL, CATEGORY_GOALS):
        raise invalid(f"category {category}")
    offset = p.offset()
    where, args = ["g.userid = ?", "g.category = ?"], [caller.userid, category]
    for name, clause in (
        ("startdate", "g.date >= ?"),
        ("enddate", "g.date <= ?"),
        ("lastupdate", "g.modified >= ?"),  # modified >= created: covers "created OR modified"
    ):
        if (value := p.integer(name)) is not None:
            where.append(clause)
            args.append(value)
    if types:
        marks = ",".join("?" * len(types))
        where.append(
            f"EXISTS (SELECT 1 FROM measures m WHERE m.grpid = g.grpid AND m.type IN ({marks}))"  # noqa: S608
        )
        args.extend(types)
    size = sb.config.page_size
    rows = sb.store.all(
        f"SELECT g.* FROM measure_groups g WHERE {' AND '.join(where)} "  # noqa: S608
        "ORDER BY g.date DESC, g.grpid DESC LIMIT ? OFFSET ?",
        [*args, size + 1, offset],
    )
    rows, more, next_offset = paged(rows, size, offset)
    return {
        # The OpenAPI transcription types updatetime as a string; provider-apis.md (followed)
        # describes it as the server time to reuse as the next ``lastupdate``: an integer.
        "updatetime": sb.clock.now(),
        "timezone": caller.timezone,
        "measuregrps": _groups_json(sb, rows, set(types) if types else None),
        "more": int(more),  # v1 endpoint: 0/1, unlike the booleans of the v2 endpoints
        "offset": next_offset,
    }


def _groups_json(sb: Sandbox, rows: list[sqlite3.Row], types: set[int] | None) -> list[dict]:
    if not rows:
        return []
    ids = [r["grpid"] for r in rows]
    marks = ",".join("?" * len(ids))
    measures: dict[int, list[dict[str, int]]] = {i: [] for i in ids}
    for m in sb.store.all(
        f"SELECT * FROM measures WHERE grpid IN ({marks}) ORDER BY grpid, type",  # noqa: S608
        ids,
    ):
        if types is None or m["type"] in types:
            measures[m["grpid"]].append({"value": m["value"], "type": m["type"], "unit": m["unit"]})
    devices = {
        d["deviceid"]: d["model_id"]
        for d in sb.store.all(
            "SELECT deviceid, model_id FROM devices WHERE userid = ?", (rows[0]["userid"],)
        )
    }
    out = []
    for r in rows:
        group: dict[str, Any] = {
            "grpid": r["grpid"],
            "attrib": r["attrib"],
            "date": r["date"],
            "created": r["created"],
            "modified": r["modified"],
            "category": r["category"],
            "model": None,
            "model_id": None,
            "comment": None,  # deprecated, always empty
            "measures": measures[r["grpid"]],
        }
        if r["deviceid"]:  # manual entries have no device: the keys are absent
            model_id = devices.get(r["deviceid"])
            group["deviceid"] = group["hash_deviceid"] = r["deviceid"]
            group["model_id"] = model_id
            group["model"] = DEVICE_MODELS[model_id].name if model_id in DEVICE_MODELS else None
        out.append(group)
    return out
