"""Helpers for the Withings sandbox tests: a real server on a free port, a webhook receiver.

The server runs in-process on a background thread (werkzeug, real HTTP, real sockets) so a test
can start several with different settings cheaply; the tests that need a separate process
(SIGTERM, restart, CLI) start ``python -m ohe.sandbox.withings`` themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from werkzeug.serving import make_server

from ohe.sandbox.withings import close_app, create_app

CLIENT_ID = "ohe-sandbox-client"
CLIENT_SECRET = "ohe-sandbox-secret"
REDIRECT_URI = "http://localhost:8000/api/links/withings/callback"
ALL_SCOPES = "user.info,user.metrics,user.activity"
HOUR = 3600


class SandboxServer:
    def __init__(self, **overrides: Any) -> None:
        self.app = create_app(**overrides)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.http = requests.Session()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        close_app(self.app)

    # -- admin API ---------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=30)
        assert response.status_code < 300, response.text
        return response.json()

    def new_user(self, history_days: int = 30, timezone: str | None = None) -> int:
        body: dict[str, Any] = {"history_days": history_days}
        if timezone:
            body["timezone"] = timezone
        return self.admin("POST", "/users", body)["userid"]

    def advance(self, seconds: float) -> None:
        self.admin("POST", "/clock", {"advance": seconds})

    def code(self, userid: int, scope: str = ALL_SCOPES) -> str:
        body = {"userid": userid, "redirect_uri": REDIRECT_URI, "state": "st", "scope": scope}
        return self.admin("POST", "/authorize", body)["code"]

    # -- Withings API ------------------------------------------------------------------------
    def post(self, path: str, token: str | None = None, **form: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post(f"{self.url}{path}", data=form, headers=headers, timeout=30)

    def call(self, path: str, token: str | None = None, **form: Any) -> dict[str, Any]:
        """One API call; returns the envelope after checking it is JSON on HTTP 200."""
        response = self.post(path, token, **form)
        assert response.status_code == 200, response.text
        return response.json()

    def exchange(self, code: str, redirect_uri: str = REDIRECT_URI) -> dict[str, Any]:
        return self.call(
            "/v2/oauth2",
            action="requesttoken",
            grant_type="authorization_code",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            code=code,
            redirect_uri=redirect_uri,
        )

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        return self.call(
            "/v2/oauth2",
            action="requesttoken",
            grant_type="refresh_token",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=refresh_token,
        )

    def token(self, userid: int, scope: str = ALL_SCOPES) -> dict[str, Any]:
        """A fresh token pair for ``userid`` (admin authorize + code exchange)."""
        envelope = self.exchange(self.code(userid, scope))
        assert envelope["status"] == 0, envelope
        return envelope["body"]


@contextmanager
def running_sandbox(**overrides: Any) -> Iterator[SandboxServer]:
    server = SandboxServer(**overrides)
    try:
        yield server
    finally:
        server.close()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class Receiver:
    """A webhook endpoint: answers HEAD with ``head_status``, fails the first ``fail_posts``
    POSTs with HTTP 500, and records every POST (form fields, content type, query)."""

    head_status: int = 200
    fail_posts: int = 0
    heads: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                with receiver.lock:
                    receiver.heads += 1
                self.send_response(receiver.head_status)
                self.end_headers()

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                with receiver.lock:
                    receiver.posts.append(
                        {
                            "form": {k: v[0] for k, v in parse_qs(raw).items()},
                            "content_type": self.headers.get("Content-Type", ""),
                            "query": urlsplit(self.path).query,
                        }
                    )
                    failing = len(receiver.posts) <= receiver.fail_posts
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def receiving(receiver: Receiver) -> Iterator[str]:
    """Serve ``receiver`` on a free port; yields its callback URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/webhooks/withings/"
    finally:
        server.shutdown()
        server.server_close()
