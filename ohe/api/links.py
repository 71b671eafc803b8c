"""Linking API: the EHR backend asks for a link URL; the patient's browser does the rest.

``POST /api/base/link/<provider>/`` (API key) returns a signed, short-lived link URL. The
patient opens it (no credentials needed: the signature is the credential), consents at the
provider, and comes back to the callback, which ends on a success or error page — or, when the
EHR gave ``success_url``/``error_url`` (e.g. a mobile deep link), redirects there with
``provider``, ``ehr_user_id``, ``status`` (and ``error``, ``message``) parameters.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, render_template, request
from sqlalchemy import select

from ohe.api import inputs
from ohe.api.auth import public
from ohe.api.problems import ApiProblem
from ohe.extensions import db, state
from ohe.models import EHRUser, LinkAttempt, LinkStatus, ProviderLink
from ohe.providers.rows import provider_row
from ohe.tasks.linking import (
    LinkFailure,
    complete_link,
    ehr_user,
    open_link,
    record_failure,
    start_attempt,
)
from ohe.tasks.links import revoke_link

bp = Blueprint("links", __name__)


def _provider(name: str) -> str:
    if name not in state().settings.providers:
        available = ", ".join(state().settings.providers)
        raise ApiProblem(
            404,
            f"Unknown or disabled provider {name!r}; available: {available}",
            slug="unknown-provider",
        )
    return name


def _existing_user(ehr_user_id: str) -> EHRUser:
    user = db.session.scalar(select(EHRUser).where(EHRUser.ehr_user_id == ehr_user_id))
    if user is None:
        raise ApiProblem(404, f"EHR user {ehr_user_id} not found", slug="unknown-ehr-user")
    return user


@bp.post("/api/base/link/<provider>/")
def create_link(provider: str) -> tuple[Response, int]:
    """A signed link URL for one patient, valid for OHE_LINK_URL_TTL seconds."""
    provider = _provider(provider)
    user, attempt, url = _attempt(provider, inputs.body())
    return jsonify(
        {
            "link_url": url,
            "expires_at": attempt.expires_at.isoformat(),
            "provider": provider,
            "ehr_user_id": user.ehr_user_id,
        }
    ), 201


@bp.get("/api/base/link/<provider>/")
def start_link(provider: str) -> Response:
    """Older clients: same as POST, answered with a redirect to the link URL."""
    _, _, url = _attempt(_provider(provider), request.args.to_dict())
    return redirect(url, code=302)


def _attempt(provider: str, values: dict[str, Any]) -> tuple[EHRUser, LinkAttempt, str]:
    """Validate a link request's fields and commit its attempt: (patient, attempt, link URL)."""
    user = ehr_user(inputs.ehr_user_id(values))
    attempt, url = start_attempt(
        user,
        provider,
        inputs.optional_url(values, "success_url"),
        inputs.optional_url(values, "error_url"),
    )
    db.session.commit()
    return user, attempt, url


@bp.get("/link/<token>/")
@public
def follow_link(token: str) -> Response | tuple[str, int]:
    """The patient's browser: on to the provider's consent page (the signature authenticates)."""
    try:
        _, url = open_link(token)
    except LinkFailure as failure:
        record_failure(failure)
        return _finish(failure.attempt, failure)
    db.session.commit()
    return redirect(url, code=302)


@bp.get("/link/<provider>/callback/")
@public
def callback(provider: str) -> Response | tuple[str, int]:
    """The provider sends the browser back here with a code (or an error) and our state."""
    provider = _provider(provider)
    args = request.args
    try:
        link = complete_link(provider, args.get("state"), args.get("code"), args.get("error"))
    except LinkFailure as failure:
        record_failure(failure)
        return _finish(failure.attempt, failure)
    attempt = db.session.scalar(
        select(LinkAttempt).where(LinkAttempt.ehr_user_id == link.ehr_user_id,
                                  LinkAttempt.outcome == "linked")
        .order_by(LinkAttempt.completed_at.desc())
    )  # fmt: skip
    return _finish(attempt, None)


def _finish(attempt: LinkAttempt | None, failure: LinkFailure | None) -> Response | tuple[str, int]:
    provider = attempt.provider if attempt else None
    patient = attempt.ehr_user.ehr_user_id if attempt else None
    target = (attempt.error_url if failure else attempt.success_url) if attempt else None
    if target:
        params = {"provider": provider, "ehr_user_id": patient,
                  "status": "error" if failure else "success"}  # fmt: skip
        if failure:
            params.update(error=failure.code, message=failure.message)
        target = _with_params(target, params)
    page = render_template(
        "link_result.html",
        success=failure is None,
        title="Account linked" if failure is None else "Linking failed",
        message=(
            f"Your {(provider or '').title()} account is now linked; measurements will appear "
            "in your hospital record."
            if failure is None
            else failure.message
        ),
        reason=failure.code if failure else None,
        redirect=target,
    )
    return page, 200 if failure is None or target else failure.status


def _with_params(url: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: v for k, v in params.items() if v is not None})
    return urlunsplit(parts._replace(query=urlencode(query)))


@bp.get("/api/base/link/<provider>/status/")
def link_status(provider: str) -> Response:
    provider = _provider(provider)
    user = _existing_user(inputs.ehr_user_id(request.args.to_dict()))
    row = provider_row(provider)
    links = [link for link in user.links if link.provider_id == row.id]
    return jsonify(
        {
            "ehr_user_id": user.ehr_user_id,
            "provider": provider,
            "linked": any(link.status == LinkStatus.ACTIVE for link in links),
            "links": [
                {
                    "provider_name": row.name,
                    "provider_type": provider,
                    "external_user_id": link.external_user_id,
                    "active": link.status == LinkStatus.ACTIVE,
                    "status": link.status,
                    "status_reason": link.status_reason,
                    "linked_at": link.linked_at.isoformat(),
                }
                for link in links
            ],
            "total_links": len(links),
        }
    )


@bp.route("/api/base/link/<provider>/unlink/", methods=["POST", "DELETE"])
def unlink(provider: str) -> Response:
    """Stop syncing now; subscriptions, tokens and device associations are cleaned up by a worker.

    Observations already written stay, unless ``purge`` is true: then they are marked
    ``entered-in-error``.
    """
    provider = _provider(provider)
    values = inputs.inputs()
    user = _existing_user(inputs.ehr_user_id(values))
    purge = inputs.boolean(values, "purge")
    row = provider_row(provider)
    link = db.session.scalar(
        select(ProviderLink).where(ProviderLink.ehr_user_id == user.id,
                                   ProviderLink.provider_id == row.id,
                                   ProviderLink.status != LinkStatus.REVOKED.value)
    )  # fmt: skip
    if link is None:
        raise ApiProblem(
            404, f"No {provider} connection found for user {user.ehr_user_id}", slug="no-link"
        )
    revoke_link(link, reason="unlinked through the API", purge=purge)
    db.session.commit()
    return jsonify(
        {
            "message": f"Successfully unlinked {provider}",
            "ehr_user_id": user.ehr_user_id,
            "provider": provider,
            "status": "unlinked",
            "purge": purge,
        }
    )
