"""Withings OAuth2: the consent URL, the code exchange and the rotating refresh (§1.2).

Both grants are ``POST {api}/v2/oauth2 action=requesttoken`` with the ``{status, body}``
envelope (no Basic auth, the secret is a form field). Withings reports a bad, reused or expired
code or refresh token as a non-zero status (commonly 503, the invalid-params group), never as
an HTTP error, so the meaning is decided here: on exchange it is an ``AuthError`` the callback
can show, on refresh it is ``InvalidGrant`` (the link needs the patient again). Rate limits,
timeouts and server errors keep their retryable classes in both cases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ohe.providers.base import InvalidGrant, TokenSet
from ohe.providers.withings import statuses
from ohe.providers.withings.api import WithingsApi
from ohe.resilience.errors import ApiError, AuthError, OheError
from ohe.settings import Settings

OAUTH2_PATH, ACTION = "/v2/oauth2", "requesttoken"


def authorize_url(settings: Settings, state: str, redirect_uri: str) -> str:
    """The consent page; scopes are comma-separated (Withings does not use spaces).

    PKCE is not part of Withings' flow, so a code challenge is not sent.
    """
    query = {
        "response_type": "code",
        "client_id": _client(settings)[0],
        "state": state,
        "scope": ",".join(settings.withings_scopes),
        "redirect_uri": redirect_uri,
    }
    return f"{settings.withings_authorize_url}?{urlencode(query, safe=',')}"


def exchange_code(api: WithingsApi, settings: Settings, code: str, redirect_uri: str) -> TokenSet:
    """Trade the callback's code (valid 30 s, single use) for tokens and the Withings user id."""
    client_id, secret = _client(settings)
    body = api.call(
        OAUTH2_PATH,
        ACTION,
        {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "client_secret": secret,
            "code": code,
            "redirect_uri": redirect_uri,
        },
        refine=_refused_code,
    )
    tokens = _token_set(body)
    if tokens.external_user_id is None:
        raise ApiError("Withings token response has no userid")
    return tokens


def refresh(api: WithingsApi, settings: Settings, refresh_token: str) -> TokenSet:
    """A new pair; the old refresh token dies once the new access token is used (rotation)."""
    client_id, secret = _client(settings)
    body = api.call(
        OAUTH2_PATH,
        ACTION,
        {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": secret,
            "refresh_token": refresh_token,
        },
        refine=_refused_refresh,
    )
    return _token_set(body)


def _refused_code(status: int, error: OheError) -> OheError:
    if error.retryable:
        return error
    reason = (
        "the authorization code is invalid, already used or expired, or the redirect URI "
        "differs from the one sent to the consent page"
        if status in statuses.INVALID_PARAMS
        else "the application is not allowed to exchange it (check the client id and secret)"
    )
    return AuthError(f"Withings refused the authorization code (status {status}): {reason}")


def _refused_refresh(status: int, error: OheError) -> OheError:
    if status in statuses.INVALID_PARAMS:
        return InvalidGrant(
            f"Withings refused the refresh token (status {status}): it was revoked, replaced "
            "or has expired; the patient must link the account again"
        )
    return error


def _token_set(body: dict[str, Any]) -> TokenSet:
    access, refresh_token = body.get("access_token"), body.get("refresh_token")
    expires_in = body.get("expires_in")
    if not isinstance(access, str) or not access:
        raise ApiError("Withings token response has no access token")
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        raise ApiError("Withings token response has no expires_in")
    userid = body.get("userid")
    scope = body.get("scope")
    return TokenSet(
        access_token=access,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_at=datetime.now(UTC) + timedelta(seconds=float(expires_in)),
        scopes=tuple(s.strip() for s in scope.split(",") if s.strip())
        if isinstance(scope, str)
        else (),
        external_user_id=str(userid) if isinstance(userid, int | str) and str(userid) else None,
    )


def _client(settings: Settings) -> tuple[str, str]:
    if not settings.withings_client_id or not settings.withings_client_secret:
        raise AuthError(
            "Withings is not configured: set OHE_WITHINGS_CLIENT_ID and OHE_WITHINGS_CLIENT_SECRET"
        )
    return settings.withings_client_id, settings.withings_client_secret
