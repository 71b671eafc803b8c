"""API keys and configuration commands."""

from __future__ import annotations

import click
from cryptography.fernet import Fernet
from flask.cli import AppGroup
from sqlalchemy import or_, select

from ohe.cli import fail, ohe_cli
from ohe.extensions import db, state
from ohe.models import ApiKey, utcnow
from ohe.settings import settings_table

# --- API keys --------------------------------------------------------------------------------

api_key_cli = AppGroup("api-key", help="Manage the API keys EHR backends use.")
ohe_cli.add_command(api_key_cli)


@api_key_cli.command("create")
@click.option("--name", required=True, help="Who uses the key, e.g. 'ehr-backend-prod'.")
def api_key_create(name: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from ohe.api.auth import create_key

    row, plaintext = create_key(name)
    db.session.commit()
    click.echo(f"Created API key #{row.id} '{name}'. It is shown only this once:")
    click.echo(plaintext)


@api_key_cli.command("list")
def api_key_list() -> None:
    """List keys (id, name, prefix, created, last used, revoked)."""
    keys = db.session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
    if not keys:
        click.echo("No API keys. Create one with: ohe api-key create --name NAME")
        return
    click.echo(f"{'ID':>4}  {'NAME':<24} {'PREFIX':<13} {'CREATED':<20} {'LAST USED':<20} STATUS")
    for key in keys:
        click.echo(
            f"{key.id:>4}  {key.name[:24]:<24} {key.prefix:<13} "
            f"{key.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{(key.last_used_at.strftime('%Y-%m-%d %H:%M:%S') if key.last_used_at else '-'):<20} "
            f"{'revoked' if key.revoked_at else 'active'}"
        )


@api_key_cli.command("revoke")
@click.argument("key")
def api_key_revoke(key: str) -> None:
    """Revoke a key by id or by its printed prefix."""
    condition = ApiKey.prefix == key
    if key.isdigit():
        condition = or_(condition, ApiKey.id == int(key))
    row = db.session.scalar(select(ApiKey).where(condition))
    if row is None:
        fail(f"no API key with id or prefix {key!r}")
        return
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
    click.echo(f"Revoked API key #{row.id} '{row.name}'.")


# --- configuration ---------------------------------------------------------------------------


@ohe_cli.command("settings")
@click.option("--table", is_flag=True, help="Print the configuration table as Markdown.")
def show_settings(table: bool) -> None:
    """Print the effective settings (secrets hidden), or the documented table."""
    if table:
        click.echo("| variable | default | meaning |\n|---|---|---|")
        for row in settings_table():
            names = " / ".join(f"`{n}`" for n in (row.env, *row.aliases))
            default = f"`{row.default}`" if row.default else ""
            click.echo(f"| {names} | {default} | {row.doc} |")
        return
    for name, value in state().settings.redacted().items():
        click.echo(f"{name}={value}")


@click.command("generate-key")
def generate_key() -> None:
    """Print a new Fernet key for OHE_TOKEN_ENCRYPTION_KEYS (needs no configuration)."""
    click.echo(Fernet.generate_key().decode())


# Added without the app context: it must work before any setting exists.
ohe_cli.add_command(generate_key)
