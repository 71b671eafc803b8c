"""The application factory: settings → extensions → Celery → blueprints → hooks.

``create_app()`` is what gunicorn, ``flask``/``ohe`` commands and the Celery worker module call.
Settings are read from the environment once here; a bad value ends the process with one line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request

from ohe.api.auth import public, require_api_key
from ohe.api.problems import register_error_handlers
from ohe.coordination import build_coordination
from ohe.crypto import TokenCipher
from ohe.extensions import Runtime, db, migrate
from ohe.observability import context
from ohe.observability.logging import configure_logging
from ohe.observability.metrics import API_REQUEST_DURATION, API_REQUESTS
from ohe.resilience.breakers import BreakerRegistry
from ohe.settings import Settings, SettingsError
from ohe.tasks.base import celery_init_app

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, or exit with one clear line naming the bad variable."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        sys.stderr.write(f"ohe: configuration error: {exc}\n")
        raise SystemExit(2) from None


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    configure_logging(settings.log_format, settings.log_level, settings.log_levels)
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    app = Flask("ohe", static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
    )
    coordination = build_coordination(settings.redis_url)
    breakers = BreakerRegistry(settings, coordination)
    app.extensions["ohe"] = Runtime(
        settings=settings,
        coordination=coordination,
        cipher=TokenCipher(settings.token_encryption_keys),
        breakers=breakers,
    )
    app.extensions["ohe_gauges"] = [breakers.gauge_source()]
    app.extensions["ohe_health_extras"] = {"circuit_breakers": breakers.get_all_states}
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    celery_init_app(app, settings)

    register_error_handlers(app)
    _register_request_hooks(app)
    _register_blueprints(app)

    from ohe.cli import ohe_cli

    app.cli.add_command(ohe_cli)
    return app


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Web, worker and beat share one SQLite file in the embedded default: wait for locks.
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_pre_ping": True,
        "pool_size": 5,
        "max_overflow": 10,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 10, "options": "-c statement_timeout=30000"},
    }


def _register_blueprints(app: Flask) -> None:
    from ohe.api import admin, health, links, providers, sync, webhooks

    for module in (health, providers, links, sync, webhooks, admin):
        app.register_blueprint(module.bp)

    @app.get("/")
    @public
    def root() -> Response:
        """Server time (kept from the reference API; some clients use it as a ping)."""
        from ohe.models import utcnow

        return jsonify({"current_time": utcnow().isoformat(sep=" ")})

    @app.get("/api/base/")
    def api_root() -> Response:
        """Index of the authenticated API."""
        rules = sorted(
            {r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/api/base/")}
        )
        return jsonify({"endpoints": rules})


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def start_request() -> None:
        g.request_id = context.accept_request_id(request.headers.get("X-Request-ID"))
        g.request_id_token = context.set_request_id(g.request_id)
        g.started = time.perf_counter()

    app.before_request(require_api_key)

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        API_REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        if "started" in g:
            API_REQUEST_DURATION.labels(request.method, endpoint).observe(
                time.perf_counter() - g.started
            )
        return response

    @app.teardown_request
    def end_request(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            context.reset_request_id(token)
