"""Optional authentication: a fixed bearer token, or OAuth2 client credentials.

Hospital FHIR servers sit behind one or the other (SMART backend services boil down to a
client-credentials token). Issued tokens expire after ``token_ttl`` seconds — short in tests, so
OHE's refresh-before-expiry and retry-on-401 paths run for real — and can all be revoked at once
from the admin API. Issued tokens live in memory: a restart logs every client out, as a real
authorization server that lost its token store would.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote

from flask import Blueprint, Response, current_app, jsonify, request

DEFAULT_TOKEN_TTL = 300


@dataclass(frozen=True)
class AuthConfig:
    bearer_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_ttl: int = DEFAULT_TOKEN_TTL  # seconds; expires_in is an integer (RFC 6749)

    @classmethod
    def parse(
        cls, bearer_token: str | None, oauth_client: str | None, token_ttl: int
    ) -> AuthConfig:
        """``oauth_client`` is ``ID:SECRET`` as given on the command line."""
        client_id = client_secret = None
        if oauth_client:
            client_id, sep, client_secret = oauth_client.partition(":")
            if not sep or not client_id or not client_secret:
                raise ValueError("--oauth-client must be ID:SECRET")
        if not isinstance(token_ttl, int) or token_ttl < 1:
            raise ValueError("the token TTL must be a whole number of seconds >= 1")
        return cls(bearer_token or None, client_id, client_secret, token_ttl)

    @property
    def enabled(self) -> bool:
        return bool(self.bearer_token or self.client_id)

    def describe(self) -> str | None:
        if not self.enabled:
            return None
        ways = ["a fixed bearer token"] if self.bearer_token else []
        if self.client_id:
            ways.append("OAuth2 client credentials (POST /oauth/token)")
        return "Authorization: Bearer required; tokens from " + " or ".join(ways)


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class Auth:
    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.token_ttl = config.token_ttl
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def problem(self, authorization: str | None) -> str | None:
        """Why a /fhir request is not authorized, or None if it is (or auth is off)."""
        if not self.config.enabled:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "missing bearer token (Authorization: Bearer ...)"
        token = token.strip()
        fixed = self.config.bearer_token
        if fixed and secrets.compare_digest(token.encode(), fixed.encode()):
            return None
        with self._lock:
            expiry = self._tokens.get(token)
            if expiry is not None and expiry <= time.monotonic():
                del self._tokens[token]
                return "the access token has expired"
        return None if expiry is not None else "invalid access token"

    def issue(self, form: dict[str, str], authorization: str | None, scope: str | None) -> dict:
        """The client-credentials grant (RFC 6749 §4.4); OAuthError on any failure."""
        if not self.config.client_id:
            raise OAuthError(404, "invalid_request", "OAuth is not enabled on this server")
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
        client_id, client_secret = _basic(authorization) or (
            form.get("client_id"),
            form.get("client_secret"),
        )
        valid = (
            client_id is not None
            and client_secret is not None
            and secrets.compare_digest(client_id.encode(), self.config.client_id.encode())
            and secrets.compare_digest(
                client_secret.encode(), (self.config.client_secret or "").encode()
            )
        )
        if not valid:
            raise OAuthError(401, "invalid_client", "unknown client or wrong secret")
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._tokens = {t: e for t, e in self._tokens.items() if e > now}
            self._tokens[token] = now + self.token_ttl
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
            "scope": scope or "system/*.*",
        }

    def revoke_all(self) -> int:
        with self._lock:
            count, self._tokens = len(self._tokens), {}
            return count


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except ValueError:
        return None
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret)  # RFC 6749 §2.3.1 form-encodes both


blueprint = Blueprint("sandbox_fhir_oauth", __name__)


@blueprint.post("/oauth/token")
def token() -> Response | tuple[Response, int, dict[str, str]]:
    sandbox = current_app.extensions["ohe_sandbox_fhir"]
    try:
        issued = sandbox.auth.issue(
            request.form.to_dict(), request.headers.get("Authorization"), request.form.get("scope")
        )
    except OAuthError as err:
        sandbox.stats.auth(f"token_{err.error}")
        headers = {"Cache-Control": "no-store"}
        if err.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="sandbox-fhir"'
        body = {"error": err.error, "error_description": err.description}
        return jsonify(body), err.status, headers
    sandbox.stats.auth("tokens_issued")
    response = jsonify(issued)
    response.headers["Cache-Control"] = "no-store"
    return response
