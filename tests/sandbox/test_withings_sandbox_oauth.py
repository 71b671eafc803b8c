"""Withings sandbox: consent page, code exchange, rotating refresh tokens, token checks, scopes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox.withings_fixtures import (
    ALL_SCOPES,
    CLIENT_ID,
    HOUR,
    REDIRECT_URI,
    SandboxServer,
    query_of,
    running_sandbox,
)

AUTHORIZE = {
    "response_type": "code",
    "client_id": CLIENT_ID,
    "state": "opaque-state-123",
    "scope": ALL_SCOPES,
    "redirect_uri": REDIRECT_URI,
}


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with running_sandbox() as server:
        yield server


def consent(sb: SandboxServer, **form: object) -> dict[str, str]:
    """Submit the consent form as a browser would; returns the redirect's query."""
    data = {**AUTHORIZE, "userid": "new", "grant": ALL_SCOPES.split(","), "decision": "allow"}
    data.update(form)
    response = sb.http.post(
        f"{sb.url}/oauth2_user/authorize2", data=data, allow_redirects=False, timeout=30
    )
    assert response.status_code == 302, response.text
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    return query_of(response.headers["Location"])


def test_consent_page_renders_form_with_stable_ids(sb: SandboxServer) -> None:
    existing = sb.new_user()
    page = sb.http.get(f"{sb.url}/oauth2_user/authorize2", params=AUTHORIZE, timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.text
    for marker in (
        '<form id="consent" method="post"',
        'id="allow"',
        'id="deny"',
        'id="user-new"',
        f'id="user-{existing}"',
        'id="scope-user-metrics"',
        'value="opaque-state-123"',
    ):
        assert marker in html, marker

    bad_client = sb.http.get(
        f"{sb.url}/oauth2_user/authorize2", params={**AUTHORIZE, "client_id": "x"}, timeout=30
    )
    assert bad_client.status_code == 400
    assert 'id="allow"' not in bad_client.text
    bad_scope = sb.http.get(
        f"{sb.url}/oauth2_user/authorize2",
        params={**AUTHORIZE, "scope": "user.metrics user.activity"},  # spaces: not Withings
        timeout=30,
    )
    assert bad_scope.status_code == 400


def test_allow_then_exchange_code_for_tokens(sb: SandboxServer) -> None:
    query = consent(sb, grant=["user.metrics", "user.activity"])  # user unticked user.info
    assert query["state"] == "opaque-state-123"
    envelope = sb.exchange(query["code"])
    assert envelope["status"] == 0
    body = envelope["body"]
    assert set(body) == {
        "userid",
        "access_token",
        "refresh_token",
        "expires_in",
        "scope",
        "csrf_token",
        "token_type",
    }
    assert isinstance(body["userid"], int)
    assert body["expires_in"] == 10800
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "user.metrics,user.activity"
    assert [u["userid"] for u in sb.admin("GET", "/users")["users"]] == [body["userid"]]
    meas = sb.call("/measure", body["access_token"], action="getmeas", category=1)
    assert meas["status"] == 0 and meas["body"]["measuregrps"]


def test_consent_for_existing_user_and_deny(sb: SandboxServer) -> None:
    existing = sb.new_user()
    query = consent(sb, userid=str(existing))
    assert sb.exchange(query["code"])["body"]["userid"] == existing
    denied = consent(sb, decision="deny")
    assert denied == {"error": "access_denied", "state": "opaque-state-123"}


def test_demo_mode_signs_in_the_demo_user(sb: SandboxServer) -> None:
    page = sb.http.get(
        f"{sb.url}/oauth2_user/authorize2", params={**AUTHORIZE, "mode": "demo"}, timeout=30
    )
    assert 'id="user-demo"' in page.text and 'id="user-new"' not in page.text
    query = consent(sb, mode="demo", userid="demo")
    first = sb.exchange(query["code"])["body"]["userid"]
    assert first == sb.exchange(consent(sb, mode="demo", userid="demo")["code"])["body"]["userid"]
    assert [u["userid"] for u in sb.admin("GET", "/users")["users"]] == [first]


def test_code_is_single_use_short_lived_and_bound_to_redirect_uri(sb: SandboxServer) -> None:
    userid = sb.new_user()
    code = sb.code(userid)
    assert sb.exchange(code)["status"] == 0
    reused = sb.exchange(code)
    assert reused["status"] == 503 and reused["error"] == "Invalid Params"

    late = sb.code(userid)
    sb.advance(31)
    assert sb.exchange(late)["status"] == 503

    elsewhere = sb.code(userid)
    assert sb.exchange(elsewhere, redirect_uri="http://localhost:8000/other")["status"] == 503
    assert sb.exchange("not-a-code")["status"] == 503
    wrong_secret = sb.call(
        "/v2/oauth2",
        action="requesttoken",
        grant_type="authorization_code",
        client_id=CLIENT_ID,
        client_secret="nope",
        code=sb.code(userid),
        redirect_uri=REDIRECT_URI,
    )
    assert wrong_secret["status"] == 503
    stats = sb.admin("GET", "/stats")["token_requests"]["authorization_code"]
    assert stats == {"ok": 1, "failed": 5}


def test_refresh_rotates_and_old_token_dies_on_first_use_of_new_access(sb: SandboxServer) -> None:
    first = sb.token(sb.new_user())
    second = sb.refresh(first["refresh_token"])["body"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["userid"] == first["userid"] and second["scope"] == first["scope"]

    # Crash between "got the new pair" and "stored it": the old refresh token still works...
    retry = sb.refresh(first["refresh_token"])
    assert retry["status"] == 0
    # ...until an access token it produced is used.
    assert sb.call("/v2/user", second["access_token"], action="getdevice")["status"] == 0
    dead = sb.refresh(first["refresh_token"])
    assert dead["status"] == 503 and dead["error"] == "Invalid Params"
    assert sb.refresh(second["refresh_token"])["status"] == 0
    assert sb.admin("GET", "/stats")["token_requests"]["refresh_token"] == {"ok": 3, "failed": 1}


def test_replaced_refresh_token_expires_8_hours_after_rotation(sb: SandboxServer) -> None:
    first = sb.token(sb.new_user())
    second = sb.refresh(first["refresh_token"])["body"]
    sb.advance(8 * HOUR - 60)
    assert sb.refresh(first["refresh_token"])["status"] == 0  # within the grace window
    sb.advance(120)
    assert sb.refresh(first["refresh_token"])["status"] == 503  # 8 h after the first rotation
    assert sb.refresh(second["refresh_token"])["status"] == 0  # the replacement is unaffected


def test_expired_access_token_is_status_401(sb: SandboxServer) -> None:
    userid = sb.new_user()
    pair = sb.token(userid)
    assert sb.call("/v2/user", pair["access_token"], action="getdevice")["status"] == 0
    sb.advance(3 * HOUR + 1)
    expired = sb.call("/v2/user", pair["access_token"], action="getdevice")
    assert expired["status"] == 401
    assert "invalid_token" in expired["error"]
    fresh = sb.refresh(pair["refresh_token"])["body"]
    assert sb.call("/v2/user", fresh["access_token"], action="getdevice")["status"] == 0

    assert sb.admin("POST", f"/users/{userid}/expire-token")["expired"] == 1
    assert sb.call("/v2/user", fresh["access_token"], action="getdevice")["status"] == 401
    assert sb.call("/v2/user", "garbage", action="getdevice")["status"] == 401
    assert sb.call("/v2/user", None, action="getdevice")["status"] == 401


def test_granted_scopes_are_enforced_per_endpoint(sb: SandboxServer) -> None:
    token = sb.token(sb.new_user(), scope="user.metrics")["access_token"]
    assert sb.call("/measure", token, action="getmeas")["status"] == 0
    assert sb.call("/v2/heart", token, action="list")["status"] == 0
    denied = [
        sb.call("/v2/measure", token, action="getactivity", lastupdate=0),
        sb.call("/v2/sleep", token, action="getsummary", lastupdate=0),
        sb.call("/v2/user", token, action="getdevice"),
        sb.call("/notify", token, action="subscribe", callbackurl="http://x.test/", appli=16),
    ]
    for envelope in denied:
        assert envelope["status"] in {214, 277, 2553, 2554, 2555}, envelope  # "unauthorized"
        assert envelope["body"] == {}
