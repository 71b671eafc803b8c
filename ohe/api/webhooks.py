"""Provider webhooks: verify, record, enqueue — and answer in milliseconds.

Withings notifications carry no signature; a notification is only a hint ("user X, category Y,
window Z changed"), so it is never trusted beyond "go and fetch". The optional secret path
segment (OHE_WEBHOOK_SECRET_SEGMENT) makes forged calls to the bare path 404. Known users get
a ledger row (the dedup ledger; an identical notification is coalesced until its sync starts)
and a task published after the commit; unknown users get 200 (so the provider stops
retrying) and are counted.
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import NotFound

from ohe.api.auth import public
from ohe.api.problems import ApiProblem
from ohe.crypto import sha256_hex
from ohe.extensions import db, state
from ohe.models import WebhookEvent
from ohe.observability.context import current_request_id
from ohe.observability.metrics import WEBHOOK_REQUESTS, WEBHOOK_TIME
from ohe.providers import provider as provider_named
from ohe.resilience.errors import ValidationError
from ohe.tasks.base import enqueue
from ohe.tasks.webhooks import coalesce, find_link, process

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

METHODS = ["GET", "HEAD", "POST"]


def _check_segment(segment: str | None) -> None:
    expected = state().settings.webhook_secret_segment
    if (expected or segment) and not hmac.compare_digest(
        (segment or "").encode(), (expected or "").encode()
    ):
        raise NotFound()


@bp.route("/withings/", methods=METHODS, defaults={"segment": None})
@bp.route("/withings/<segment>/", methods=METHODS)
@public
def withings(segment: str | None) -> Response | tuple[Response, int]:
    started = time.perf_counter()
    try:
        _check_segment(segment)
    except NotFound:
        WEBHOOK_REQUESTS.labels("withings", "not_found").inc()
        raise
    try:
        if request.method in ("GET", "HEAD"):
            # Withings checks the callback with HEAD (and some tools with GET) on subscribe.
            WEBHOOK_REQUESTS.labels("withings", "check").inc()
            return Response(request.args.get("challenge", ""), status=200, mimetype="text/plain")
        return _notification("withings")
    finally:
        WEBHOOK_TIME.labels("withings").observe(time.perf_counter() - started)


def _notification(provider: str) -> tuple[Response, int]:
    form = request.form.to_dict() or (request.get_json(silent=True) or {})
    if not isinstance(form, dict) or not form:
        WEBHOOK_REQUESTS.labels(provider, "invalid").inc()
        raise ApiProblem(400, "Empty notification: expected form fields userid and appli.",
                         slug="invalid-webhook")  # fmt: skip
    try:
        notification = provider_named(provider).parse_notification(
            {k: str(v) for k, v in form.items()}
        )
    except ValidationError as exc:
        WEBHOOK_REQUESTS.labels(provider, "invalid").inc()
        raise ApiProblem(400, f"Invalid notification: {exc}", slug="invalid-webhook") from None
    link = find_link(provider, notification.external_user_id)
    if link is None:
        WEBHOOK_REQUESTS.labels(provider, "unknown_user").inc()
        return jsonify({"status": "ignored", "provider": provider, "queued_tasks": 0, "tasks": [],
                        "message": "No active link for this user"}), 200  # fmt: skip
    fingerprint = sha256_hex("|".join([
        provider, notification.external_user_id, notification.category,
        str(notification.start), str(notification.end), notification.action or "",
    ]))  # fmt: skip
    first = coalesce(fingerprint)
    event = WebhookEvent(
        provider=provider,
        fingerprint=fingerprint,
        external_user_id=notification.external_user_id,
        category=notification.category,
        action=notification.action,
        window_start=notification.start,
        window_end=notification.end,
        link_id=link.id,
        status="pending" if first else "duplicate",
        request_id=current_request_id(),
    )
    db.session.add(event)
    db.session.flush()
    if first:
        enqueue(process.si(event.id).set(queue="webhooks"))
    db.session.commit()
    WEBHOOK_REQUESTS.labels(provider, "accepted" if first else "duplicate").inc()
    queued = [{"task_id": f"webhook-{event.id}", "user_id": link.ehr_user.ehr_user_id,
               "data_types": list(notification.streams)}] if first else []  # fmt: skip
    return jsonify(
        {
            "status": "accepted",
            "provider": provider,
            "queued_tasks": len(queued),
            "tasks": queued,
            "timestamp": datetime.now(UTC).isoformat(),
            "message": f"Successfully queued {len(queued)} health data sync tasks"
            if first
            else "Duplicate of a notification being processed; coalesced",
        }
    ), 202
