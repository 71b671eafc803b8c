"""SQLite persistence: one file per sandbox, so users, tokens and subscriptions survive restarts.

One connection shared by the server threads behind a lock: a sandbox serves a handful of
clients, and serialising its writes removes every "database is locked" surprise. Data that is
cheap to recompute (intraday samples, sleep segments, ECG signals) is not stored at all.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    userid INTEGER PRIMARY KEY, timezone TEXT NOT NULL, created INTEGER NOT NULL,
    history_start INTEGER NOT NULL, history_days INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    deviceid TEXT PRIMARY KEY, userid INTEGER NOT NULL, model_id INTEGER NOT NULL,
    battery TEXT NOT NULL, first_session_date INTEGER NOT NULL,
    last_session_date INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS measure_groups (
    grpid INTEGER PRIMARY KEY, userid INTEGER NOT NULL, attrib INTEGER NOT NULL,
    date INTEGER NOT NULL, created INTEGER NOT NULL, modified INTEGER NOT NULL,
    category INTEGER NOT NULL, deviceid TEXT);
CREATE INDEX IF NOT EXISTS measure_groups_date ON measure_groups (userid, date);
CREATE INDEX IF NOT EXISTS measure_groups_modified ON measure_groups (userid, modified);
CREATE TABLE IF NOT EXISTS measures (
    grpid INTEGER NOT NULL, type INTEGER NOT NULL, value INTEGER NOT NULL,
    unit INTEGER NOT NULL, PRIMARY KEY (grpid, type)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity (
    userid INTEGER NOT NULL, date TEXT NOT NULL, deviceid TEXT, modified INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (userid, date));
CREATE INDEX IF NOT EXISTS activity_modified ON activity (userid, modified);
CREATE TABLE IF NOT EXISTS sleep (
    id INTEGER PRIMARY KEY, userid INTEGER NOT NULL, date TEXT NOT NULL,
    startdate INTEGER NOT NULL, enddate INTEGER NOT NULL, created INTEGER NOT NULL,
    modified INTEGER NOT NULL, completed INTEGER NOT NULL, deviceid TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sleep_date ON sleep (userid, date);
CREATE INDEX IF NOT EXISTS sleep_start ON sleep (userid, startdate);
CREATE TABLE IF NOT EXISTS ecg (
    signalid INTEGER PRIMARY KEY, userid INTEGER NOT NULL, timestamp INTEGER NOT NULL,
    modified INTEGER NOT NULL, deviceid TEXT NOT NULL, afib INTEGER, heart_rate INTEGER,
    systole INTEGER, diastole INTEGER, wearposition INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ecg_time ON ecg (userid, timestamp);
CREATE TABLE IF NOT EXISTS codes (
    code TEXT PRIMARY KEY, client_id TEXT NOT NULL, userid INTEGER NOT NULL,
    redirect_uri TEXT NOT NULL, scope TEXT NOT NULL, expires_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS access_tokens (
    token TEXT PRIMARY KEY, client_id TEXT NOT NULL, userid INTEGER NOT NULL,
    scope TEXT NOT NULL, expires_at REAL NOT NULL, first_used_at REAL,
    parent_refresh TEXT);
CREATE INDEX IF NOT EXISTS access_parent ON access_tokens (parent_refresh);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token TEXT PRIMARY KEY, client_id TEXT NOT NULL, userid INTEGER NOT NULL,
    scope TEXT NOT NULL, issued_at REAL NOT NULL, expires_at REAL NOT NULL,
    superseded_at REAL);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, userid INTEGER NOT NULL, appli INTEGER NOT NULL,
    callbackurl TEXT NOT NULL, comment TEXT NOT NULL, created INTEGER NOT NULL,
    expires INTEGER NOT NULL, PRIMARY KEY (client_id, userid, appli, callbackurl));
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, userid INTEGER NOT NULL, appli INTEGER NOT NULL,
    callbackurl TEXT NOT NULL, payload TEXT NOT NULL, created INTEGER NOT NULL,
    state TEXT NOT NULL, next_cycle INTEGER NOT NULL DEFAULT 0,
    attempts TEXT NOT NULL DEFAULT '[]');
"""

# Group ids start above 2**32 so a client storing them in 32-bit integers fails in the sandbox,
# not in production (grpid is int64 in the contract).
FIRST_GRPID = 5_000_000_001
FIRST_SIGNALID = 1_000_001
FIRST_SLEEPID = 2_000_001


class Store:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested use joins the outer one."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self.tx() as conn:
            return conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.tx() as conn:
            conn.executemany(sql, rows)

    def next_id(self, table: str, column: str, first: int) -> int:
        """Next id for tables whose ids must start high (see FIRST_GRPID)."""
        row = self.one(f"SELECT MAX({column}) AS m FROM {table}")  # noqa: S608 - fixed names
        return max(first, (row["m"] or 0) + 1)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
