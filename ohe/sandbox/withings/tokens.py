"""Authorization codes, token issue and rotation, and access-token checks (§1.2).

Rotation rule: every refresh returns a new refresh token; the one it replaces stays usable
until 8 h after the new pair was issued *or* until an access token it produced is first used,
whichever comes first. Each access token therefore remembers the refresh token it came from
(``parent_refresh``), and its first use closes that parent's grace window.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from .context import Caller, Sandbox
from .params import Params
from .status import ApiError, Status, invalid
from .tables import SCOPES


@dataclass(frozen=True)
class TokenPair:
    userid: int
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str

    def as_body(self) -> dict[str, object]:
        return {
            "userid": self.userid,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": self.expires_in,
            "scope": self.scope,
            "csrf_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
        }


def parse_scope(raw: str) -> list[str] | None:
    """Comma-separated scopes (Withings does not use spaces); None if any is unknown."""
    scopes = [s.strip() for s in raw.split(",") if s.strip()]
    return scopes if scopes and all(s in SCOPES for s in scopes) else None


def redirect_allowed(sb: Sandbox, redirect_uri: str) -> bool:
    if sb.config.redirect_uris:
        return redirect_uri in sb.config.redirect_uris
    parts = urlsplit(redirect_uri)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def issue_code(sb: Sandbox, client_id: str, userid: int, redirect_uri: str, scope: str) -> str:
    code = secrets.token_hex(20)
    sb.store.execute(
        "INSERT INTO codes (code, client_id, userid, redirect_uri, scope, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (code, client_id, userid, redirect_uri, scope, sb.clock.time() + sb.config.code_ttl),
    )
    return code


def request_token(sb: Sandbox, p: Params) -> dict[str, object]:
    """``POST /v2/oauth2 action=requesttoken`` for both grants; failures are status 503."""
    grant = p.text("grant_type") or "missing"
    try:
        client_id = p.text("client_id", required=True) or ""
        secret = p.text("client_secret", required=True) or ""
        if client_id != sb.config.client_id or not secrets.compare_digest(
            secret.encode(), sb.config.client_secret.encode()
        ):
            raise invalid("unknown client or wrong secret")
        handler = GRANTS.get(grant)
        if handler is None:
            raise invalid(f"unsupported grant_type {grant!r}")
        pair = handler(sb, p, client_id)
    except ApiError:
        sb.stats.token_request(grant, ok=False)
        raise
    sb.stats.token_request(grant, ok=True)
    return pair.as_body()


def _from_code(sb: Sandbox, p: Params, client_id: str) -> TokenPair:
    code = p.text("code", required=True)
    redirect_uri = p.text("redirect_uri", required=True)
    with sb.store.tx() as conn:
        row = conn.execute("SELECT * FROM codes WHERE code = ?", (code,)).fetchone()
        if row is None or row["client_id"] != client_id:
            raise invalid("unknown authorization code")
        if row["used"]:
            raise invalid("authorization code already used")
        conn.execute("UPDATE codes SET used = 1 WHERE code = ?", (code,))
    # The code is burnt even when the checks below fail: a code is single use, full stop.
    if row["expires_at"] < sb.clock.time():
        raise invalid("authorization code expired")
    if row["redirect_uri"] != redirect_uri:
        raise invalid("redirect_uri differs from the authorize request")
    return _issue(sb, client_id, row["userid"], row["scope"], parent_refresh=None)


def _from_refresh(sb: Sandbox, p: Params, client_id: str) -> TokenPair:
    token = p.text("refresh_token", required=True)
    now = sb.clock.time()
    with sb.store.tx() as conn:
        row = conn.execute("SELECT * FROM refresh_tokens WHERE token = ?", (token,)).fetchone()
        if row is None or row["client_id"] != client_id or row["expires_at"] < now:
            raise invalid("unknown or expired refresh token")
        if row["superseded_at"] is not None:
            used = conn.execute(
                "SELECT 1 FROM access_tokens "
                "WHERE parent_refresh = ? AND first_used_at IS NOT NULL",
                (token,),
            ).fetchone()
            if used or now >= row["superseded_at"] + sb.config.refresh_grace:
                raise invalid("refresh token replaced and its grace window closed")
        else:
            conn.execute(
                "UPDATE refresh_tokens SET superseded_at = ? WHERE token = ?", (now, token)
            )
        return _issue(sb, client_id, row["userid"], row["scope"], parent_refresh=token)


def _issue(
    sb: Sandbox, client_id: str, userid: int, scope: str, parent_refresh: str | None
) -> TokenPair:
    now = sb.clock.time()
    pair = TokenPair(
        userid, secrets.token_hex(20), secrets.token_hex(20), sb.config.access_ttl, scope
    )
    with sb.store.tx() as conn:
        conn.execute(
            "INSERT INTO access_tokens VALUES (?, ?, ?, ?, ?, NULL, ?)",
            (
                pair.access_token,
                client_id,
                userid,
                scope,
                now + sb.config.access_ttl,
                parent_refresh,
            ),
        )
        conn.execute(
            "INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (pair.refresh_token, client_id, userid, scope, now, now + sb.config.refresh_ttl),
        )
    return pair


GRANTS = {"authorization_code": _from_code, "refresh_token": _from_refresh}


def authenticate(sb: Sandbox, authorization: str | None) -> Caller:
    """The caller behind ``Authorization: Bearer``; status 401 when missing, unknown or expired.

    The first successful use of an access token is recorded: it ends the grace window of the
    refresh token that produced it.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(Status.INVALID_TOKEN, "missing bearer token")
    now = sb.clock.time()
    row = sb.store.one(
        "SELECT a.*, u.timezone FROM access_tokens a JOIN users u ON u.userid = a.userid "
        "WHERE a.token = ?",
        (token.strip(),),
    )
    if row is None or row["expires_at"] <= now:
        raise ApiError(Status.INVALID_TOKEN, "unknown or expired access token")
    if row["first_used_at"] is None:
        sb.store.execute(
            "UPDATE access_tokens SET first_used_at = ? WHERE token = ? AND first_used_at IS NULL",
            (now, row["token"]),
        )
    return Caller(
        row["userid"], row["client_id"], frozenset(row["scope"].split(",")), row["timezone"]
    )


def expire_access_tokens(sb: Sandbox, userid: int, client_id: str | None = None) -> int:
    """Admin: make a user's access tokens expired now, to exercise the client's refresh path."""
    sql = "UPDATE access_tokens SET expires_at = ? WHERE userid = ? AND expires_at > ?"
    args: list[object] = [sb.clock.time() - 1, userid, sb.clock.time()]
    if client_id:
        sql += " AND client_id = ?"
        args.append(client_id)
    return sb.store.execute(sql, args).rowcount
