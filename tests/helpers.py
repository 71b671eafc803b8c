"""Test helpers: real subprocesses (Celery workers, servers) started with the test's settings."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ohe.settings import Settings

TEST_SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"
ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # keep polling; report the last error on timeout
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last error: {last_error!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OHE_")}
    env.update({k: v for k, v in settings.as_environ().items() if v != ""})
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Process:
    """A child process with its output captured to a file, stopped by signal."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode


class CeleryWorker(Process):
    """A real ``celery worker`` subprocess on the test's broker and database."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        queues: str = "webhooks,sync,backfill,maintenance",
        concurrency: int = 2,
        pool: str = "prefork",
        name: str = "test",
        include: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ohe.worker",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-P",
            pool,
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "-E",
            "--loglevel",
            "INFO",
        ]
        if include:
            args += ["--include", include]
        super().__init__(args, child_env(settings, **(extra_env or {})), log_path)
        self.settings = settings

    def wait_ready(self, celery_app: Any, timeout: float = 60) -> None:
        def answered() -> bool:
            if not self.alive():
                raise AssertionError("worker exited:\n" + self.output()[-3000:])
            return bool(celery_app.control.ping(timeout=0.5))

        try:
            wait_for(answered, timeout, interval=0.2)
        except AssertionError:
            raise AssertionError("worker did not answer:\n" + self.output()[-3000:]) from None
