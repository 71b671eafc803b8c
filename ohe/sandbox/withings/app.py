"""``create_app`` (for tests and embedding) and ``serve`` (the standalone process)."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from . import admin, api, consent
from .config import Clock, SandboxConfig
from .context import Sandbox
from .delivery import Dispatcher
from .ratelimit import RollingWindowLimiter
from .stats import Faults, Stats
from .store import Store

log = logging.getLogger("ohe.sandbox.withings")
EXTENSION = "withings_sandbox"


def create_app(
    config: SandboxConfig | None = None, *, clock: Clock | None = None, **overrides: Any
) -> Flask:
    """A Withings sandbox app; ``overrides`` replace fields of ``config`` (e.g. rate_limit=5).

    The app owns a SQLite store and a notification sender thread: call ``close_app(app)`` (or
    stop the process) to release them.
    """
    config = dataclasses.replace(config or SandboxConfig(), **overrides)
    clock = clock or Clock()
    store = Store(config.db_path)
    stats = Stats()
    sandbox = Sandbox(
        config=config,
        clock=clock,
        store=store,
        limiter=RollingWindowLimiter(config.rate_limit, config.rate_window),
        stats=stats,
        faults=Faults(),
        dispatcher=Dispatcher(
            store, clock, stats, speed=config.delivery_speed, timeout=config.callback_timeout
        ),
    )
    app = Flask(__name__)
    app.extensions[EXTENSION] = sandbox
    app.register_blueprint(api.bp)
    app.register_blueprint(consent.bp)
    app.register_blueprint(admin.bp)
    sandbox.dispatcher.start()
    return app


def sandbox_of(app: Flask) -> Sandbox:
    return app.extensions[EXTENSION]


def close_app(app: Flask) -> None:
    sandbox = sandbox_of(app)
    sandbox.dispatcher.stop()
    sandbox.store.close()


def serve(config: SandboxConfig, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, stop the sender and close the DB."""
    app = create_app(config)
    server = make_server(host, port, app, threaded=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="withings-http", daemon=True)
    thread.start()
    log.warning(
        "Withings sandbox on http://%s:%s (client_id=%s, db=%s, %s calls per %ss)",
        host,
        server.server_port,
        config.client_id,
        config.db_path,
        config.rate_limit,
        config.rate_window,
    )
    while not stop.wait(0.5):
        pass
    log.warning("Withings sandbox stopping")
    server.shutdown()
    thread.join(5)
    server.server_close()
    close_app(app)
