"""Scrape-time gauges: read shared state when Prometheus asks, identical from every process."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask
from sqlalchemy import text

from ohe import __version__
from ohe.extensions import db
from ohe.observability.metrics import GaugeSource
from ohe.tasks.base import QUEUES

Sample = tuple[tuple[str, ...], float]


def _database_connections() -> Iterable[Sample]:
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            ).scalar_one()
    else:
        count = engine.pool.checkedout()  # type: ignore[attr-defined]
    yield (), float(count)


def build_sources(app: Flask) -> list[GaugeSource]:
    """The gauge sources of ``app``; later features append theirs in ``app.extensions``."""
    runtime = app.extensions["ohe"]
    celery = app.extensions["celery"]

    def redis_connections() -> Iterable[Sample]:
        count = runtime.coordination.connection_count()
        if count is not None:
            yield (), float(count)

    def queue_sizes() -> Iterable[Sample]:
        with celery.connection_for_read() as conn:
            for queue in QUEUES:
                channel = conn.channel()
                try:
                    size = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # an absent queue (never used yet) has no messages
                    size = 0
                finally:
                    channel.close()
                yield (queue,), float(size)

    def application_info() -> Iterable[Sample]:
        yield (__version__, runtime.settings.env), 1.0

    return [
        GaugeSource(
            "ohe_database_connections",
            "Open connections to the application database (PostgreSQL: this database's "
            "server connections; SQLite: this process's checked-out connections)",
            (),
            _database_connections,
        ),
        GaugeSource(
            "ohe_redis_connections",
            "Clients connected to the coordination Redis (absent without Redis)",
            (),
            redis_connections,
        ),
        GaugeSource(
            "ohe_celery_queue_size",
            "Messages waiting in each Celery queue, read from the broker "
            "(the guide's ohe_huey_queue_size, per queue)",
            ("queue",),
            queue_sizes,
        ),
        GaugeSource(
            "ohe_application_info",
            "Version and environment of the running service",
            ("version", "environment"),
            application_info,
        ),
        *app.extensions.get("ohe_gauges", []),
    ]
