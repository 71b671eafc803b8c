"""Fixtures in the manner of flaskr's: an app per test on real PostgreSQL and Redis.

Each test gets a clean database (the schema is migrated once per session with the real
migrations, then every table is truncated around each test) and its own Redis database number
(flushed around each test). ``scripts/test`` starts both services when they are not running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from ohe.app import create_app
from ohe.extensions import db
from ohe.settings import Settings
from tests.helpers import TEST_SECRET_KEY, CeleryWorker

PG_URL = os.environ.get(
    "OHE_TEST_DATABASE_URL", "postgresql+psycopg2://ohe:ohe@127.0.0.1:5432/ohe_test"
)
REDIS_URL = os.environ.get("OHE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("OHE_TEST_REDIS_DB", "11"))


@pytest.fixture(scope="session")
def database_url() -> str:
    """A dedicated PostgreSQL database, created if needed and migrated to head once."""
    url = sa.engine.make_url(PG_URL)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
        ).scalar()
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    app = create_app(_settings(Path("/tmp/ohe-test-migrate"), url.render_as_string(False)))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return f"{REDIS_URL}/{REDIS_DB}"


def _settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    """Production-shaped settings: PostgreSQL, Redis coordination and Redis broker."""
    return _settings(tmp_path / "var", database_url, redis_url=redis_url)


def _clean(app: Flask, redis_url: str | None) -> None:
    with app.app_context():
        db.session.remove()
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            else:
                for table in reversed(db.metadata.sorted_tables):
                    conn.execute(table.delete())
    if redis_url:
        redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    app.config["TESTING"] = True
    _clean(app, settings.redis_url)
    yield app
    _clean(app, settings.redis_url)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api_headers(app: Flask) -> dict[str, str]:
    """Authorization headers with a fresh, valid API key."""
    from ohe.api.auth import create_key

    with app.app_context():
        _, plaintext = create_key("tests")
        db.session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def start_worker(app: Flask, tmp_path: Path) -> Iterator[object]:
    """Start real ``celery worker`` subprocesses on the test's settings; stopped after the test."""
    workers: list[CeleryWorker] = []
    settings = app.extensions["ohe"].settings

    def start(**kwargs: object) -> CeleryWorker:
        worker = CeleryWorker(settings, tmp_path / f"worker-{len(workers)}.log", **kwargs)
        workers.append(worker)
        worker.wait_ready(app.extensions["celery"])
        return worker

    yield start
    for worker in workers:
        worker.stop()
