"""Remove secrets from text before it reaches a log line, a metric label or an error body.

Provider tokens, OAuth codes, client secrets, API keys, bearer headers and URL passwords are
replaced by ``***``. Applied by the log formatters to the message, the traceback and every extra
field, so a library that logs a URL with ``access_token=`` in it cannot leak it either.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values first, so the key=value rule below sees them masked.
    (re.compile(r"(?i)\b(bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]+"), r"\1 " + MASK),
    # key=value, key: value, "key": "value" for secret-bearing names
    (
        re.compile(
            r"(?i)\b((?:access|refresh|id)_token|client_secret|code_verifier|password|passwd|"
            r"secret|api_key|apikey|token|code|authorization)"
            r"(\"?'?\s*[:=]\s*\"?'?)"
            r"(?!\*\*\*|(?:bearer|basic)\s)([^\"'&\s,;}]+)"
        ),
        r"\1\2" + MASK,
    ),
    (re.compile(r"\bohe_[A-Za-z0-9_-]{40,}"), "ohe_" + MASK),  # API keys: 43 chars
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\1" + MASK + "@"),
)


def scrub(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_value(value: Any) -> Any:
    """Scrub strings inside simple JSON-like values (str, list, tuple, dict)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    if isinstance(value, dict):
        return {
            k: (MASK if _SECRET_KEY.search(str(k)) else scrub_value(v)) for k, v in value.items()
        }
    return value


_SECRET_KEY = re.compile(r"(?i)(token|secret|password|authorization|api_key|code_verifier)")
