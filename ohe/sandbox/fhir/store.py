"""SQLite storage: current resources, every version, and the search indexes.

Why SQLite: the sandbox must survive a restart (tests stop it and start it again on the same
file), run with nothing installed, and make conditional operations safe. Safety comes from
serializing every write: one process-wide lock plus ``BEGIN IMMEDIATE`` (which also serializes
separate processes sharing the file), with conditional searches running *inside* that write
transaction, so two clients racing on one identifier can never both see "0 matches". WAL mode
lets reads run while a write is in progress.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import orjson

from ohe.sandbox.fhir.dates import Instant, now_us
from ohe.sandbox.fhir.indexing import IndexRows

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS server_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS resource (
        type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        updated_us INTEGER NOT NULL, deleted INTEGER NOT NULL, seq INTEGER NOT NULL, body BLOB,
        PRIMARY KEY (type, id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS resource_by_seq ON resource (type, seq)",
    "CREATE INDEX IF NOT EXISTS resource_by_updated ON resource (type, updated_us)",
    """CREATE TABLE IF NOT EXISTS history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, id TEXT NOT NULL,
        version INTEGER NOT NULL, updated_us INTEGER NOT NULL, method TEXT NOT NULL, body BLOB)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS history_by_version ON history (type, id, version)",
    "CREATE INDEX IF NOT EXISTS history_by_type ON history (type, seq)",
    """CREATE TABLE IF NOT EXISTS token_index (type TEXT NOT NULL, id TEXT NOT NULL,
        param TEXT NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS token_lookup ON token_index (type, param, code, system)",
    "CREATE INDEX IF NOT EXISTS token_owner ON token_index (type, id)",
    """CREATE TABLE IF NOT EXISTS reference_index (type TEXT NOT NULL, id TEXT NOT NULL,
        param TEXT NOT NULL, target_type TEXT NOT NULL, target_id TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS reference_lookup"
    " ON reference_index (type, param, target_id, target_type)",
    "CREATE INDEX IF NOT EXISTS reference_owner ON reference_index (type, id)",
    """CREATE TABLE IF NOT EXISTS date_index (type TEXT NOT NULL, id TEXT NOT NULL,
        param TEXT NOT NULL, low INTEGER NOT NULL, high INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS date_lookup ON date_index (type, param, low)",
    "CREATE INDEX IF NOT EXISTS date_owner ON date_index (type, id)",
)
INDEX_TABLES = {
    "tokens": "INSERT INTO token_index VALUES (?, ?, ?, ?, ?)",
    "references": "INSERT INTO reference_index VALUES (?, ?, ?, ?, ?)",
    "dates": "INSERT INTO date_index VALUES (?, ?, ?, ?, ?)",
}
DATA_TABLES = ("resource", "history", "token_index", "reference_index", "date_index")
SERVER_MANAGED_META = ("versionId", "lastUpdated")
POOL_SIZE = 16


class Change(StrEnum):
    """What a write did; counted for ``/_sandbox/stats`` once the transaction commits."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


class StoreError(RuntimeError):
    """The database file cannot be used by this server (e.g. made for another FHIR version)."""


@dataclass(frozen=True)
class Record:
    """One version of one resource; ``body`` is None for a deletion."""

    type: str
    id: str
    version: int
    updated_us: int
    deleted: bool
    body: bytes | None
    method: str = "PUT"

    @property
    def last_updated(self) -> Instant:
        return Instant.of_us(self.updated_us)

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def location(self) -> str:
        return f"{self.type}/{self.id}/_history/{self.version}"

    def resource(self) -> dict | None:
        return orjson.loads(self.body) if self.body is not None else None


def _comparable(resource: dict) -> bytes:
    """The content that decides whether an update changes anything: server meta excluded."""
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in SERVER_MANAGED_META}
    content = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        content["meta"] = meta
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def _with_meta(resource: dict, resource_type: str, rid: str, version: int, at: Instant) -> dict:
    meta = {**resource.get("meta", {}), "versionId": str(version), "lastUpdated": at.text}
    rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": resource_type, "id": rid, "meta": meta, **rest}


class Session:
    """Reads and writes inside one SQLite transaction (:meth:`Store.read`, :meth:`Store.write`)."""

    def __init__(self, conn: sqlite3.Connection, store: Store, *, writable: bool) -> None:
        self.conn = conn
        self.writable = writable
        self.changes: Counter[str] = Counter()
        self._store = store

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def current(self, resource_type: str, rid: str) -> Record | None:
        row = self.conn.execute(
            "SELECT version, updated_us, deleted, body FROM resource WHERE type = ? AND id = ?",
            (resource_type, rid),
        ).fetchone()
        return Record(resource_type, rid, row[0], row[1], bool(row[2]), row[3]) if row else None

    def version(self, resource_type: str, rid: str, version: int) -> Record | None:
        row = self.conn.execute(
            "SELECT updated_us, method, body FROM history"
            " WHERE type = ? AND id = ? AND version = ?",
            (resource_type, rid, version),
        ).fetchone()
        if not row:
            return None
        deleted = row[1] == "DELETE"
        return Record(resource_type, rid, version, row[0], deleted, row[2], row[1])

    def save(
        self, resource_type: str, rid: str, resource: dict, method: str
    ) -> tuple[Record, Change]:
        """Store a new version unless the content equals the current one (then keep it)."""
        self._check_writable()
        current = self.current(resource_type, rid)
        live = current is not None and not current.deleted
        if (
            live
            and current.body
            and _comparable(orjson.loads(current.body)) == _comparable(resource)
        ):
            self.changes[Change.UNCHANGED] += 1
            return current, Change.UNCHANGED
        version = current.version + 1 if current else 1
        at = Instant.of_us(self._store.tick())
        stored = _with_meta(resource, resource_type, rid, version, at)
        record = self._append(
            resource_type, rid, version, at, method=method, body=orjson.dumps(stored)
        )
        self._reindex(resource_type, rid, stored)
        change = Change.UPDATED if live else Change.CREATED
        self.changes[change] += 1
        return record, change

    def tombstone(self, resource_type: str, rid: str) -> Record:
        """Delete: a new version without content; the history keeps every earlier version."""
        self._check_writable()
        current = self.current(resource_type, rid)
        if current is None or current.deleted:
            raise LookupError(f"{resource_type}/{rid} is not live")
        at = Instant.of_us(self._store.tick())
        record = self._append(
            resource_type, rid, current.version + 1, at, method="DELETE", body=None
        )
        self._reindex(resource_type, rid, None)
        self.changes[Change.DELETED] += 1
        return record

    def history(
        self,
        resource_type: str | None,
        rid: str | None,
        since_us: int | None,
        count: int,
        offset: int,
    ) -> tuple[list[Record], int]:
        """Versions newest first, and how many there are in total."""
        where, params = [], []
        for column, value in (("type", resource_type), ("id", rid)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since_us is not None:
            where.append("updated_us >= ?")
            params.append(since_us)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self.conn.execute(f"SELECT count(*) FROM history{clause}", params).fetchone()[0]  # noqa: S608
        rows = self.conn.execute(
            "SELECT type, id, version, updated_us, method, body FROM history"  # noqa: S608
            f"{clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*params, count, offset],
        ).fetchall()
        records = [Record(r[0], r[1], r[2], r[3], r[4] == "DELETE", r[5], r[4]) for r in rows]
        return records, total

    def _check_writable(self) -> None:
        if not self.writable:
            raise RuntimeError("write attempted in a read-only session (use Store.write)")

    def _append(
        self,
        resource_type: str,
        rid: str,
        version: int,
        at: Instant,
        *,
        method: str,
        body: bytes | None,
    ) -> Record:
        seq = self.conn.execute(
            "INSERT INTO history (type, id, version, updated_us, method, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (resource_type, rid, version, at.us, method, body),
        ).lastrowid
        self.conn.execute(
            "INSERT INTO resource (type, id, version, updated_us, deleted, seq, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (type, id) DO UPDATE SET"
            " version = excluded.version, updated_us = excluded.updated_us,"
            " deleted = excluded.deleted, seq = excluded.seq, body = excluded.body",
            (resource_type, rid, version, at.us, body is None, seq, body),
        )
        return Record(resource_type, rid, version, at.us, body is None, body, method)

    def _reindex(self, resource_type: str, rid: str, resource: dict | None) -> None:
        for table in ("token_index", "reference_index", "date_index"):
            sql = f"DELETE FROM {table} WHERE type = ? AND id = ?"  # noqa: S608
            self.conn.execute(sql, (resource_type, rid))
        if resource is None:
            return
        rows: IndexRows = self._store.index(resource_type, resource)
        for name, sql in INDEX_TABLES.items():
            values = getattr(rows, name)
            if values:
                self.conn.executemany(sql, [(resource_type, rid, *v) for v in values])


class Store:
    """The database file, a small connection pool, and the write lock."""

    def __init__(
        self,
        path: Path | str,
        fhir_version: str,
        index: Callable[[str, dict], IndexRows],
        on_commit: Callable[[Counter[str]], None] | None = None,
    ) -> None:
        self.path = str(path)
        self.index = index
        self._on_commit = on_commit
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._last_us = 0
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO server_info VALUES ('fhirVersion', ?)", (fhir_version,)
            )
            stored = conn.execute("SELECT value FROM server_info WHERE key = 'fhirVersion'")
            found = stored.fetchone()[0]
            conn.execute("COMMIT")
        if found != fhir_version:
            raise StoreError(f"{self.path} holds {found} data; start the server with {found}")

    def tick(self) -> int:
        """A strictly increasing timestamp (called under the write lock)."""
        self._last_us = max(now_us(), self._last_us + 1)
        return self._last_us

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._pool_lock:
                if len(self._pool) < POOL_SIZE:
                    self._pool.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A consistent snapshot for reads and searches (count and page agree)."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            yield Session(conn, self, writable=False)
            conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One serialized write transaction: committed on success, rolled back on any error."""
        with self._write_lock, self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            session = Session(conn, self, writable=True)
            yield session  # an exception propagates; _connection rolls back
            conn.execute("COMMIT")
        if self._on_commit and session.changes:
            self._on_commit(session.changes)

    def wipe(self) -> None:
        with self.write() as session:
            for table in DATA_TABLES:
                session.conn.execute(f"DELETE FROM {table}")  # noqa: S608

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()
