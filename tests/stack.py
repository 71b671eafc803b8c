"""The whole system on one machine: our web app on a real port, real Celery workers, the
Withings sandbox and the sandbox FHIR server — PostgreSQL and Redis underneath.

Nothing is mocked: the sandbox calls our webhook over HTTP, the workers call the sandbox and
the FHIR server over HTTP, and the tests look at the FHIR server's contents.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from werkzeug.serving import make_server

from ohe.app import create_app
from ohe.extensions import db
from ohe.models import ProviderLink, SyncStatus
from ohe.settings import Settings
from tests.conftest import _clean
from tests.helpers import TEST_SECRET_KEY, CeleryWorker, Process, child_env, free_port, wait_for
from tests.sandbox.conftest import FhirServer, ThreadedServer
from tests.sandbox.withings_fixtures import CLIENT_ID, CLIENT_SECRET, SandboxServer


@dataclass
class Stack:
    app: Flask
    settings: Settings
    web_url: str
    withings: SandboxServer
    fhir: FhirServer
    api_key: str
    tmp: Path
    workers: list[CeleryWorker] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    # --- processes -----------------------------------------------------------------------------
    def start_worker(self, **kwargs: Any) -> CeleryWorker:
        worker = CeleryWorker(self.settings, self.tmp / f"worker-{len(self.workers)}.log", **kwargs)
        self.workers.append(worker)
        worker.wait_ready(self.app.extensions["celery"])
        return worker

    # --- API -----------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.api_key}", **kwargs.pop("headers", {})}
        return self.http.request(
            method, f"{self.web_url}{path}", headers=headers, timeout=30, **kwargs
        )

    def link(
        self,
        ehr_user_id: str,
        *,
        history_days: int = 30,
        userid: int | None = None,
        **link_body: Any,
    ) -> tuple[int, str]:
        """Link a new sandbox user to ``ehr_user_id`` through the real flow, minus the clicks.

        The browser part (consent page) is replaced by the sandbox's admin authorize call; the
        headless-browser test does the clicks. Returns (sandbox userid, final page HTML/URL).
        """
        userid = userid or self.withings.new_user(history_days=history_days)
        created = self.api(
            "POST", "/api/base/link/withings/", json={"ehr_user_id": ehr_user_id, **link_body}
        )
        assert created.status_code == 201, created.text
        to_provider = self.http.get(created.json()["link_url"], allow_redirects=False, timeout=30)
        assert to_provider.status_code == 302, to_provider.text
        query = {
            k: v[0] for k, v in parse_qs(urlsplit(to_provider.headers["Location"]).query).items()
        }
        granted = self.withings.admin(
            "POST",
            "/authorize",
            {
                "userid": userid,
                "redirect_uri": query["redirect_uri"],
                "state": query["state"],
                "scope": query["scope"],
            },
        )
        back = self.http.get(granted["redirect"], allow_redirects=False, timeout=30)
        return userid, back.text if back.status_code == 200 else back.headers.get("Location", "")

    # --- observation -----------------------------------------------------------------------------
    def runs(self) -> list[SyncStatus]:
        with self.app.app_context():
            db.session.remove()
            return db.session.scalars(sa.select(SyncStatus)).all()

    def wait_idle(self, timeout: float = 120) -> list[SyncStatus]:
        """Until at least one run exists and every run has finished (deletion check included)."""

        def done(run: SyncStatus) -> bool:
            if run.status == "success":
                return not run.checks_deletions or run.deletions_checked_at is not None
            return run.status == "failed"

        def idle() -> list[SyncStatus] | None:
            runs = self.runs()
            return runs if runs and all(done(r) for r in runs) else None

        return wait_for(idle, timeout, interval=0.3)

    def rerun(self, runs: list[SyncStatus], timeout: float = 600) -> list[SyncStatus]:
        """Sync again, through the API, exactly what ``runs`` covered: per patient and stream,
        from its earliest window start to its latest window end (never later: the current
        hour of intraday data keeps growing, and new data is not a re-sync). Waits for them."""
        from ohe.models import EHRUser
        from ohe.providers import provider as provider_named

        windows: dict[tuple[int, str], tuple[datetime, datetime]] = {}
        for run in runs:
            if run.link_id and run.window_start and run.window_end and run.stream != "devices":
                key = (run.link_id, run.stream)
                start, end = windows.get(key, (run.window_start, run.window_end))
                windows[key] = (min(start, run.window_start), max(end, run.window_end))
        with self.app.app_context():
            patients = dict(
                db.session.execute(
                    sa.select(ProviderLink.id, EHRUser.ehr_user_id).join(EHRUser)
                ).all()
            )
            streams = provider_named("withings").streams
        before = {r.id for r in self.runs()}
        for (link_id, stream), (start, end) in sorted(windows.items()):
            body = {
                "ehr_user_id": patients[link_id],
                "data_types": sorted(streams[stream].data_types),
                "start": (start - timedelta(minutes=1)).isoformat(),
                "end": end.isoformat(),
            }
            response = self.api("POST", "/api/base/sync/trigger/", json=body)
            assert response.status_code == 202, response.text
        return [r for r in self.wait_idle(timeout=timeout) if r.id not in before]

    def run_task(self, name: str, *args: Any) -> Any:
        """Run a task now in this process (as beat would trigger it; its chains go to workers)."""
        task = self.app.extensions["celery"].tasks[name]
        with self.app.app_context():
            return task.apply(args=args).get()

    def link_row(self, ehr_user_id: str) -> ProviderLink:
        with self.app.app_context():
            db.session.remove()
            from ohe.models import EHRUser

            return db.session.scalar(
                sa.select(ProviderLink).join(EHRUser).where(EHRUser.ehr_user_id == ehr_user_id)
            )

    def expected_identifiers(self) -> list[str]:
        """Replay every recorded run's window in this process (fetch, parse, transform): the
        Observation identifiers the system must hold. An oracle built from the provider
        contract alone: no Celery, no cursors, no pages in Redis."""
        from ohe.extensions import state
        from ohe.providers import provider as provider_named
        from ohe.providers.tokens import LinkTokens
        from ohe.tasks.transform import LinkInfo, build_context, transform_page

        expected: list[str] = []
        with self.app.app_context():
            db.session.remove()
            runs = db.session.scalars(sa.select(SyncStatus).where(SyncStatus.stream != "devices"))
            for run in runs.all():
                link = db.session.get(ProviderLink, run.link_id)
                provider = provider_named(run.provider)
                session = provider.session(LinkTokens(link.id, provider, state().coordination))
                ctx = build_context(self.settings, LinkInfo.of(link))
                request = provider.first_request(
                    run.stream, cursor=None, start=run.window_start, end=run.window_end
                )
                while request is not None:
                    result = _paced(session.fetch, request)
                    output = transform_page(
                        provider,
                        request,
                        result.payload,
                        ctx=ctx,
                        wanted=frozenset(provider.streams[run.stream].data_types),
                        validation_mode="fast",
                    )
                    expected += [
                        e["resource"]["identifier"][0]["value"]
                        for e in output.entries
                        if e["resource"]["resourceType"] == "Observation"
                    ]
                    request = result.next_request
        return expected

    def observation_of(self, userid: int | str, natural_key: str) -> dict | None:
        """The Observation for a provider record of a sandbox user, by its business identifier
        (one indexed search, not a scan of the whole server)."""
        from ohe.fhir import identifiers

        scope = identifiers.link_scope(self.settings.secret_key, "withings", str(userid))
        system = identifiers.system(self.settings.fhir_identifier_base, "withings", "measure")
        found = self.fhir.search("Observation", identifier=f"{system}|{scope}:{natural_key}")
        entries = found.get("entry", [])
        assert len(entries) <= 1, f"{len(entries)} resources share one identifier"
        return entries[0]["resource"] if entries else None

    def fhir_resources(self, resource_type: str = "Observation") -> Iterator[dict]:
        """Every resource of a type on the FHIR server, page by page."""
        page = self.fhir.search(resource_type, _count=1000)
        while True:
            yield from (e["resource"] for e in page.get("entry", []))
            following = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
            if not following:
                return
            page = self.fhir.http.get(following[0], timeout=30).json()

    def fhir_identifiers(self, resource_type: str = "Observation") -> list[str]:
        """Every business identifier value on the FHIR server (duplicates kept)."""
        return [r["identifier"][0]["value"] for r in self.fhir_resources(resource_type)]


@contextmanager
def stacks(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Callable[..., Stack]]:
    """Start stacks on demand; everything started is stopped when the block ends.

    Used by the ``make_stack`` fixture and by ``benchmarks/backfill_under_fire.py``.
    """
    cleanups: list[Callable[[], None]] = []

    def make(
        *,
        withings: dict[str, Any] | None = None,
        fhir_version: str = "R5",
        gunicorn: bool = False,
        **overrides: Any,
    ) -> Stack:
        """A stack; ``gunicorn=True`` serves the web app with the real gunicorn (a subprocess
        sharing PROMETHEUS_MULTIPROC_DIR with the workers, as the Procfile deployment does)."""
        fhir_server = ThreadedServer.start(tmp_path / "fhir.db", fhir_version=fhir_version)
        cleanups.append(fhir_server.stop)
        sandbox = SandboxServer(
            **{"rate_limit": 100_000, "delivery_speed": 100.0, **(withings or {})}
        )
        cleanups.append(sandbox.close)
        port = free_port()
        web_url = f"http://127.0.0.1:{port}"
        values: dict[str, Any] = {
            "data_dir": tmp_path / "var",
            "database_url": database_url,
            "redis_url": redis_url,
            "secret_key": TEST_SECRET_KEY,
            "public_url": web_url,
            "fhir_base_url": fhir_server.fhir.base,
            "fhir_version": fhir_version,
            "withings_api_url": sandbox.url,
            "withings_authorize_url": f"{sandbox.url}/oauth2_user/authorize2",
            "withings_client_id": CLIENT_ID,
            "withings_client_secret": CLIENT_SECRET,
            "withings_rate_limit": 100_000,
            "log_level": "INFO",
        }
        if gunicorn:
            values["prometheus_multiproc_dir"] = tmp_path / "prometheus"
            values["prometheus_multiproc_dir"].mkdir(exist_ok=True)
        values.update(overrides)
        settings = Settings.from_env({}, **values)
        app = create_app(settings)
        _clean(app, redis_url)
        if gunicorn:
            web = Process(
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    "-c",
                    "config/gunicorn.conf.py",
                    "-b",
                    f"127.0.0.1:{port}",
                    "ohe.wsgi:app",
                ],
                child_env(settings),
                tmp_path / "gunicorn.log",
            )
            cleanups.append(web.stop)
            wait_for(lambda: requests.get(f"{web_url}/api/metrics/live/", timeout=1).ok, 60)
            port = free_port()  # the in-process server below only serves the test's own calls
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()

        def stop_web() -> None:
            server.shutdown()
            server.server_close()
            _clean(app, redis_url)
            with app.app_context():
                db.engine.dispose()

        cleanups.append(stop_web)
        from ohe.api.auth import create_key

        with app.app_context():
            _, key = create_key("e2e")
            db.session.commit()
        stack = Stack(app, settings, web_url, sandbox, fhir_server.fhir, key, tmp_path)
        cleanups.append(lambda: [w.stop() for w in stack.workers])
        return stack

    try:
        yield make
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


@pytest.fixture
def make_stack(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Callable[..., Stack]]:
    with stacks(tmp_path, database_url, redis_url) as make:
        yield make


def _paced(fetch: Callable[[Any], Any], request: Any) -> Any:
    """The oracle shares the deployment's rate limit: wait its turn instead of failing."""
    from ohe.resilience.errors import RateLimitError

    while True:
        try:
            return fetch(request)
        except RateLimitError as exc:
            time.sleep(exc.retry_after or 1.0)
