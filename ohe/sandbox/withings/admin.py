"""The sandbox's own JSON API under ``/_sandbox/``: drive the simulated world from tests.

Not part of the Withings contract and not rate limited. Every data change made here notifies
the user's subscribers exactly as a device upload would (appli from the meastype table).
No authentication: the sandbox is meant to listen on localhost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, jsonify, request

from . import activity, heart, measure, notify, sleep
from .consent import AuthorizeRequest, with_query
from .context import Sandbox
from .generator import Group, local_midnight
from .stats import FaultSettings
from .tables import (
    APPLI_ACTIVITY,
    APPLI_ECG,
    APPLI_SLEEP,
    MEASTYPE_BY_ALIAS,
    MEASTYPES,
    applis_for_types,
    device_kind_for,
)
from .tokens import expire_access_tokens, issue_code
from .users import User, create_user, get_user, list_users, user_devices, valid_timezone

bp = Blueprint("withings_admin", __name__, url_prefix="/_sandbox")
MANUAL_ATTRIBS = frozenset({2, 4})


class AdminError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@bp.errorhandler(AdminError)
def _admin_error(exc: AdminError) -> tuple[Response, int]:
    return jsonify(error=str(exc)), exc.status


def _sb() -> Sandbox:
    return current_app.extensions["withings_sandbox"]


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and request.get_data():
        raise AdminError("the body must be JSON")
    return body or {}


def _user(userid: int) -> User:
    user = get_user(_sb(), userid)
    if user is None:
        raise AdminError(f"no user {userid}", 404)
    return user


def _int(body: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = body.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise AdminError(f"{name} must be an integer")
    return value


def _today(sb: Sandbox, user: User) -> str:
    return datetime.fromtimestamp(sb.clock.now(), ZoneInfo(user.timezone)).date().isoformat()


@bp.get("/health")
def health() -> Response:
    return jsonify(status="ok", client_id=_sb().config.client_id)


@bp.get("/users")
def users() -> Response:
    return jsonify(users=[u.as_json() for u in list_users(_sb())])


@bp.post("/users")
def new_user() -> tuple[Response, int]:
    body = _body()
    days = _int(body, "history_days", 30) or 0
    timezone = body.get("timezone")
    if not 0 <= days <= 3 * 365:
        raise AdminError("history_days must be between 0 and 1095")
    if timezone is not None and not valid_timezone(timezone):
        raise AdminError(f"unknown time zone {timezone!r}")
    return jsonify(create_user(_sb(), days, timezone).as_json()), 201


@bp.post("/authorize")
def authorize() -> Response:
    """The consent page without a browser: returns the code and the redirect it would follow."""
    sb, body = _sb(), _body()
    user = _user(_int(body, "userid") or 0)
    req = AuthorizeRequest.from_values(
        {
            "response_type": "code",
            "client_id": body.get("client_id", sb.config.client_id),
            "state": body.get("state", "sandbox"),
            "scope": body.get("scope", "user.info,user.metrics,user.activity"),
            "redirect_uri": body.get("redirect_uri", ""),
        }
    )
    if problem := req.problem(sb):
        raise AdminError(problem)
    code = issue_code(sb, req.client_id, user.userid, req.redirect_uri, ",".join(req.scopes))
    return jsonify(
        code=code, redirect=with_query(req.redirect_uri, {"code": code, "state": req.state})
    )


@dataclass(frozen=True)
class MeasureInput:
    """A measure group as the admin API accepts it, in real units."""

    measures: tuple[tuple[int, float], ...]
    date: int | None
    attrib: int | None

    @classmethod
    def parse(cls, body: dict[str, Any], *, partial: bool) -> MeasureInput:
        pairs = [(MEASTYPE_BY_ALIAS[k], v) for k, v in body.items() if k in MEASTYPE_BY_ALIAS]
        if "meastype" in body:
            pairs.append((body["meastype"], body.get("value")))
        listed = body.get("measures", [])
        if not isinstance(listed, list) or not all(isinstance(m, dict) for m in listed):
            raise AdminError('measures is a list of {"type": <meastype>, "value": <number>}')
        pairs += [(m.get("type"), m.get("value")) for m in listed]
        for mtype, value in pairs:
            if mtype not in MEASTYPES or isinstance(value, bool):
                raise AdminError(f"unsupported meastype {mtype!r} (known: {sorted(MEASTYPES)})")
            if not isinstance(value, int | float):
                raise AdminError(f"meastype {mtype} needs a numeric value")
        if not pairs and not partial:
            raise AdminError("no measure given (e.g. weight_kg, or meastype + value)")
        return cls(tuple(pairs), _int(body, "date"), _int(body, "attrib"))


def _notify_measure(change: measure.Change) -> list[int]:
    dates = change.dates
    applis = applis_for_types(set(change.types))
    return notify.notify_change(_sb(), change.userid, applis, min(dates), max(dates) + 1)


@bp.post("/users/<int:userid>/measures")
def add_measure(userid: int) -> tuple[Response, int]:
    sb = _sb()
    _user(userid)
    data = MeasureInput.parse(_body(), partial=False)
    now = sb.clock.now()
    attrib = 0 if data.attrib is None else data.attrib
    kind = device_kind_for({t for t, _ in data.measures})
    device = None if attrib in MANUAL_ATTRIBS else user_devices(sb, userid).get(kind or "")
    group = Group(attrib, data.date or now, now, device, data.measures)
    change = measure.add_group(sb, userid, group)
    return jsonify(grpid=change.grpid, notifications=_notify_measure(change)), 201


@bp.route("/users/<int:userid>/measures/<int:grpid>", methods=["PATCH", "DELETE"])
def change_measure(userid: int, grpid: int) -> Response:
    sb = _sb()
    try:
        if request.method == "DELETE":
            change = measure.delete_group(sb, userid, grpid)
        else:
            data = MeasureInput.parse(_body(), partial=True)
            change = measure.edit_group(
                sb, userid, grpid, measures=data.measures, date=data.date, attrib=data.attrib
            )
    except measure.NotFound as exc:
        raise AdminError(str(exc), 404) from None
    return jsonify(grpid=grpid, notifications=_notify_measure(change))


@bp.post("/users/<int:userid>/ecg")
def add_ecg(userid: int) -> tuple[Response, int]:
    sb, body = _sb(), _body()
    _user(userid)
    timestamp = _int(body, "timestamp") or sb.clock.now()
    afib = _int(body, "afib", 0)
    if afib not in (0, 1, 2):
        raise AdminError("afib is 0 (negative), 1 (positive) or 2 (inconclusive)")
    try:
        signalid = heart.add_recording(
            sb, userid, timestamp=timestamp, afib=afib, heart_rate=_int(body, "heart_rate", 72)
        )
    except LookupError as exc:
        raise AdminError(str(exc), 409) from None
    ids = notify.notify_change(sb, userid, {APPLI_ECG}, timestamp, timestamp + 1)
    return jsonify(signalid=signalid, notifications=ids), 201


@bp.post("/users/<int:userid>/activity")
def set_activity(userid: int) -> Response:
    sb, body = _sb(), dict(_body())
    user = _user(userid)
    day = body.pop("date", None) or _today(sb, user)
    if not isinstance(day, str):
        raise AdminError("date is YYYY-MM-DD")
    try:
        start, end = activity.upsert_day(sb, userid, day, body)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    ids = notify.notify_change(sb, userid, {APPLI_ACTIVITY}, start, end)
    return jsonify(date=day, notifications=ids)


@bp.post("/users/<int:userid>/sleep")
def add_sleep(userid: int) -> tuple[Response, int]:
    """A completed night; default: last night, 23:00 to 07:00 local time."""
    sb, body = _sb(), _body()
    user = _user(userid)
    morning = local_midnight(user.timezone, _today(sb, user)) + 7 * 3600
    start = _int(body, "startdate") or morning - 8 * 3600
    end = _int(body, "enddate") or morning
    night_date = body.get("date") or (
        datetime.fromtimestamp(end, ZoneInfo(user.timezone)).date().isoformat()
    )
    if not isinstance(night_date, str) or len(night_date) != 10:
        raise AdminError("date is YYYY-MM-DD")
    try:
        sleep_id = sleep.add_night(sb, userid, start, end, night_date)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    ids = notify.notify_change(sb, userid, {APPLI_SLEEP}, start, end)
    return jsonify(id=sleep_id, notifications=ids), 201


@bp.post("/users/<int:userid>/expire-token")
def expire_token(userid: int) -> Response:
    _user(userid)
    return jsonify(expired=expire_access_tokens(_sb(), userid, _body().get("client_id")))


@bp.delete("/users/<int:userid>/devices/<deviceid>")
def remove_device(userid: int, deviceid: str) -> Response:
    """The user unpaired a device from the account: it leaves ``getdevice`` (no notification:
    Withings sends none for this either)."""
    _user(userid)
    removed = (
        _sb()
        .store.execute("DELETE FROM devices WHERE userid = ? AND deviceid = ?", (userid, deviceid))
        .rowcount
    )
    if not removed:
        raise AdminError(f"user {userid} has no device {deviceid}", 404)
    return jsonify(removed=deviceid)


@bp.get("/subscriptions")
def subscriptions() -> Response:
    userid = request.args.get("userid", type=int)
    return jsonify(subscriptions=notify.subscriptions(_sb(), userid))


@bp.get("/deliveries")
def deliveries() -> Response:
    userid = request.args.get("userid", type=int)
    return jsonify(deliveries=notify.deliveries(_sb(), userid))


@bp.route("/faults", methods=["GET", "POST", "DELETE"])
def faults() -> Response:
    """``{"status": 522, "rate": 0.5}``: that status on a share of data calls;
    ``{"outage": true}``: HTTP 503 on every API call; ``{}`` or DELETE: back to normal."""
    sb = _sb()
    if request.method != "GET":
        body = {} if request.method == "DELETE" else _body()
        rate = body.get("rate", 1.0 if body.get("status") else 0.0)
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise AdminError("rate must be between 0 and 1")
        settings = FaultSettings(
            _int(body, "status", 0) or 0, float(rate), bool(body.get("outage"))
        )
        sb.faults.configure(settings)
    s = sb.faults.settings
    return jsonify(status=s.status, rate=s.rate, outage=s.outage)


@bp.get("/stats")
def stats() -> Response:
    sb = _sb()
    limiter = sb.limiter
    return jsonify(sb.stats.as_json(limiter.max_seen, limiter.limit, limiter.window))


@bp.post("/stats/reset")
def reset_stats() -> Response:
    sb = _sb()
    sb.stats.reset()
    sb.limiter.reset_stats()
    return jsonify(status="reset")


@bp.route("/clock", methods=["GET", "POST"])
def clock() -> Response:
    """``{"advance": seconds}`` moves simulated time forward (token and code lifetimes)."""
    sb = _sb()
    if request.method == "POST":
        advance = _body().get("advance", 0)
        if not isinstance(advance, int | float) or advance < 0:
            raise AdminError("advance must be a non-negative number of seconds")
        sb.clock.advance(advance)
    return jsonify(now=sb.clock.now(), offset=sb.clock.offset)
