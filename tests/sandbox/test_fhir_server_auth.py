"""Sandbox FHIR server: optional bearer-token and OAuth2 client-credentials authentication."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests

from tests.sandbox.conftest import FhirServer, issues, observation

CLIENT_ID, CLIENT_SECRET = "ohe-client", "s3cret:with:colons"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(server: FhirServer, **kwargs: object) -> requests.Response:
    return requests.post(f"{server.root}/oauth/token", timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def oauth(start_fhir: Callable[..., FhirServer]) -> FhirServer:
    return start_fhir(oauth_client=f"{CLIENT_ID}:{CLIENT_SECRET}", token_ttl=60)


def test_fixed_bearer_token(start_fhir: Callable[..., FhirServer]) -> None:
    server = start_fhir(bearer_token="let-me-in")
    missing = server.get("Observation")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "missing bearer token" in issues(missing)
    wrong = server.get("Observation", headers=_bearer("let-me-out"))
    assert wrong.status_code == 401
    assert server.post("Observation", observation("a")).status_code == 401
    assert server.get("Observation", headers=_bearer("let-me-in")).status_code == 200
    metadata = server.get("metadata")
    assert metadata.status_code == 200  # discovery stays open
    assert "Bearer" in metadata.json()["rest"][0]["security"]["description"]
    assert server.stats()["auth"]["rejected"] == 3


def test_client_credentials_with_basic_auth_or_form(oauth: FhirServer) -> None:
    basic = _token(
        oauth, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET)
    )
    assert basic.status_code == 200
    issued = basic.json()
    assert issued["token_type"] == "Bearer"
    assert issued["expires_in"] == 60
    assert basic.headers["Cache-Control"] == "no-store"
    form = _token(
        oauth,
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "system/Observation.write",
        },
    )
    assert form.status_code == 200
    assert form.json()["scope"] == "system/Observation.write"
    assert form.json()["access_token"] != issued["access_token"]  # random per issue
    for token in (issued["access_token"], form.json()["access_token"]):
        assert (
            oauth.post("Observation", observation("x"), headers=_bearer(token)).status_code == 201
        )
    assert oauth.get("Observation").status_code == 401
    assert oauth.get("Observation", headers=_bearer("made-up")).status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        (
            {"data": {"grant_type": "client_credentials"}, "auth": (CLIENT_ID, "wrong")},
            401,
            "invalid_client",
        ),
        ({"data": {"grant_type": "client_credentials"}}, 401, "invalid_client"),
        (
            {"data": {"grant_type": "password"}, "auth": (CLIENT_ID, CLIENT_SECRET)},
            400,
            "unsupported_grant_type",
        ),
    ],
)
def test_token_endpoint_errors(oauth: FhirServer, kwargs: dict, status: int, error: str) -> None:
    response = _token(oauth, **kwargs)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_issued_tokens_expire_and_can_be_revoked(oauth: FhirServer) -> None:
    assert oauth.admin("POST", "auth", {"token_ttl": 1}) == {"enabled": True, "token_ttl": 1}
    grant = {"data": {"grant_type": "client_credentials"}, "auth": (CLIENT_ID, CLIENT_SECRET)}
    short = _token(oauth, **grant).json()
    assert short["expires_in"] == 1
    assert oauth.get("Observation", headers=_bearer(short["access_token"])).status_code == 200
    time.sleep(1.1)
    expired = oauth.get("Observation", headers=_bearer(short["access_token"]))
    assert expired.status_code == 401
    assert "expired" in issues(expired)

    oauth.admin("POST", "auth", {"token_ttl": 60})
    fresh = _token(oauth, **grant).json()["access_token"]
    assert oauth.get("Observation", headers=_bearer(fresh)).status_code == 200
    assert oauth.admin("POST", "auth/revoke")["revoked"] == 1
    assert oauth.get("Observation", headers=_bearer(fresh)).status_code == 401
    again = _token(oauth, **grant).json()["access_token"]
    assert oauth.get("Observation", headers=_bearer(again)).status_code == 200


def test_token_endpoint_absent_without_oauth(fhir: FhirServer) -> None:
    response = _token(
        fhir, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET)
    )
    assert response.status_code == 404
    assert fhir.get("Observation").status_code == 200  # no auth configured: open
