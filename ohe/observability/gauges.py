"""Scrape-time gauges: read shared state when Prometheus asks, identical from every process."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask
from sqlalchemy import func, select, text

from ohe import __version__
from ohe.extensions import db
from ohe.models import LinkStatus, Provider, ProviderLink, SyncCursor, utcnow
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


def _sync_lag() -> Iterable[Sample]:
    """Per provider, the worst link: seconds since its last successful sync (or since linking)."""
    last = (
        select(SyncCursor.link_id, func.max(SyncCursor.last_success_at).label("last"))
        .group_by(SyncCursor.link_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Provider.provider_type, ProviderLink.linked_at, last.c.last)
        .join(Provider, Provider.id == ProviderLink.provider_id)
        .outerjoin(last, last.c.link_id == ProviderLink.id)
        .where(ProviderLink.status == LinkStatus.ACTIVE.value)
    ).all()
    now = utcnow()
    worst: dict[str, float] = {}
    for provider, linked_at, last_success in rows:
        lag = (now - (last_success or linked_at)).total_seconds()
        worst[provider] = max(worst.get(provider, 0.0), lag)
    db.session.rollback()
    for provider, lag in worst.items():
        yield (provider,), lag


def _links_by_status() -> Iterable[Sample]:
    rows = db.session.execute(
        select(Provider.provider_type, ProviderLink.status, func.count())
        .join(Provider, Provider.id == ProviderLink.provider_id)
        .group_by(Provider.provider_type, ProviderLink.status)
    ).all()
    db.session.rollback()
    for provider, status, count in rows:
        yield (provider, status), float(count)


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
            "ohe_sync_lag_seconds",
            "Seconds since the least recently synced active link of each provider last synced "
            "successfully (since linking if never)",
            ("provider",),
            _sync_lag,
        ),
        GaugeSource(
            "ohe_provider_links",
            "Provider links by status (active, needs_reauth, revoked)",
            ("provider", "status"),
            _links_by_status,
        ),
        GaugeSource(
            "ohe_application_info",
            "Version and environment of the running service",
            ("version", "environment"),
            application_info,
        ),
        *app.extensions.get("ohe_gauges", []),
    ]
