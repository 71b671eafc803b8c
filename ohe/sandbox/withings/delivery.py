"""The webhook sender: form-encoded POSTs with the Withings retry schedule (§1.10).

Each notification is tried in up to five cycles of two HTTP tries: at once, then +10 s,
+1 min (+1-10 min random), +1 h (+2-20 min), +4 h (+3-30 min). ``--delivery-speed`` divides
every delay, so speed 100 turns the 10 s step into 0.1 s and a test can watch a retry happen.
The gap between the two tries of one cycle is not published; the sandbox uses 1 s [U].
A try succeeds when the receiver answers a status below 400 within the timeout (v3 rule).

Deliveries and their attempts are stored, so they can be inspected through the admin API and
pending ones resume after a restart.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson
import requests

from .config import Clock
from .stats import Stats
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cycle:
    delay: float  # seconds after the previous cycle failed
    jitter: tuple[float, float]  # extra random delay range, seconds


SCHEDULE = (
    Cycle(0, (0, 0)),
    Cycle(10, (0, 0)),
    Cycle(60, (60, 600)),
    Cycle(3600, (120, 1200)),
    Cycle(4 * 3600, (180, 1800)),
)
TRIES_PER_CYCLE = 2
TRY_GAP = 1.0


class Dispatcher:
    def __init__(
        self, store: Store, clock: Clock, stats: Stats, *, speed: float, timeout: float
    ) -> None:
        self.store, self.clock, self.stats = store, clock, stats
        self.speed = max(speed, 1e-6)
        self.timeout = timeout
        self._queue: list[tuple[float, int, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="withings-notify")
        self._thread = threading.Thread(target=self._run, name="withings-notify", daemon=True)
        self._session = requests.Session()

    def start(self) -> None:
        """Start sending, resuming deliveries that were pending when the sandbox stopped."""
        for row in self.store.all("SELECT id FROM deliveries WHERE state = 'pending'"):
            self._schedule(row["id"], 0)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def enqueue(self, delivery_ids: list[int]) -> None:
        for delivery_id in delivery_ids:
            self._schedule(delivery_id, 0)

    def _schedule(self, delivery_id: int, delay: float) -> None:
        with self._cond:
            due = time.monotonic() + delay / self.speed
            heapq.heappush(self._queue, (due, next(self._seq), delivery_id))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, delivery_id = heapq.heappop(self._queue)
            self._pool.submit(self._cycle, delivery_id)

    def _cycle(self, delivery_id: int) -> None:
        row = self.store.one("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))
        if row is None or row["state"] != "pending":
            return
        payload = orjson.loads(row["payload"])
        cycle = row["next_cycle"]
        for attempt in range(TRIES_PER_CYCLE):
            if attempt:
                time.sleep(TRY_GAP / self.speed)
            if self._try(row["id"], row["callbackurl"], payload, cycle):
                return
        cycle += 1
        if cycle >= len(SCHEDULE):
            self.store.execute(
                "UPDATE deliveries SET state = 'failed', next_cycle = ? WHERE id = ?",
                (cycle, delivery_id),
            )
            self.stats.notification("abandoned")
            return
        self.store.execute(
            "UPDATE deliveries SET next_cycle = ? WHERE id = ?", (cycle, delivery_id)
        )
        step = SCHEDULE[cycle]
        jitter = random.Random(f"{delivery_id}:{cycle}").uniform(*step.jitter)
        self._schedule(delivery_id, step.delay + jitter)

    def _try(self, delivery_id: int, url: str, payload: dict, cycle: int) -> bool:
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            response = self._session.post(
                url, data=payload, timeout=self.timeout, allow_redirects=False
            )
            status = response.status_code
        except requests.RequestException as exc:
            error = type(exc).__name__
        ok = status is not None and status < 400
        record = {
            "at": round(self.clock.time(), 3),
            "cycle": cycle,
            "status_code": status,
            "error": error,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
        }
        with self.store.tx() as conn:
            attempts = orjson.loads(
                conn.execute(
                    "SELECT attempts FROM deliveries WHERE id = ?", (delivery_id,)
                ).fetchone()["attempts"]
            )
            attempts.append(record)
            conn.execute(
                "UPDATE deliveries SET attempts = ?, state = ? WHERE id = ?",
                (orjson.dumps(attempts).decode(), "delivered" if ok else "pending", delivery_id),
            )
        self.stats.notification("attempt")
        self.stats.notification("delivered" if ok else "failed_attempt")
        log.info("notification %s to %s: %s", delivery_id, url, status or error)
        return ok
