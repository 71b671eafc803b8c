"""Models: tokens encrypted at rest with rotatable keys; migrations match the models."""

from __future__ import annotations

from datetime import timedelta

from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import select, text

from ohe.app import create_app
from ohe.extensions import db
from ohe.models import EHRUser, Provider, ProviderLink, SyncStatus, utcnow


def _link(app: Flask) -> int:
    with app.app_context():
        user = EHRUser(ehr_user_id="patient-9")
        provider = Provider(provider_type="withings", name="Withings")
        link = ProviderLink(
            ehr_user=user,
            provider=provider,
            external_user_id="4242",
            access_token="access-plaintext-123",
            refresh_token="refresh-plaintext-456",
            token_expires_at=utcnow() + timedelta(hours=3),
        )
        db.session.add(link)
        db.session.commit()
        return link.id


def test_tokens_are_encrypted_at_rest(app: Flask) -> None:
    link_id = _link(app)
    with app.app_context():
        raw = db.session.execute(
            text("SELECT access_token, refresh_token FROM provider_link WHERE id = :id"),
            {"id": link_id},
        ).one()
        assert "plaintext" not in raw[0] + raw[1]
        db.session.expire_all()
        link = db.session.get(ProviderLink, link_id)
        assert link.access_token == "access-plaintext-123"
        assert link.token_expires_at.tzinfo is not None


def test_old_keys_still_decrypt_after_rotation(app: Flask) -> None:
    link_id = _link(app)
    settings = app.extensions["ohe"].settings
    rotated = create_app(
        settings.__class__.from_env(
            settings.as_environ(),
            token_encryption_keys=(Fernet.generate_key().decode(), *settings.token_encryption_keys),
        )
    )
    with rotated.app_context():
        assert db.session.get(ProviderLink, link_id).refresh_token == "refresh-plaintext-456"


def test_guide_sync_status_check_has_a_working_equivalent(app: Flask) -> None:
    with app.app_context():
        now = utcnow()
        for status, age in (("success", 1), ("success", 2), ("failed", 3), ("success", 30)):
            db.session.add(
                SyncStatus(
                    provider="withings",
                    sync_type="webhook",
                    status=status,
                    created_at=now - timedelta(hours=age),
                )
            )
        db.session.commit()
        recent = db.session.scalars(
            select(SyncStatus).where(SyncStatus.created_at >= now - timedelta(hours=24))
        ).all()
        success_rate = sum(s.status == "success" for s in recent) / len(recent)
        assert len(recent) == 3
        assert round(success_rate, 2) == 0.67


def test_migrations_match_the_models(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
