"""Errors as FHIR: every failure this server reports is an OperationOutcome.

Interactions raise :class:`FhirError`; the HTTP layer and the bundle processor turn it into a
response or a bundle entry. Keeping one error type means no code path can answer with a
non-FHIR error body, which is what a client written against a real server expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

STATUS_TEXT: Mapping[int, str] = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

#: The OperationOutcome issue type that best describes each HTTP status, for generic errors.
ISSUE_FOR_STATUS: Mapping[int, str] = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


def status_line(status: int) -> str:
    """``201 Created`` — the form Bundle ``entry.response.status`` uses."""
    text = STATUS_TEXT.get(status)
    return f"{status} {text}" if text else str(status)


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue; ``expression`` is a FHIRPath-like location when known."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict:
        issue: dict = {"severity": self.severity, "code": self.code}
        issue["diagnostics"] = self.diagnostics
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def outcome(issues: Sequence[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def information(text: str) -> dict:
    """A success OperationOutcome (``Prefer: return=OperationOutcome``, deletes)."""
    return outcome([Issue("informational", text, severity="information")])


@dataclass
class FhirError(Exception):
    """An HTTP error answered with an OperationOutcome."""

    status: int
    issues: list[Issue]
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues)

    @classmethod
    def of(
        cls,
        status: int,
        diagnostics: str,
        *,
        code: str | None = None,
        expression: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> FhirError:
        code = code or ISSUE_FOR_STATUS.get(status, "exception")
        where = (expression,) if expression else ()
        return cls(status, [Issue(code, diagnostics, expression=where)], dict(headers or {}))

    def outcome(self) -> dict:
        return outcome(self.issues)

    def at(self, location: str) -> FhirError:
        """The same error, located inside a bundle entry (``Bundle.entry[3]``)."""
        located = [
            Issue(i.code, f"{location}: {i.diagnostics}", i.severity, (location, *i.expression))
            for i in self.issues
        ]
        return FhirError(self.status, located, self.headers)
