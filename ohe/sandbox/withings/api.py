"""The Withings API surface: one table of (path, action) → endpoint, one request pipeline.

Pipeline of every call, in order: outage (HTTP 503, nothing else happens) → application rate
limit (status 601, the work is not done) → action lookup (503) → injected fault on data calls →
bearer token (401) → scope (277) → handler. Errors are envelopes on HTTP 200 (§1.3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import activity, devices, heart, measure, notify, sleep, tokens
from .context import Caller, Sandbox
from .params import Params
from .status import ApiError, Status, envelope, invalid

log = logging.getLogger(__name__)

Handler = Callable[[Sandbox, Caller, Params], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    handler: Handler
    scope: str | None  # None: checked by the handler itself (notify: depends on appli)
    data: bool = True  # data calls are the ones fault injection applies to


ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    ("/measure", "getmeas"): Endpoint(measure.getmeas, "user.metrics"),
    ("/v2/measure", "getactivity"): Endpoint(activity.getactivity, "user.activity"),
    ("/v2/measure", "getintradayactivity"): Endpoint(activity.getintradayactivity, "user.activity"),
    ("/v2/sleep", "getsummary"): Endpoint(sleep.getsummary, "user.activity"),
    ("/v2/sleep", "get"): Endpoint(sleep.get, "user.activity"),
    ("/v2/heart", "list"): Endpoint(heart.list_, "user.metrics"),
    ("/v2/heart", "get"): Endpoint(heart.get, "user.metrics"),
    ("/v2/user", "getdevice"): Endpoint(devices.getdevice, "user.info"),
    **{
        ("/notify", action): Endpoint(handler, None, data=False)
        for action, handler in notify.ACTIONS.items()
    },
}
OAUTH2_PATH = "/v2/oauth2"
PATHS = sorted({path for path, _ in ENDPOINTS} | {OAUTH2_PATH})

bp = Blueprint("withings_api", __name__)


def sandbox() -> Sandbox:
    return current_app.extensions["withings_sandbox"]


def dispatch() -> Response:
    sb = sandbox()
    if sb.faults.settings.outage:
        return Response("Service Unavailable", status=503, mimetype="text/plain")
    if not sb.limiter.admit():
        sb.stats.limited()
        return envelope(Status.TOO_MANY_REQUESTS)
    path, params = request.path, Params(request.form)
    action = params.text("action") or ""
    sb.stats.call(f"{path} {action}")
    try:
        return envelope(Status.OK, _handle(sb, path, action, params))
    except ApiError as exc:
        log.info("%s action=%s -> status %s", path, action, exc)
        return envelope(exc.status)


def _handle(sb: Sandbox, path: str, action: str, params: Params) -> dict[str, Any]:
    if path == OAUTH2_PATH:
        if action != "requesttoken":
            raise invalid(f"unknown oauth2 action {action!r}")
        return tokens.request_token(sb, params)
    endpoint = ENDPOINTS.get((path, action))
    if endpoint is None:
        raise invalid(f"unknown action {action!r} on {path}")
    if endpoint.data and (status := sb.faults.trip()) is not None:
        sb.stats.fault()
        raise ApiError(status, "injected fault")
    caller = tokens.authenticate(sb, request.headers.get("Authorization"))
    if endpoint.scope is not None and endpoint.scope not in caller.scopes:
        raise ApiError(Status.UNAUTHORIZED, f"{action} needs {endpoint.scope}")
    return endpoint.handler(sb, caller, params)


for _path in PATHS:
    bp.add_url_rule(_path, f"api{_path.replace('/', '_')}", dispatch, methods=["POST"])
