"""Withings ``status`` codes → OHE error classes, as one table of groups (provider-apis.md §1.3).

Withings answers almost everything with HTTP 200 and puts the outcome in the envelope's
``status``. Its published table is long and its individual meanings are partly unconfirmed, so
we act on the *groups* open-source clients agree on (python_withings_api's constants), never on
single numbers: a group decides the error class (and therefore the retry decision and the
breaker accounting), a status in no group is treated as a transient ``api_error`` and logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ohe.resilience.errors import ErrorClass

OK = 0
BAD_CALLBACK = 293  # notify subscribe: the callback URL failed Withings' checks
NO_SUCH_SUBSCRIPTION = frozenset({286, 294})  # notify get/revoke of an unknown subscription
RATE_LIMIT_RETRY_AFTER = 60.0  # seconds: Withings counts calls per rolling minute


def _codes(*parts: int | tuple[int, int]) -> frozenset[int]:
    """Single codes and inclusive (first, last) spans, so the table reads like the docs."""
    out: set[int] = set()
    for part in parts:
        if isinstance(part, tuple):
            out.update(range(part[0], part[1] + 1))
        else:
            out.add(part)
    return frozenset(out)


AUTH_FAILED = _codes(100, 101, 102, 200, 401)
UNAUTHORIZED = _codes(214, 277, 2553, 2554, 2555)
INVALID_PARAMS = _codes(
    (201, 213), 216, 217, 218, 220, 221, 223, 225, (227, 230), (234, 236), 238, (240, 252),
    254, (260, 267), 271, 272, 275, 276, (283, 288), 290, (293, 295), 297, (300, 304), 321,
    (323, 353), (380, 382), 400, (501, 506), (509, 511), 523, 532, (3017, 3019),
)  # fmt: skip
ERROR_OCCURRED = _codes(
    215, 219, 222, 224, 226, 231, 233, 237, 253, (255, 259), (268, 270), 273, 274, (278, 282),
    289, 291, 292, 296, 298, 305, 306, (308, 320), 322, (370, 375), 383, 391, 402, (516, 521),
    (525, 531), 533, 602, 700, (1051, 1054), 2551, 2552, (2556, 2559), (3000, 3016),
    (3020, 3024), 5000, 5001, 5005, 5006, 6000, 6010, 6011, 9000, 10000,
)  # fmt: skip


@dataclass(frozen=True)
class StatusGroup:
    """One row of the table: what the group means and what OHE does about it."""

    name: str
    error_class: ErrorClass
    codes: frozenset[int]
    retry_after: float | None = None


GROUPS: tuple[StatusGroup, ...] = (
    # refresh the access token once, retry the call once
    StatusGroup("authentication failed", ErrorClass.AUTH, AUTH_FAILED),
    # permanent for this request: a client bug, a wrong action or a missing scope
    StatusGroup("unauthorized for this call", ErrorClass.VALIDATION, UNAUTHORIZED),
    # permanent: bad parameters, bad/reused code or refresh token, bad callback URL (293)
    StatusGroup("invalid parameters", ErrorClass.VALIDATION, INVALID_PARAMS),
    StatusGroup("timeout", ErrorClass.API, frozenset({522})),
    StatusGroup("bad state", ErrorClass.API, frozenset({524})),
    StatusGroup(
        "too many requests", ErrorClass.RATE_LIMIT, frozenset({601}), RATE_LIMIT_RETRY_AFTER
    ),
    # server side: transient, retried with backoff and counted by the breaker
    StatusGroup("an error occurred", ErrorClass.API, ERROR_OCCURRED),
)
UNKNOWN = StatusGroup("unknown status", ErrorClass.API, frozenset())

_BY_CODE: dict[int, StatusGroup] = {code: group for group in GROUPS for code in group.codes}


def group_of(status: int) -> StatusGroup:
    """The group of a non-zero status (``UNKNOWN`` for codes in none of them)."""
    return _BY_CODE.get(status, UNKNOWN)


def overlapping(groups: Iterable[StatusGroup] = GROUPS) -> set[int]:
    """Codes listed in more than one group (the table is wrong if this is not empty)."""
    seen: set[int] = set()
    twice: set[int] = set()
    for group in groups:
        twice |= seen & group.codes
        seen |= group.codes
    return twice
