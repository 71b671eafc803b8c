"""Process commands: the embedded demo's banner, Flower with auth, the worker metrics server."""

from __future__ import annotations

import os
import sys

import click
from sqlalchemy import select

from ohe.cli import fail, ohe_cli
from ohe.extensions import db, state

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
        fail("demo-setup is for the embedded development setup only")
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
    rows = [
        ("API", f"{base}/api/base/"),
        ("", f'curl -H "Authorization: Bearer $(cat {key_file})" {base}/api/base/'),
        ("Health", f"{base}/api/metrics/health/"),
        ("Metrics", f"{base}/api/metrics/metrics/"),
    ]
    if settings.sandbox:
        rows += [
            ("FHIR sandbox", f"{settings.sandbox_url(settings.sandbox_fhir_port)}/fhir"),
            ("Withings sandbox", settings.sandbox_url(settings.sandbox_withings_port)),
        ]
    rows += [("Demo patient", DEMO_PATIENT), ("API key file", str(key_file))]
    lines = ["Open Health Exchange (embedded defaults) serves:"]
    lines += [f"  {label:<17} {value}" for label, value in rows]
    lines.append("Try it: README.md, section 'Try it'. Ctrl-C stops everything.")
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
        fail("OHE_FLOWER_BASIC_AUTH: required to run Flower in production (user:password)")
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
        fail("PROMETHEUS_MULTIPROC_DIR: required to serve worker metrics")
        return
    serve_multiprocess(host, port, settings.prometheus_multiproc_dir)
