"""``POST /notify`` (subscribe, get, list, revoke, update) and the fan-out of data changes.

Departure from real Withings, on purpose: callback URLs may use http, any port, localhost or
a bare IP, because the receivers in a sandbox run on the developer's machine. The rest of the
validation (a ``HEAD`` that must answer 2xx, at most 255 characters) is enforced, with status
293 on failure, as in §1.10.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from .context import Caller, Sandbox
from .params import Params
from .status import ApiError, Status, invalid
from .tables import APPLI_SCOPES

NEVER_EXPIRES = 2_147_483_647  # ``expires`` of a subscription as observed: the 32-bit maximum


def _appli(p: Params, caller: Caller, name: str = "appli", default: int | None = None) -> int:
    appli = p.integer(name, default=default)
    if appli is None or appli not in APPLI_SCOPES:
        raise invalid(f"{name} {appli} is not a notification category")
    if APPLI_SCOPES[appli] not in caller.scopes:
        raise ApiError(Status.UNAUTHORIZED, f"appli {appli} needs {APPLI_SCOPES[appli]}")
    return appli


def check_callback(sb: Sandbox, url: str) -> None:
    """The subscribe-time validation: a well-formed URL whose ``HEAD`` answers 2xx."""
    parts = urlsplit(url)
    if len(url) > 255 or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(Status.BAD_CALLBACK, f"malformed callback {url!r}")
    try:
        status = requests.head(url, timeout=sb.config.callback_timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise ApiError(Status.BAD_CALLBACK, f"HEAD {url}: {type(exc).__name__}") from None
    if not 200 <= status.status_code < 300:
        raise ApiError(Status.BAD_CALLBACK, f"HEAD {url} answered {status.status_code}")


def subscribe(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    url = p.text("callbackurl", required=True) or ""
    appli = _appli(p, caller)
    check_callback(sb, url)
    sb.store.execute(
        "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (client_id, userid, appli, callbackurl) "
        "DO UPDATE SET comment = excluded.comment",
        (
            caller.client_id,
            caller.userid,
            appli,
            url,
            p.text("comment") or "",
            sb.clock.now(),
            NEVER_EXPIRES,
        ),
    )
    return {}


def get(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    url = p.text("callbackurl", required=True)
    appli = _appli(p, caller, default=1)  # "if no appli is specified, appli=1 is considered"
    row = sb.store.one(
        "SELECT * FROM subscriptions WHERE client_id = ? AND userid = ? AND appli = ? "
        "AND callbackurl = ?",
        (caller.client_id, caller.userid, appli, url),
    )
    if row is None:
        raise ApiError(Status.NO_SUCH_SUBSCRIPTION)
    return {"appli": row["appli"], "callbackurl": row["callbackurl"], "comment": row["comment"]}


def list_(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    sql = "SELECT * FROM subscriptions WHERE client_id = ? AND userid = ?"
    args: list[Any] = [caller.client_id, caller.userid]
    if (appli := p.integer("appli")) is not None:
        sql += " AND appli = ?"
        args.append(appli)
    rows = sb.store.all(sql + " ORDER BY appli, callbackurl", args)
    return {
        "profiles": [
            {
                "appli": r["appli"],
                "callbackurl": r["callbackurl"],
                "comment": r["comment"],
                "expires": r["expires"],
            }
            for r in rows
        ]
    }


def revoke(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    sql = "DELETE FROM subscriptions WHERE client_id = ? AND userid = ? AND callbackurl = ?"
    args: list[Any] = [caller.client_id, caller.userid, p.text("callbackurl", required=True)]
    if (appli := p.integer("appli")) is not None:
        sql += " AND appli = ?"
        args.append(appli)
    if sb.store.execute(sql, args).rowcount == 0:
        raise ApiError(Status.NOTHING_TO_REVOKE)
    return {}


def update(sb: Sandbox, caller: Caller, p: Params) -> dict[str, Any]:
    url = p.text("callbackurl", required=True)
    appli = _appli(p, caller)
    changes = [name for name in ("new_callbackurl", "new_appli", "comment") if p.has(name)]
    if len(changes) != 1:
        raise invalid("update needs exactly one of new_callbackurl, new_appli, comment")
    key = (caller.client_id, caller.userid, appli, url)
    where = "client_id = ? AND userid = ? AND appli = ? AND callbackurl = ?"
    if sb.store.one(f"SELECT 1 FROM subscriptions WHERE {where}", key) is None:  # noqa: S608
        raise ApiError(Status.NO_SUCH_SUBSCRIPTION)
    if changes == ["new_callbackurl"]:
        new_url = p.text("new_callbackurl") or ""
        check_callback(sb, new_url)
        assignment, value = "callbackurl = ?", new_url
    elif changes == ["new_appli"]:
        assignment, value = "appli = ?", _appli(p, caller, "new_appli")
    else:
        assignment, value = "comment = ?", p.text("comment") or ""
    sb.store.execute(
        f"UPDATE OR REPLACE subscriptions SET {assignment} WHERE {where}",  # noqa: S608
        (value, *key),
    )
    return {}


ACTIONS = {"subscribe": subscribe, "get": get, "list": list_, "revoke": revoke, "update": update}


def notify_change(
    sb: Sandbox, userid: int, applis: set[int], startdate: int, enddate: int
) -> list[int]:
    """Queue one delivery per subscription of ``userid`` to any of ``applis``."""
    if not applis:
        return []
    marks = ",".join("?" * len(applis))
    now = sb.clock.now()
    ids = []
    with sb.store.tx() as conn:
        subs = conn.execute(
            f"SELECT * FROM subscriptions WHERE userid = ? AND appli IN ({marks})",  # noqa: S608
            (userid, *sorted(applis)),
        ).fetchall()
        for sub in subs:
            payload = {
                "userid": userid,
                "appli": sub["appli"],
                "startdate": startdate,
                "enddate": enddate,
            }
            cursor = conn.execute(
                "INSERT INTO deliveries (userid, appli, callbackurl, payload, created, state) "
                "VALUES (?, ?, ?, ?, ?, 'pending')",
                (userid, sub["appli"], sub["callbackurl"], orjson.dumps(payload).decode(), now),
            )
            ids.append(cursor.lastrowid)
    sb.dispatcher.enqueue(ids)
    return ids


def deliveries(sb: Sandbox, userid: int | None = None) -> list[dict[str, Any]]:
    rows = sb.store.all(
        "SELECT * FROM deliveries WHERE ? IS NULL OR userid = ? ORDER BY id", (userid, userid)
    )
    return [
        {
            "id": r["id"],
            "userid": r["userid"],
            "appli": r["appli"],
            "callbackurl": r["callbackurl"],
            "payload": orjson.loads(r["payload"]),
            "created": r["created"],
            "state": r["state"],
            "attempts": orjson.loads(r["attempts"]),
        }
        for r in rows
    ]


def subscriptions(sb: Sandbox, userid: int | None = None) -> list[dict[str, Any]]:
    rows = sb.store.all(
        "SELECT * FROM subscriptions WHERE ? IS NULL OR userid = ? ORDER BY userid, appli",
        (userid, userid),
    )
    return [dict(r) for r in rows]
