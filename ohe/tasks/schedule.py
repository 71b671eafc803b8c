"""Periodic tasks, declared next to the feature that owns them and collected for beat.

A feature module calls :func:`periodic` at import time; ``celery_init_app`` turns the
collected entries into ``beat_schedule``. Every entry carries ``expires`` so that a beat that
was down (or a backlog) does not fire a pile of stale runs at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.schedules import crontab


@dataclass(frozen=True)
class PeriodicEntry:
    name: str
    task: str
    schedule: timedelta | crontab
    expires: float
    queue: str = "maintenance"
    kwargs: tuple[tuple[str, Any], ...] = ()


_ENTRIES: dict[str, PeriodicEntry] = {}


def periodic(
    name: str,
    task: str,
    schedule: timedelta | crontab,
    *,
    expires: float,
    queue: str = "maintenance",
    **kwargs: Any,
) -> None:
    _ENTRIES[name] = PeriodicEntry(name, task, schedule, expires, queue, tuple(kwargs.items()))


def beat_schedule() -> dict[str, dict[str, Any]]:
    return {
        entry.name: {
            "task": entry.task,
            "schedule": entry.schedule,
            "kwargs": dict(entry.kwargs),
            "options": {"expires": entry.expires, "queue": entry.queue},
        }
        for entry in _ENTRIES.values()
    }
