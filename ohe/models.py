"""Database models: who is linked to what, and the bookkeeping of syncs and webhooks.

No health measurement is stored anywhere, by design: measurements pass through a task's memory
(or a short-lived Redis page reference) on their way to the FHIR server. What is kept here is
identity (EHR users, provider links), encrypted provider tokens, per-(link, data type) cursors,
one row per sync run, the webhook dedup ledger, hashed API keys and the poison-message ledger.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ohe.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone, so we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EncryptedText(TypeDecorator):
    """A secret encrypted with the app's token cipher before it reaches the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return current_app.extensions["ohe"].cipher.encrypt(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        return current_app.extensions["ohe"].cipher.decrypt(value)


class LinkStatus(enum.StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    REVOKED = "revoked"


class SyncState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"


class Provider(db.Model):
    """A wearable provider this deployment offers, with its operator switches."""

    __tablename__ = "provider"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_type: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    excluded_data_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    webhooks_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    success_deeplink_url: Mapped[str | None] = mapped_column(String(512))
    error_deeplink_url: Mapped[str | None] = mapped_column(String(512))


class EHRUser(db.Model):
    """A patient of the hospital; ``ehr_user_id`` is the FHIR Patient id."""

    __tablename__ = "ehr_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ehr_user_id: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    links: Mapped[list[ProviderLink]] = relationship(back_populates="ehr_user")

    @property
    def patient_reference(self) -> str:
        return f"Patient/{self.ehr_user_id}"


class ProviderLink(db.Model):
    """One patient's authorisation at one provider, with its tokens encrypted at rest."""

    __tablename__ = "provider_link"
    __table_args__ = (
        UniqueConstraint("ehr_user_id", "provider_id", name="uq_link_user_provider"),
        Index("ix_link_provider_external", "provider_id", "external_user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ehr_user_id: Mapped[int] = mapped_column(ForeignKey("ehr_user.id", ondelete="CASCADE"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))
    external_user_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=LinkStatus.ACTIVE.value)
    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str | None] = mapped_column(String(512))
    timezone: Mapped[str | None] = mapped_column(String(64))
    status_reason: Mapped[str | None] = mapped_column(String(255))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    ehr_user: Mapped[EHRUser] = relationship(back_populates="links")
    provider: Mapped[Provider] = relationship()
    cursors: Mapped[list[SyncCursor]] = relationship(
        back_populates="link", cascade="all, delete-orphan"
    )


class SyncCursor(db.Model):
    """How far one (link, data type) has been written to FHIR, and what went wrong last."""

    __tablename__ = "sync_cursor"
    __table_args__ = (UniqueConstraint("link_id", "data_type", name="uq_cursor_link_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("provider_link.id", ondelete="CASCADE"))
    data_type: Mapped[str] = mapped_column(String(64))
    position: Mapped[str | None] = mapped_column(String(255))
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_class: Mapped[str | None] = mapped_column(String(32))
    last_error_message: Mapped[str | None] = mapped_column(String(1024))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    link: Mapped[ProviderLink] = relationship(back_populates="cursors")


class SyncStatus(db.Model):
    """One sync run of one stream of one link: what triggered it, how far it got, how it ended.

    The run is the unit of the cursor: ``pending_cursor`` (the provider's snapshot position,
    from the first page) becomes the stream's cursor only when every page has been written.
    """

    __tablename__ = "sync_status"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("provider_link.id", ondelete="SET NULL"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    stream: Mapped[str] = mapped_column(String(32), default="")
    sync_type: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(32), default="sync")
    data_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=SyncState.PENDING.value, index=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetch_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    pages_fetched: Mapped[int] = mapped_column(Integer, default=0)
    pages_done: Mapped[int] = mapped_column(Integer, default=0)
    records_fetched: Mapped[int] = mapped_column(Integer, default=0)
    resources_written: Mapped[int] = mapped_column(Integer, default=0)
    rate_limit_waits: Mapped[int] = mapped_column(Integer, default=0)
    pending_cursor: Mapped[str | None] = mapped_column(String(255))
    # A window run of a stream with complete windows: once written, look for deleted records.
    checks_deletions: Mapped[bool] = mapped_column(Boolean, default=False)
    deletions_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resources_voided: Mapped[int] = mapped_column(Integer, default=0)
    error_class: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(String(1024))
    request_id: Mapped[str | None] = mapped_column(String(128))

    pages: Mapped[list[SyncPage]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class SyncPage(db.Model):
    """One page of a run, so redelivered tasks know what is already done (idempotency)."""

    __tablename__ = "sync_page"
    __table_args__ = (UniqueConstraint("run_id", "number", name="uq_page_run_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_status.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="planned")  # planned/fetched/pushed
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    records: Mapped[int] = mapped_column(Integer, default=0)
    resources: Mapped[int] = mapped_column(Integer, default=0)
    # Source ids of the records this page returned (only for runs that check deletions).
    seen: Mapped[list[str] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    run: Mapped[SyncStatus] = relationship(back_populates="pages")


class LinkAttempt(db.Model):
    """A patient's linking in progress: the signed link URL and the single-use OAuth state."""

    __tablename__ = "link_attempt"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ehr_user_id: Mapped[int] = mapped_column(ForeignKey("ehr_user.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    success_url: Mapped[str | None] = mapped_column(String(1024))
    error_url: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    code_verifier: Mapped[str | None] = mapped_column(EncryptedText)
    outcome: Mapped[str | None] = mapped_column(String(64))

    ehr_user: Mapped[EHRUser] = relationship()


class WebhookEvent(db.Model):
    """Dedup ledger of provider notifications; ``pending`` until turned into a sync.

    Identical notifications arriving while one is pending are coalesced into it
    (``duplicates``); the row is the source of truth, so a lost publish is re-driven by beat.
    """

    __tablename__ = "webhook_event"
    __table_args__ = (
        Index("ix_webhook_received", "received_at"),
        Index("ix_webhook_fingerprint_status", "fingerprint", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))
    external_user_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(32))
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("provider_link.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(128))


class ApiKey(db.Model):
    """An EHR backend's credential; only its SHA-256 is stored, the key is shown once."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FailedTask(db.Model):
    """Poison-message ledger: tasks dropped after the redelivery cap or final retry."""

    __tablename__ = "failed_task"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    task_id: Mapped[str] = mapped_column(String(64))
    task_name: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str | None] = mapped_column(String(32))
    args: Mapped[Any] = mapped_column(JSON)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    error_class: Mapped[str] = mapped_column(String(32))
    error_message: Mapped[str] = mapped_column(String(1024))
    request_id: Mapped[str | None] = mapped_column(String(128))
