"""Celery wired the way Flask's own Celery example does it, with Warehouse's task discipline.

- ``celery_init_app(app)`` builds the Celery app from the Flask app's settings and stores it in
  ``app.extensions["celery"]``; tasks are ``@shared_task`` functions on :class:`OheTask`, which
  runs each task inside that Flask app's context.
- Around every task: the request id from the enqueuing request, a redelivery cap (acks_late
  plus reject-on-worker-lost redelivers a message whose worker died; brokers do not count that,
  so we do), metrics by outcome, one JSON log line on failure, and a ``FailedTask`` row for
  anything dropped.
- ``enqueue(signature)`` publishes only after the database transaction commits (dropped on
  rollback), so a task never looks for a row that is not there yet.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, Task
from celery.canvas import Signature
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun
from flask import Flask
from flask_sqlalchemy.session import Session
from kombu import Exchange, Queue
from sqlalchemy import event

from ohe.extensions import db
from ohe.observability import context
from ohe.observability.metrics import TASK_DURATION, TASK_RUNS
from ohe.observability.scrub import scrub
from ohe.resilience.errors import classify
from ohe.settings import Settings

log = logging.getLogger(__name__)

QUEUES = ("webhooks", "sync", "backfill", "maintenance")
LIVE_QUEUE = "webhooks"  # its tasks may use the provider rate limit kept for live work
DEFAULT_QUEUE = "sync"
PENDING_KEY = "ohe_pending_tasks"
TASK_MODULES = (
    "ohe.tasks.maintenance",
    "ohe.tasks.chain",
    "ohe.tasks.deletions",
    "ohe.tasks.sync",
    "ohe.tasks.webhooks",
    "ohe.tasks.links",
    "ohe.tasks.devices",
)


def route_by_name(name: str, *_: Any, **__: Any) -> dict[str, str] | None:
    """Tasks named ``ohe.<queue>.<task>`` go to ``<queue>``; callers may still choose per call.

    One naming rule instead of a routing table: the queue is visible in every task name (in
    logs, Flower and metrics), and a chain step inherits the queue its caller sets explicitly.
    """
    parts = name.split(".")
    if len(parts) >= 3 and parts[0] == "ohe" and parts[1] in QUEUES:
        return {"queue": parts[1]}
    return None


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings as design.md and platform-notes.md §6 prescribe, with the reasons there."""
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_ignore_result": True,
        "result_expires": 86400,
        "worker_max_tasks_per_child": 1000,
        "worker_max_memory_per_child": 300_000,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "worker_soft_shutdown_timeout": 20.0,
        "timezone": "UTC",
        "enable_utc": True,
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        "task_routes": (route_by_name,),
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_exchange": DEFAULT_QUEUE,
        "task_default_routing_key": DEFAULT_QUEUE,
        "beat_schedule_filename": str((settings.data_dir / "celerybeat-schedule").resolve()),
    }
    if settings.broker_url.startswith("filesystem"):
        folder = settings.broker_dir
        for sub in ("", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    elif settings.broker_url.startswith("redis"):
        config["broker_transport_options"] = {
            "visibility_timeout": settings.broker_visibility_timeout,
            "socket_keepalive": True,
            "socket_timeout": 30,
            "retry_on_timeout": True,
            "health_check_interval": 30,
        }
    else:
        config["broker_heartbeat"] = 30
    if settings.redis_url:
        config["beat_scheduler"] = "redbeat.RedBeatScheduler"
        config["redbeat_redis_url"] = settings.redis_url
        config["redbeat_key_prefix"] = "ohe:redbeat:"
        config["redbeat_redis_options"] = {"socket_keepalive": True, "health_check_interval": 30}
        # The active beat renews its lock every tick (at most beat_max_interval); a standby
        # takes over within lock_timeout of the active one dying.
        config["beat_max_interval"] = 30
        config["redbeat_lock_timeout"] = 150
    return config


class OheTask(Task):
    """Base of every task: Flask app context, correlation, redelivery cap, metrics."""

    flask_app: Flask | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        app = self.flask_app
        assert app is not None, "celery_init_app() was not called"
        queue = (self.request.delivery_info or {}).get("routing_key")
        with (
            app.app_context(),
            context.rate_lane(context.LIVE if queue == LIVE_QUEUE else context.BULK),
        ):
            if self._over_delivery_cap(args, kwargs):
                return None
            started = time.perf_counter()
            outcome = "success"
            try:
                return self.run(*args, **kwargs)
            except Retry:
                outcome = "retry"
                raise
            except (Ignore, Reject):
                outcome = "ignored"
                raise
            except Exception:
                outcome = "failure"
                raise
            finally:
                TASK_RUNS.labels(self.name, outcome).inc()
                TASK_DURATION.labels(self.name).observe(time.perf_counter() - started)
                db.session.remove()

    def _over_delivery_cap(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        request = self.request
        if request.called_directly or request.is_eager or not request.id:
            return False
        runtime = self.flask_app.extensions["ohe"]  # type: ignore[union-attr]
        settings = runtime.settings
        deliveries = runtime.coordination.incr(
            f"deliveries:{request.id}:{request.retries}", ttl=2 * settings.broker_visibility_timeout
        )
        if deliveries <= settings.task_max_deliveries:
            return False
        TASK_RUNS.labels(self.name, "poison").inc()
        log.error(
            "task dropped after the redelivery cap",
            extra={
                "operation": "task_poison",
                "task_name": self.name,
                "task_id": request.id,
                "deliveries": deliveries,
                "error_type": "poison_message",
            },
        )
        self._record_failure(
            args,
            kwargs,
            error_class="poison_message",
            message=f"delivered {deliveries} times without finishing (worker lost or killed)",
            deliveries=deliveries,
        )
        return True

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """A task that finally failed (no retry left, or not retryable) is never silent."""
        error_class = classify(exc).value
        log.error(
            "task failed",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={
                "operation": "task_failure",
                "task_name": self.name,
                "task_id": task_id,
                "error_type": error_class,
            },
        )
        app = self.flask_app
        if app is None:
            return
        with app.app_context():
            self._record_failure(args, kwargs, error_class=error_class, message=str(exc))

    def _record_failure(
        self, args: Any, kwargs: Any, *, error_class: str, message: str, deliveries: int = 1
    ) -> None:
        from ohe.models import FailedTask

        request = self.request
        try:
            db.session.add(
                FailedTask(
                    task_id=request.id or "",
                    task_name=self.name,
                    queue=(request.delivery_info or {}).get("routing_key"),
                    args={"args": list(args or ()), "kwargs": dict(kwargs or {})},
                    deliveries=deliveries,
                    error_class=error_class,
                    error_message=scrub(message)[:1024],
                    request_id=context.current_request_id(),
                )
            )
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception(
                "could not record a failed task",
                extra={
                    "operation": "task_failure",
                    "task_name": self.name,
                    "error_type": "database",
                },
            )


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Create the Celery app for ``app`` (Flask's pattern), and import every task module."""
    task_cls = type("FlaskTask", (OheTask,), {"flask_app": app})
    celery_app = Celery(app.name, task_cls=task_cls)
    celery_app.config_from_object(celery_config(settings))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    for module in TASK_MODULES:
        __import__(module)
    from ohe.tasks.schedule import beat_schedule

    celery_app.conf.beat_schedule = beat_schedule()
    return celery_app


def enqueue(signature: Signature) -> None:
    """Publish ``signature`` once the current database transaction commits.

    Begins the transaction if none is open, so that a rollback (which only fires its events
    for a real transaction) reliably drops the pending publish.
    """
    db.session.connection()
    db.session.info.setdefault(PENDING_KEY, []).append(signature)


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, [])
    for signature in pending:
        try:
            signature.apply_async()
        except Exception as exc:
            # The committed row is the source of truth; the beat safety net re-enqueues it.
            from ohe.observability.metrics import TASK_RUNS as runs

            runs.labels(signature.task, "publish_error").inc()
            log.error(
                "could not publish a task after commit",
                extra={
                    "operation": "task_publish",
                    "task_name": signature.task,
                    "error_type": type(exc).__name__,
                },
            )


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    session.info.pop(PENDING_KEY, None)


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = context.current_request_id()
    if headers is not None and request_id and not headers.get(context.HEADER):
        headers[context.HEADER] = request_id


_prerun_tokens: dict[str, Any] = {}


@task_prerun.connect
def _enter_task_context(task_id: str | None = None, task: Task | None = None, **_: Any) -> None:
    if task is None or task_id is None:
        return
    request_id = task.request.get(context.HEADER) or task_id
    _prerun_tokens[task_id] = context.set_request_id(request_id)


@task_postrun.connect
def _leave_task_context(task_id: str | None = None, **_: Any) -> None:
    token = _prerun_tokens.pop(task_id or "", None)
    if token is not None:
        context.reset_request_id(token)


@setup_logging.connect
def _keep_our_logging(**_: Any) -> None:
    """Connected so Celery does not replace the logging that create_app() configured."""
