"""Operator commands: ``flask --app ohe.app ohe …`` or, installed, ``ohe …``.

Every command runs inside the app context, so it uses the same settings, database and
coordination backend as the web and worker processes.
"""

from __future__ import annotations

import os
import sys

import click
from cryptography.fernet import Fernet
from flask.cli import AppGroup, FlaskGroup
from sqlalchemy import or_, select

from ohe.extensions import db, state
from ohe.models import ApiKey, utcnow
from ohe.settings import settings_table

ohe_cli = AppGroup("ohe", help="Open Health Exchange operator commands.")


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


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
        _fail(f"no API key with id or prefix {key!r}")
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


@ohe_cli.command("generate-key")
def generate_key() -> None:
    """Print a new Fernet key for OHE_TOKEN_ENCRYPTION_KEYS."""
    click.echo(Fernet.generate_key().decode())


# --- embedded demo ---------------------------------------------------------------------------

DEMO_PATIENT = "demo-patient"


@ohe_cli.command("demo-setup")
@click.option("--web-url", default=None, help="URL the web process serves (for the banner).")
def demo_setup(web_url: str | None) -> None:
    """Prepare the embedded demo (development only) and print the URLs it serves.

    Idempotent: creates a demo API key once (kept in the data directory, readable only by you)
    and the demo patient, then prints where everything is.
    """
    from ohe.api.auth import create_key
    from ohe.models import EHRUser

    settings = state().settings
    if settings.production:
        _fail("demo-setup is for the embedded development setup only")
    key_file = settings.data_dir / "demo-api-key"
    if not key_file.exists():
        _, plaintext = create_key("demo (make run)")
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_text(plaintext + "\n")
    if db.session.scalar(select(EHRUser).where(EHRUser.ehr_user_id == DEMO_PATIENT)) is None:
        db.session.add(EHRUser(ehr_user_id=DEMO_PATIENT))
    db.session.commit()
    base = (web_url or settings.public_url).rstrip("/")
    lines = [
        "Open Health Exchange (embedded defaults) serves:",
        f"  API             {base}/api/base/",
        f'                  curl -H "Authorization: Bearer $(cat {key_file})" {base}/api/base/',
        f"  Health          {base}/api/metrics/health/",
        f"  Metrics         {base}/api/metrics/metrics/",
        f"  Demo patient    {DEMO_PATIENT}",
        f"  API key file    {key_file}",
    ]
    click.echo("\n".join(lines))


# --- processes -------------------------------------------------------------------------------


@ohe_cli.command(
    "flower", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def flower(args: tuple[str, ...]) -> None:
    """Run Flower with basic auth from OHE_FLOWER_BASIC_AUTH (required in production)."""
    settings = state().settings
    if settings.production and not settings.flower_basic_auth:
        _fail("OHE_FLOWER_BASIC_AUTH: required to run Flower in production (user:password)")
    env = dict(os.environ)
    if settings.flower_basic_auth:
        # Flower reads its options from FLOWER_* variables; this keeps the password off argv.
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    command = [sys.executable, "-m", "celery", "-A", "ohe.worker", "flower", *args]
    os.execve(sys.executable, command, env)  # noqa: S606 - replaces this process by design


@ohe_cli.command("serve-metrics")
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 - a pod's port
@click.option("--port", default=9808, show_default=True, type=int)
def serve_metrics(host: str, port: int) -> None:
    """Serve this host's worker counters (PROMETHEUS_MULTIPROC_DIR) on /metrics."""
    from ohe.observability.metrics import serve_multiprocess

    settings = state().settings
    if settings.prometheus_multiproc_dir is None:
        _fail("PROMETHEUS_MULTIPROC_DIR: required to serve worker metrics")
        return
    serve_multiprocess(host, port, settings.prometheus_multiproc_dir)


def main() -> None:
    """Console entry point ``ohe``: the ohe commands plus Flask's own (db, run, shell, routes)."""
    from ohe.app import create_app

    cli = FlaskGroup(create_app=create_app, help="Open Health Exchange.")
    for name, command in ohe_cli.commands.items():
        cli.add_command(command, name)
    cli.main(prog_name="ohe")
