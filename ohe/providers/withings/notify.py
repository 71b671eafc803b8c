"""Withings notifications: parsing a webhook, and ``POST /notify`` subscribe / revoke / list.

A Withings webhook is an unsigned form (``userid``, ``appli``, optional ``startdate`` /
``enddate``, ``action`` for user events), so it is only ever a hint — "fetch these streams of
this user for this window" — and is validated strictly: every error names the field. Extra
fields are ignored, as Withings asks. Subscriptions are per user and per appli: one call each.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from ohe.providers.base import Notification, Subscription, TokenSource
from ohe.providers.withings import statuses
from ohe.providers.withings.api import WithingsApi
from ohe.providers.withings.streams import APPLI_STREAMS, USER_ACTION_APPLI, USER_ACTIONS
from ohe.resilience.errors import OheError, ValidationError

log = logging.getLogger(__name__)

PATH = "/notify"
_USERID = re.compile(r"[0-9]{1,20}")
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_UNIX = re.compile(r"[0-9]{1,12}")
BAD_CALLBACK_MESSAGE = (
    "Withings rejected the callback URL (status 293): it must be a public HTTPS URL on port "
    "443 or 80 with a domain name (not an IP address), at most 255 characters, that answers a "
    "HEAD request with 2xx"
)


def parse_notification(form: Mapping[str, str]) -> Notification:
    userid = _field(form, "userid")
    if not _USERID.fullmatch(userid):
        raise ValidationError("userid must be the Withings user id (digits only)")
    appli_text = _field(form, "appli")
    if not _INTEGER.fullmatch(appli_text):
        raise ValidationError("appli must be an integer notification category")
    appli = int(appli_text)
    start, end = _unix(form, "startdate"), _unix(form, "enddate")
    if start is not None and end is not None and end < start:
        raise ValidationError("enddate must not be before startdate")
    streams = APPLI_STREAMS.get(appli)
    if streams is None:
        log.warning(
            "Withings notification of an unknown category; nothing to fetch",
            extra={"operation": "webhook", "provider": "withings", "appli": appli},
        )
        streams = ()
    action = None
    if appli == USER_ACTION_APPLI and (raw := (form.get("action") or "").strip()):
        action = raw.lower()
        if action not in USER_ACTIONS:
            raise ValidationError(f"action must be one of {', '.join(sorted(USER_ACTIONS))}")
    return Notification(userid, str(appli), streams, start, end, action)


def _field(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None or not str(value).strip():
        raise ValidationError(f"{name} is missing")
    return str(value).strip()


def _unix(form: Mapping[str, str], name: str) -> datetime | None:
    value = form.get(name)
    if value is None or not str(value).strip():
        return None
    if not _UNIX.fullmatch(str(value).strip()):
        raise ValidationError(f"{name} must be unix seconds")
    return datetime.fromtimestamp(int(str(value).strip()), UTC)


# --- subscriptions ---------------------------------------------------------------------------


def subscribe(
    api: WithingsApi,
    tokens: TokenSource,
    callback_url: str,
    categories: tuple[str, ...],
    comment: str,
) -> list[str]:
    """One ``subscribe`` per appli; the first refusal raises (the rest would fail alike)."""
    done = []
    for category in categories:
        api.call(
            PATH,
            "subscribe",
            {"callbackurl": callback_url, "appli": _appli(category), "comment": comment},
            tokens=tokens,
            refine=_bad_callback,
        )
        done.append(category)
    return done


def unsubscribe(
    api: WithingsApi, tokens: TokenSource, callback_url: str, categories: tuple[str, ...]
) -> None:
    """``revoke`` per appli; a subscription Withings does not know is already gone: fine."""
    for category in categories:
        api.call(
            PATH,
            "revoke",
            {"callbackurl": callback_url, "appli": _appli(category)},
            tokens=tokens,
            accept=statuses.NO_SUCH_SUBSCRIPTION,
        )


def subscriptions(api: WithingsApi, tokens: TokenSource) -> list[Subscription]:
    body = api.call(PATH, "list", {}, tokens=tokens)
    found = []
    for profile in body.get("profiles") or []:
        if not isinstance(profile, dict) or profile.get("appli") is None:
            continue
        comment = profile.get("comment")
        found.append(
            Subscription(
                category=str(profile["appli"]),
                callback_url=str(profile.get("callbackurl") or ""),
                comment=comment if isinstance(comment, str) and comment else None,
            )
        )
    return found


def _appli(category: str) -> int:
    if not _INTEGER.fullmatch(str(category).strip()):
        raise ValidationError("a Withings notification category (appli) is an integer")
    return int(str(category).strip())


def _bad_callback(status: int, error: OheError) -> OheError:
    return ValidationError(BAD_CALLBACK_MESSAGE) if status == statuses.BAD_CALLBACK else error
