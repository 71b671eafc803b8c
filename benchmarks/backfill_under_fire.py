"""Backfill under fire: many patients backfill a year each while webhooks arrive and workers die.

The full-size acceptance scenario (the test suite runs a scaled version in tests/reliability):
``--users`` patients are linked through the real link flow, each backfills ``--days`` of
sandbox history under the shared Withings rate limit, new measurements arrive by webhook while
the backfills run (their latency to FHIR is measured), and ``--kills`` workers are SIGKILLed at
random. At the end it checks, and prints:

- the Withings sandbox's own count: the most calls in any rolling window never exceeded the
  limit, and no call was answered 601;
- every webhook-driven measurement reached FHIR, and how fast (max, p95; target < 10 s);
- the FHIR server holds exactly the expected Observations, each once — expected = an independent
  replay of every run's window through the provider contract (``--verify replay``) or a second
  full backfill that must create nothing (``--verify rerun``, cheaper at a real 120/min limit);
- the status API reports every link completed, and ``ohe links`` lists every link active;
- re-running every sync writes nothing new (the FHIR server's create/update counters stay 0).

Needs PostgreSQL and Redis (as the tests do). Examples:
  .venv/bin/python benchmarks/backfill_under_fire.py --users 50 --days 365 --kills 8 \\
      --rate-limit 1200 --rate-window 60
  .venv/bin/python benchmarks/backfill_under_fire.py --users 20 --days 365 --verify rerun
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ohe.app import create_app
from ohe.extensions import db
from ohe.settings import Settings
from tests.helpers import TEST_SECRET_KEY, child_env
from tests.stack import Stack, stacks


def fresh_database(url: str) -> str:
    """Create (or empty) the database and migrate it to head."""
    parsed = sa.engine.make_url(url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
        ).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    engine = sa.create_engine(parsed)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    rendered = parsed.render_as_string(hide_password=False)
    app = create_app(
        Settings.from_env(
            {}, data_dir=Path(tempfile.mkdtemp()), database_url=rendered, secret_key=TEST_SECRET_KEY
        )
    )
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    return rendered


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)] if ordered else 0.0


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--bulk-workers", type=int, default=2, help="sync/backfill workers")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--kills", type=int, default=6, help="workers SIGKILLed in the run")
    parser.add_argument("--webhooks", type=int, default=20, help="measurements added meanwhile")
    parser.add_argument("--rate-limit", type=int, default=120, help="Withings calls per window")
    parser.add_argument("--rate-window", type=float, default=60.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--verify", choices=["replay", "rerun"], default="replay")
    parser.add_argument("--timeout", type=float, default=7200.0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "OHE_BENCH_DATABASE_URL", "postgresql+psycopg2://ohe:ohe@127.0.0.1:5432/ohe_bench"
        ),
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    return parser.parse_args()


BULK = "sync,backfill,maintenance"


class Load:
    """Webhooks arriving and workers dying while the backfills run."""

    def __init__(self, stack: Stack, users: list[int], args: argparse.Namespace) -> None:
        self.stack, self.users, self.args = stack, users, args
        self.latencies: list[float] = []
        self.missing: list[int] = []
        self.kills: list[float] = []
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self.webhooks),
            threading.Thread(target=self.killer),
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()

    def webhooks(self) -> None:
        rng = random.Random(1)
        for n in range(self.args.webhooks):
            if self.done.wait(rng.uniform(2, 6)):
                return
            userid = rng.choice(self.users)
            # A measurement becomes a webhook only once its user is subscribed (that happens
            # in the link's setup lane, which may queue when many patients link at once).
            while not self.subscribed(userid) and not self.done.wait(0.5):
                pass
            sent = time.monotonic()
            path = f"/users/{userid}/measures"
            grpid = self.stack.withings.admin("POST", path, {"weight_kg": 60 + n})["grpid"]
            while time.monotonic() - sent < 60:
                if self.stack.observation_of(userid, f"{grpid}:1"):
                    self.latencies.append(time.monotonic() - sent)
                    break
                time.sleep(0.5)
            else:
                self.missing.append(grpid)

    def subscribed(self, userid: int) -> bool:
        found = self.stack.withings.admin("GET", f"/subscriptions?userid={userid}")
        return any(s["appli"] == 1 for s in found["subscriptions"])

    def killer(self) -> None:
        rng = random.Random(2)
        while len(self.kills) < self.args.kills and not self.done.wait(rng.uniform(10, 40)):
            bulk = [w for w in self.stack.workers if w.alive() and BULK in w.popen.args]
            if bulk:
                rng.choice(bulk).stop(signal.SIGKILL)
                self.kills.append(time.monotonic())
                name = f"bulk{len(self.stack.workers)}"
                self.stack.start_worker(queues=BULK, concurrency=self.args.concurrency, name=name)


def verify(stack: Stack, load: Load, runs: list, args: argparse.Namespace) -> dict[str, bool]:
    checks: dict[str, bool] = {"every run succeeded": all(r.status == "success" for r in runs)}

    stats = stack.withings.admin("GET", "/stats")
    peak, limited = stats["max_calls_in_window"], stats["rate_limited"]
    print(
        f"Withings calls: {stats['calls']['total']} total, most in any {args.rate_window:g} s "
        f"window {peak} (limit {args.rate_limit}), answered 601: {limited}"
    )
    checks["shared rate limit never exceeded"] = peak <= args.rate_limit and not limited

    lat = load.latencies
    median = statistics.median(lat) if lat else 0.0
    print(
        f"webhook measurements: {len(lat)} in FHIR, {len(load.missing)} missing; latency "
        f"max {max(lat, default=0):.1f} s, p95 {percentile(lat, 0.95):.1f} s, "
        f"median {median:.1f} s"
    )
    checks["webhook measurements in FHIR within 10 s"] = (
        not load.missing and max(lat, default=0) < 10
    )

    held = stack.fhir_identifiers()
    checks["no duplicates in FHIR"] = len(held) == len(set(held))
    print(f"FHIR Observations: {len(held)} ({len(set(held))} distinct identifiers)")
    if args.verify == "replay":
        expected = set(stack.expected_identifiers())
        lost, extra = len(expected - set(held)), len(set(held) - expected)
        print(f"expected (independent replay): {len(expected)}; missing {lost}, unexpected {extra}")
        checks["exactly the expected resources"] = expected == set(held)

    patients = [f"fire-{i:03d}" for i in range(args.users)]
    statuses = [
        stack.api("GET", "/api/base/sync/status/", params={"ehr_user_id": p}).json()
        for p in patients
    ]
    checks["status API: every link completed"] = all(
        s["providers"].get("withings", {}).get("status") == "completed" for s in statuses
    )
    listed = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "ohe.app", "ohe", "links", "--status", "active"],
        env=child_env(stack.settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    checks["CLI lists every link active"] = sum("fire-" in x for x in listed.splitlines()) == len(
        patients
    )

    stack.fhir.admin("POST", "stats/reset")
    rerun = stack.rerun(runs, timeout=args.timeout)
    written = stack.fhir.stats()["resources"]
    print(
        f"re-run of every window ({len(rerun)} runs): created {written['created']}, "
        f"updated {written['updated']}, unchanged {written.get('unchanged')}"
    )
    checks["re-running writes nothing new"] = written["created"] == 0 and written["updated"] == 0
    return checks


def main() -> int:
    args = options()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the in-process web server
    database_url = fresh_database(args.database_url)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as tmp,
        stacks(Path(tmp), database_url, args.redis_url) as make,
    ):
        stack: Stack = make(
            withings={
                "rate_limit": args.rate_limit,
                "rate_window": args.rate_window,
                "page_size": args.page_size,
            },
            withings_rate_limit=args.rate_limit,
            withings_rate_window=args.rate_window,
            initial_backfill_days=args.days,
            task_soft_time_limit=50,
            task_time_limit=60,
            broker_visibility_timeout=90,  # killed workers' tasks come back within ~1.5 min
            log_level="WARNING",
        )
        stack.start_worker(queues="webhooks", concurrency=1, name="webhooks")
        for i in range(args.bulk_workers):
            stack.start_worker(queues=BULK, concurrency=args.concurrency, name=f"bulk{i}")
        print(f"linking {args.users} patients ({args.days} days of history each)...", flush=True)
        users = [stack.link(f"fire-{i:03d}", history_days=args.days)[0] for i in range(args.users)]
        linked = time.monotonic()
        print(f"linked in {linked - started:.0f} s; backfilling", flush=True)
        with Load(stack, users, args) as load:
            stack.wait_idle(timeout=args.timeout)
        runs = stack.wait_idle(timeout=args.timeout)
        failed = sum(r.status != "success" for r in runs)
        print(
            f"all {len(runs)} runs finished {time.monotonic() - linked:.0f} s after linking; "
            f"{failed} failed; {len(load.kills)} workers killed",
            flush=True,
        )
        checks = verify(stack, load, runs, args)
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
