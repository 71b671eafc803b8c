"""API keys: every non-public route refuses anonymous calls; keys are hashed and revocable."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ohe.api.auth import is_public
from ohe.extensions import db
from ohe.models import ApiKey

# Routes that are public on purpose, each authenticated some other way (or harmless).
DELIBERATELY_PUBLIC = {
    "/",  # server time ping (reference API)
    "/api/metrics/live/",
    "/api/metrics/ready/",
    "/api/metrics/health/",
    "/api/metrics/",
    "/api/metrics/metrics/",
}


def _concrete(rule: str) -> str:
    """A URL matching the rule: numbers for int converters, words for the others."""
    rule = re.sub(r"<int:[^>]+>", "1", rule)
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"x\1", rule)


def test_every_route_that_is_not_deliberately_public_refuses_anonymous_calls(
    app: Flask, client: FlaskClient
) -> None:
    public_seen = set()
    checked = 0
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if is_public(view):
            public_seen.add(rule.rule)
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_concrete(rule.rule), method=method, json={})
            assert response.status_code == 401, (rule.rule, method, response.status_code)
            body = response.get_json()
            assert body["status"] == 401
            assert body["type"] == "urn:ohe:problem:unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            checked += 1
    assert public_seen <= DELIBERATELY_PUBLIC | _public_prefixed(public_seen), public_seen - (
        DELIBERATELY_PUBLIC
    )
    assert checked >= 1


def _public_prefixed(rules: set[str]) -> set[str]:
    """Webhook and patient-facing link pages are public by design (provider/signature auth)."""
    return {r for r in rules if r.startswith(("/webhooks/", "/link/"))}


def test_valid_key_passes_and_is_stored_hashed(
    app: Flask, client: FlaskClient, api_headers: dict[str, str]
) -> None:
    response = client.get("/api/base/", headers=api_headers)
    assert response.status_code == 200
    assert "/api/base/" in response.get_json()["endpoints"]
    plaintext = api_headers["Authorization"].split()[1]
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert plaintext not in (row.key_hash, row.prefix)
        assert plaintext.startswith(row.prefix)
        assert row.last_used_at is not None


def test_wrong_or_malformed_keys_get_a_401_problem(client: FlaskClient, api_headers: dict) -> None:
    for headers in (
        {"Authorization": "Bearer ohe_not-a-real-key-0000000000000000"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {},
    ):
        response = client.get("/api/base/", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert "ohe_not-a-real-key" not in response.get_data(as_text=True)


def test_cli_creates_lists_and_revokes_keys(app: Flask) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(args=["ohe", "api-key", "create", "--name", "ehr-backend"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("ohe_") and len(key) > 40
    client = app.test_client()
    assert client.get("/api/base/", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    listed = runner.invoke(args=["ohe", "api-key", "list"])
    assert "ehr-backend" in listed.output
    assert key not in listed.output
    assert key[:12] in listed.output
    assert "active" in listed.output

    revoked = runner.invoke(args=["ohe", "api-key", "revoke", key[:12]])
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/api/base/", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert "revoked" in runner.invoke(args=["ohe", "api-key", "list"]).output

    missing = runner.invoke(args=["ohe", "api-key", "revoke", "nope"])
    assert missing.exit_code == 1
    assert "no API key" in missing.output
