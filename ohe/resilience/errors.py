"""The operations guide's error classes, as exception types and one classification table.

Every failure that leaves a provider client, the FHIR client or a task is one of these, so a
metric label, a log line's ``error_type`` and the retry decision all come from the same place.
"""

from __future__ import annotations

import enum
import socket

import requests


class ErrorClass(enum.StrEnum):
    API = "api_error"
    AUTH = "auth_error"
    RATE_LIMIT = "rate_limit_error"
    NETWORK = "network_error"
    VALIDATION = "validation_error"
    CIRCUIT_BREAKER = "circuit_breaker"


# The guide's table: which classes are worth retrying (auth is handled by refresh, not retry).
RETRYABLE: frozenset[ErrorClass] = frozenset(
    {ErrorClass.API, ErrorClass.RATE_LIMIT, ErrorClass.NETWORK, ErrorClass.CIRCUIT_BREAKER}
)


class OheError(Exception):
    """Base of classified failures. ``retry_after`` is a server hint in seconds, if any."""

    error_class: ErrorClass = ErrorClass.API

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def error_type(self) -> str:
        return self.error_class.value

    @property
    def retryable(self) -> bool:
        return self.error_class in RETRYABLE


class ApiError(OheError):
    error_class = ErrorClass.API


class AuthError(OheError):
    error_class = ErrorClass.AUTH


class RateLimitError(OheError):
    error_class = ErrorClass.RATE_LIMIT


class NetworkError(OheError):
    error_class = ErrorClass.NETWORK


class ValidationError(OheError):
    error_class = ErrorClass.VALIDATION


class CircuitOpenError(OheError):
    error_class = ErrorClass.CIRCUIT_BREAKER


# Exceptions from libraries, mapped by type (first match wins, so order subclasses first).
_BY_TYPE: tuple[tuple[type[BaseException], ErrorClass], ...] = (
    (requests.Timeout, ErrorClass.NETWORK),
    (requests.ConnectionError, ErrorClass.NETWORK),
    (socket.timeout, ErrorClass.NETWORK),
    (ConnectionError, ErrorClass.NETWORK),
    (TimeoutError, ErrorClass.NETWORK),
)

# HTTP status codes of upstream answers (the guide: 5xx api, 401 auth, 429 rate, 400 validation).
_BY_STATUS: dict[int, ErrorClass] = {
    400: ErrorClass.VALIDATION,
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.VALIDATION,
    409: ErrorClass.API,
    410: ErrorClass.VALIDATION,
    412: ErrorClass.API,
    422: ErrorClass.VALIDATION,
    429: ErrorClass.RATE_LIMIT,
}

_EXCEPTION_FOR: dict[ErrorClass, type[OheError]] = {
    ErrorClass.API: ApiError,
    ErrorClass.AUTH: AuthError,
    ErrorClass.RATE_LIMIT: RateLimitError,
    ErrorClass.NETWORK: NetworkError,
    ErrorClass.VALIDATION: ValidationError,
    ErrorClass.CIRCUIT_BREAKER: CircuitOpenError,
}


def classify(exc: BaseException) -> ErrorClass:
    """The error class of any exception; unknown failures count as ``api_error``."""
    if isinstance(exc, OheError):
        return exc.error_class
    for exc_type, error_class in _BY_TYPE:
        if isinstance(exc, exc_type):
            return error_class
    return ErrorClass.API


def class_for_status(status: int) -> ErrorClass:
    if status >= 500:
        return ErrorClass.API
    return _BY_STATUS.get(status, ErrorClass.VALIDATION)


def error_for_status(status: int, message: str, retry_after: float | None = None) -> OheError:
    """The exception to raise for an upstream HTTP status."""
    return _EXCEPTION_FOR[class_for_status(status)](message, retry_after=retry_after)


def error_of_class(
    error_class: ErrorClass, message: str, retry_after: float | None = None
) -> OheError:
    return _EXCEPTION_FOR[error_class](message, retry_after=retry_after)
