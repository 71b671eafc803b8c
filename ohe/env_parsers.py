"""How one setting is declared and how its raw environment string becomes a typed value.

Each parser takes the raw string and returns the typed value or raises ``ValueError`` whose
message says what is expected; its ``expect`` attribute is the short form the README table
shows. Kept apart from :mod:`ohe.settings` so that module is the table of settings alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet

N = TypeVar("N", int, float)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message is one line naming the variable."""


@dataclass(frozen=True)
class BreakerSpec:
    """Thresholds of one circuit breaker: failures to open, successes to close, seconds open."""

    fail_max: int
    success_threshold: int
    reset_timeout: float

    def __str__(self) -> str:
        return f"{self.fail_max}/{self.success_threshold}/{self.reset_timeout:g}"


def text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("a non-empty value")
    return raw.strip()


text.expect = "a non-empty value"  # type: ignore[attr-defined]


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    return _bounded(int, "an integer", "", low, high)


def number(low: float, high: float | None = None) -> Callable[[str], float]:
    return _bounded(float, "a number", "g", low, high)


def _bounded(
    cast: Callable[[str], N], noun: str, spec: str, low: N, high: N | None
) -> Callable[[str], N]:
    """A parser of ``cast`` values within [low, high] whose error says the range."""
    expect = (
        f"{noun} >= {low:{spec}}" if high is None else f"{noun} from {low:{spec}} to {high:{spec}}"
    )

    def parse(raw: str) -> N:
        try:
            value = cast(raw.strip())
        except ValueError:
            raise ValueError(expect) from None
        if value < low or (high is not None and value > high):
            raise ValueError(expect)
        return value

    parse.expect = expect  # type: ignore[attr-defined]
    return parse


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("true or false (also 1/0, yes/no, on/off)")


boolean.expect = "true or false"  # type: ignore[attr-defined]


def choice(*choices: str, upper: bool = False) -> Callable[[str], str]:
    expect = "one of " + ", ".join(choices)

    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in choices:
            raise ValueError(expect)
        return value

    parse.expect = expect  # type: ignore[attr-defined]
    return parse


def url(*schemes: str) -> Callable[[str], str]:
    expect = "a URL starting with " + " or ".join(f"{s}://" for s in schemes)

    def parse(raw: str) -> str:
        value = raw.strip()
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in schemes:
            raise ValueError(expect)
        return value.rstrip("/") if scheme.startswith("http") else value

    parse.expect = expect  # type: ignore[attr-defined]
    return parse


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An empty value means "not set" (None); anything else must satisfy ``parse``."""

    def wrapped(raw: str) -> Any:
        return None if not raw.strip() else parse(raw)

    wrapped.expect = getattr(parse, "expect", "a value") + ", or empty"  # type: ignore[attr-defined]
    return wrapped


def path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("a directory path")
    return Path(raw.strip())


path.expect = "a directory path"  # type: ignore[attr-defined]


def fernet_keys(raw: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ValueError("one or more Fernet keys, comma-separated (newest first)")
    for key in keys:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ValueError(
                "comma-separated Fernet keys (32 url-safe base64 bytes each; "
                "make one with `ohe generate-key`)"
            ) from None
    return keys


fernet_keys.expect = "comma-separated Fernet keys"  # type: ignore[attr-defined]

_LOGGER_NAME = re.compile(r"^[A-Za-z_][\w.]*$")


def log_levels(raw: str) -> dict[str, str]:
    expect = "comma-separated logger=LEVEL pairs, e.g. ohe.providers=DEBUG,celery=WARNING"
    levels: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, sep, level = part.partition("=")
        if (
            not sep
            or not _LOGGER_NAME.match(name.strip())
            or level.strip().upper() not in LOG_LEVELS
        ):
            raise ValueError(expect)
        levels[name.strip()] = level.strip().upper()
    return levels


log_levels.expect = "logger=LEVEL pairs"  # type: ignore[attr-defined]


def basic_auth(raw: str) -> str:
    user, sep, password = raw.strip().partition(":")
    if not sep or not user or not password:
        raise ValueError("user:password")
    return raw.strip()


basic_auth.expect = "user:password"  # type: ignore[attr-defined]


def breaker(raw: str) -> BreakerSpec:
    expect = "failures/successes/seconds, e.g. 3/2/30"
    parts = raw.strip().split("/")
    if len(parts) != 3:
        raise ValueError(expect)
    try:
        spec = BreakerSpec(int(parts[0]), int(parts[1]), float(parts[2]))
    except ValueError:
        raise ValueError(expect) from None
    if spec.fail_max < 1 or spec.success_threshold < 1 or spec.reset_timeout <= 0:
        raise ValueError(expect)
    return spec


breaker.expect = "failures/successes/seconds"  # type: ignore[attr-defined]


def word_list(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


word_list.expect = "a comma-separated list"  # type: ignore[attr-defined]


def setting(
    default: Any,
    doc: str,
    *,
    env: str,
    parse: Callable[[str], Any] = text,
    aliases: tuple[str, ...] = (),
    secret: bool = False,
    production_required: bool = False,
) -> Any:
    """Declare one setting; ``default`` may be a callable of the settings read so far."""
    metadata = {
        "env": env,
        "parse": parse,
        "aliases": aliases,
        "doc": doc,
        "secret": secret,
        "production_required": production_required,
        "default": default,
    }
    if callable(default):
        return field(default=None, metadata=metadata)
    return field(default=default, metadata=metadata)
