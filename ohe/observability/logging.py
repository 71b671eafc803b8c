"""Log configuration: the operations guide's JSON fields in production, readable text locally.

Every record gets the correlation fields (request id, task, user, provider, operation) from the
context, and every string in it is scrubbed of secrets before it is written.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from ohe.observability.context import current_request_id, log_fields
from ohe.observability.scrub import scrub, scrub_value

HANDLER_NAME = "ohe"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class ContextFilter(logging.Filter):
    """Copy the correlation context onto the record so both formatters can use it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        for key, value in log_fields().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class OheJsonFormatter(JsonFormatter):
    """One JSON object per line with the guide's field names."""

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_record["timestamp"] = (
            datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        ).replace("+00:00", "Z")
        log_record["level"] = record.levelname
        log_record["logger"] = record.name
        log_record["module"] = record.module
        log_record["message"] = scrub(record.getMessage())
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_") and value is not None:
                log_record[key] = scrub_value(value)
        log_record["process_id"] = record.process
        log_record["thread_id"] = record.thread
        if record.exc_info:
            log_record["error_type"] = log_record.get("error_type") or _error_type(record)
            log_record["traceback"] = [
                scrub(line.rstrip("\n")) for line in traceback.format_exception(*record.exc_info)
            ]

    def formatException(self, ei: Any) -> str:
        # add_fields writes the traceback as a scrubbed list; skip the parent's string copy.
        return ""


def _error_type(record: logging.LogRecord) -> str:
    exc = record.exc_info[1] if record.exc_info else None
    return getattr(exc, "error_type", None) or type(exc).__name__


class OheTextFormatter(logging.Formatter):
    """Readable development format with the correlation id and scrubbing."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = None
        extras = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _RECORD_ATTRS
            and k != "request_id"
            and not k.startswith("_")
            and v is not None
        }
        text = super().format(record)
        if extras:
            text += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return scrub(text)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners and daemons swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(log_format: str, level: str, levels: dict[str, str]) -> None:
    """Install our handler on the root logger (idempotent: replaces a previous one)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.setFormatter(OheJsonFormatter() if log_format == "json" else OheTextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name, logger_level in levels.items():
        logging.getLogger(name).setLevel(logger_level)


def gunicorn_logger_class() -> type:
    """gunicorn's logger with our formatter on its error log, so ``OHE_LOG_FORMAT=json`` holds
    for the master's lines too (worker boots, timeouts, signals), not only for the app's.

    Built on demand: only the web process has gunicorn installed-and-imported.
    """
    from gunicorn import glogging

    from ohe.settings import Settings

    class OheGunicornLogger(glogging.Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            formatter = (
                OheJsonFormatter()
                if Settings.from_env().log_format == "json"
                else OheTextFormatter()
            )
            for handler in self.error_log.handlers:
                handler.setFormatter(formatter)

    return OheGunicornLogger
