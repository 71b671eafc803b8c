"""Sandbox users: creation with generated history, lookup and listing.

User ids start at 10 000 001 (8 digits, like real Withings ids); ``DEMO_USERID`` is the one user
the consent page offers with ``mode=demo``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from .config import DAY
from .context import Sandbox
from .generator import generate
from .measure import insert_groups
from .store import FIRST_GRPID, FIRST_SIGNALID, FIRST_SLEEPID
from .tables import DEVICE_MODELS, TIMEZONES

DEMO_USERID = 10_000_000
FIRST_USERID = 10_000_001


@dataclass(frozen=True)
class User:
    userid: int
    timezone: str
    created: int
    history_start: int
    history_days: int

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def get_user(sb: Sandbox, userid: int) -> User | None:
    row = sb.store.one("SELECT * FROM users WHERE userid = ?", (userid,))
    return User(**dict(row)) if row else None


def list_users(sb: Sandbox) -> list[User]:
    return [User(**dict(r)) for r in sb.store.all("SELECT * FROM users ORDER BY userid")]


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def create_user(
    sb: Sandbox, history_days: int, timezone: str | None = None, userid: int | None = None
) -> User:
    """A new user with ``history_days`` of generated data ending now, stored in one transaction."""
    now = sb.clock.now()
    with sb.store.tx() as conn:
        if userid is None:
            userid = sb.store.next_id("users", "userid", FIRST_USERID)
        timezone = timezone or TIMEZONES[userid % len(TIMEZONES)]
        user = User(userid, timezone, now, now - history_days * DAY, history_days)
        history = generate(userid, timezone, user.history_start, now)
        conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?)", (*asdict(user).values(),))
        conn.executemany(
            "INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    d.deviceid,
                    userid,
                    d.model_id,
                    d.battery,
                    d.first_session_date,
                    d.last_session_date,
                )
                for d in history.devices
            ],
        )
        groups = sorted(history.groups, key=lambda g: g.date)
        insert_groups(
            conn, sb.store.next_id("measure_groups", "grpid", FIRST_GRPID), userid, groups
        )
        conn.executemany(
            "INSERT INTO activity VALUES (?, ?, ?, ?, ?)",
            [
                (userid, a.date, a.deviceid, a.modified, orjson.dumps(a.data).decode())
                for a in history.activity
            ],
        )
        first_sleep = sb.store.next_id("sleep", "id", FIRST_SLEEPID)
        conn.executemany(
            "INSERT INTO sleep VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            [
                (
                    sid,
                    userid,
                    s.date,
                    s.startdate,
                    s.enddate,
                    s.created,
                    s.created,
                    s.deviceid,
                    orjson.dumps(s.data).decode(),
                )
                for sid, s in enumerate(history.sleep, first_sleep)
            ],
        )
        first_signal = sb.store.next_id("ecg", "signalid", FIRST_SIGNALID)
        conn.executemany(
            "INSERT INTO ecg VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    sid,
                    userid,
                    e.timestamp,
                    e.timestamp + 120,
                    e.deviceid,
                    e.afib,
                    e.heart_rate,
                    e.systole,
                    e.diastole,
                    e.wearposition,
                )
                for sid, e in enumerate(history.ecg, first_signal)
            ],
        )
    return user


def demo_user(sb: Sandbox) -> User:
    return get_user(sb, DEMO_USERID) or create_user(
        sb, sb.config.consent_history_days, "Europe/Paris", DEMO_USERID
    )


def user_devices(sb: Sandbox, userid: int) -> dict[str, str]:
    """Device kind → deviceid, to attribute new measurements to the right device."""
    rows = sb.store.all("SELECT deviceid, model_id FROM devices WHERE userid = ?", (userid,))
    return {DEVICE_MODELS[r["model_id"]].kind: r["deviceid"] for r in rows}
