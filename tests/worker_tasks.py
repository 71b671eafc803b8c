"""Tasks only the tests load into a real worker (``celery worker --include tests.worker_tasks``).

They misbehave on purpose, to prove what the task base does when real tasks misbehave.
"""

from __future__ import annotations

import os
import signal

from celery import shared_task

from ohe.resilience.errors import ValidationError


@shared_task(name="tests.kill_own_process")
def kill_own_process() -> None:
    """Die like an OOM-killed child: no exception, no ack."""
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task(name="tests.reject_input")
def reject_input(value: str) -> None:
    raise ValidationError(f"input {value!r} cannot be processed")
