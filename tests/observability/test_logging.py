"""Logs: the guide's JSON fields, correlation context, and no secret in any field."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ohe.observability import context
from ohe.observability.logging import ContextFilter, OheJsonFormatter, OheTextFormatter
from ohe.observability.scrub import scrub

SECRETS = [
    "access_token=eyJhbGciOiJIUzI1NiJ9.payload.sig",
    '"refresh_token": "a1b2c3d4e5f6"',
    "Authorization: Bearer s3cr3t-t0ken-value",
    "client_secret=very-secret-value",
    "https://user:hunter2@db.example/ohe",
    "key ohe_AbCdEfGhIjKlMnOpQrStUvWxYz012345AbCdEfGhIjK",
    "callback?code=auth-code-123&state=xyz",
]


@pytest.mark.parametrize("text", SECRETS)
def test_scrub_removes_every_kind_of_secret(text: str) -> None:
    cleaned = scrub(text)
    for secret in (
        "eyJhbGciOiJIUzI1NiJ9",
        "a1b2c3d4e5f6",
        "s3cr3t-t0ken-value",
        "very-secret-value",
        "hunter2",
        "AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        "auth-code-123",
    ):
        assert secret not in cleaned
    assert "***" in cleaned


def test_scrub_keeps_ordinary_text() -> None:
    text = (
        "breaker withings_api state=open status_code=503 fetched 12 measures "
        "metric=ohe_circuit_breaker_open_duration_seconds"
    )
    assert scrub(text) == text


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"ohe.test.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_json_lines_carry_the_guides_fields_and_the_context() -> None:
    logger, stream = _logger(OheJsonFormatter())
    token = context.set_request_id("req-77")
    try:
        with context.bind(user_id="patient-1", provider="withings", operation="weight_fetch"):
            try:
                raise TimeoutError("provider timed out; access_token=abcdef123456")
            except TimeoutError:
                logger.exception(
                    "Failed to fetch health data",
                    extra={"duration": 1.234, "error_type": "network_error"},
                )
    finally:
        context.reset_request_id(token)
    line = json.loads(stream.getvalue())
    expected = {
        "timestamp",
        "level",
        "logger",
        "module",
        "message",
        "user_id",
        "provider",
        "operation",
        "duration",
        "error_type",
        "process_id",
        "thread_id",
        "traceback",
        "request_id",
    }
    assert expected <= line.keys()
    assert line["level"] == "ERROR"
    assert line["request_id"] == "req-77"
    assert line["user_id"] == "patient-1"
    assert line["error_type"] == "network_error"
    assert line["timestamp"].endswith("Z")
    assert isinstance(line["traceback"], list)
    assert "abcdef123456" not in stream.getvalue()


def test_secrets_in_extra_fields_are_scrubbed() -> None:
    logger, stream = _logger(OheJsonFormatter())
    logger.info("token exchange", extra={"response": {"access_token": "zzz-secret", "ok": 1}})
    line = json.loads(stream.getvalue())
    assert line["response"] == {"access_token": "***", "ok": 1}


def test_text_format_is_readable_and_scrubbed() -> None:
    logger, stream = _logger(OheTextFormatter())
    logger.warning("refresh failed for Bearer abc.def.ghi", extra={"provider": "withings"})
    out = stream.getvalue()
    assert "WARNING" in out and "provider=withings" in out
    assert "abc.def.ghi" not in out
