"""The database row of each enabled provider (operator switches), created on first use."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ohe.extensions import db
from ohe.models import Provider as ProviderRow


def provider_row(name: str) -> ProviderRow:
    """The row for provider ``name``; created with defaults if missing (no seeding step)."""
    row = db.session.scalar(select(ProviderRow).where(ProviderRow.provider_type == name))
    if row is not None:
        return row
    from ohe.providers import provider_class

    try:
        with db.session.begin_nested():
            row = ProviderRow(
                provider_type=name,
                name=provider_class(name).display_name,
                active=True,
                excluded_data_types=[],
                webhooks_enabled=True,
            )
            db.session.add(row)
    except IntegrityError:
        row = db.session.scalar(select(ProviderRow).where(ProviderRow.provider_type == name))
    return row  # type: ignore[return-value]
