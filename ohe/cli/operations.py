"""Operations commands: the circuit-breaker registry, failed tasks, and the duplicate sweeper."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ohe.cli import fail, ohe_cli
from ohe.extensions import db, state
from ohe.fhir import identifiers
from ohe.fhir.devices import ASSOCIATION_STATUS_SYSTEM
from ohe.models import FailedTask
from ohe.resilience.breakers import registry
from ohe.tasks.chain import fhir_client

breakers_cli = AppGroup("breakers", help="Circuit breakers (shared by every process).")
ohe_cli.add_command(breakers_cli)


@breakers_cli.command("status")
def breakers_status() -> None:
    """registry.get_all_states(): state, failures, opened_at, last failure."""
    header = ("BREAKER", "STATE", "FAILURES", "OPENED AT", "LAST FAILURE", "FORCED")
    click.echo(
        f"{header[0]:<14} {header[1]:<10} {header[2]:>8}  {header[3]:<32} {header[4]:<32} "
        f"{header[5]}"
    )
    for name, info in registry.get_all_states().items():
        click.echo(
            f"{name:<14} {info['state']:<10} {info['failure_count']:>8}  "
            f"{info['opened_at'] or '-':<32} {info['last_failure_at'] or '-':<32} "
            f"{info['forced'] or '-'}"
        )


@breakers_cli.command("force-open")
@click.argument("name")
def breakers_force_open(name: str) -> None:
    """Stop all calls through NAME until force-close (survives the reset timeout)."""
    _breaker(name).force_open()
    click.echo(f"{name}: forced open")


@breakers_cli.command("force-close")
@click.argument("name")
def breakers_force_close(name: str) -> None:
    """Resume calls through NAME now (investigate the upstream first)."""
    _breaker(name).force_close()
    click.echo(f"{name}: closed")


@breakers_cli.command("reset")
def breakers_reset() -> None:
    """registry.reset_all(): close every breaker."""
    registry.reset_all()
    click.echo("all breakers closed")


def _breaker(name: str) -> Any:
    try:
        return registry.get_breaker(name)
    except KeyError as exc:
        fail(str(exc).strip("'\""))


failed_cli = AppGroup(
    "failed-tasks", help="Tasks dropped after their last retry or the redelivery cap."
)
ohe_cli.add_command(failed_cli)


@failed_cli.command("list")
@click.option("--limit", default=50, show_default=True)
def failed_list(limit: int) -> None:
    rows = db.session.scalars(select(FailedTask).order_by(FailedTask.id.desc()).limit(limit)).all()
    for row in rows:
        click.echo(
            f"{row.id:>6}  {row.created_at:%Y-%m-%d %H:%M:%S}  {row.task_name:<32} "
            f"{row.error_class:<18} deliveries={row.deliveries}  {row.error_message[:80]}"
        )
    if not rows:
        click.echo("no failed tasks")


@failed_cli.command("retry")
@click.argument("failed_id", type=int)
def failed_retry(failed_id: int) -> None:
    """Send a failed task again with the same arguments (tasks are idempotent)."""
    row = db.session.get(FailedTask, failed_id)
    if row is None:
        fail(f"no failed task {failed_id}")
        return
    celery = state_celery()
    celery.send_task(
        row.task_name,
        args=row.args.get("args", []),
        kwargs=row.args.get("kwargs", {}),
        queue=row.queue or "maintenance",
    )
    click.echo(f"sent {row.task_name} again")


def state_celery() -> Any:
    from flask import current_app

    return current_app.extensions["celery"]


VOID = {
    "Observation": lambda r: {**r, "status": "entered-in-error"},
    "Device": lambda r: {**r, "status": "entered-in-error"},
    "DeviceAssociation": lambda r: {
        **r,
        "status": {"coding": [{"system": ASSOCIATION_STATUS_SYSTEM, "code": "entered-in-error"}]},
    },
}


@ohe_cli.command("dedup-check")
@click.option(
    "--repair", is_flag=True, help="Mark extras entered-in-error and free their identifier."
)
@click.option(
    "--resource-type", type=click.Choice(sorted(identifiers.KINDS_BY_TYPE)), multiple=True
)
def dedup_check(repair: bool, resource_type: tuple[str, ...]) -> None:
    """Find OHE identifiers held by more than one resource on the FHIR server (and repair them).

    Servers can race on conditional writes; a duplicate makes every later conditional update of
    that identifier fail with 412. The newest resource is kept; each extra is marked
    entered-in-error and its identifier value suffixed, so the identifier is unique again.
    """
    settings = state().settings
    kinds = dict(identifiers.KINDS_BY_TYPE)
    if settings.fhir_version == "R4":
        kinds.pop("DeviceAssociation")
    client = fhir_client()
    found = repaired = 0
    for kind_type in resource_type or tuple(kinds):
        for provider in settings.providers:
            for kind in kinds.get(kind_type, ()):
                system = identifiers.system(settings.fhir_identifier_base, provider, kind)
                groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for resource in client.search(
                    kind_type, {"identifier": f"{system}|", "_count": "1000"}
                ):
                    for ident in resource.get("identifier", []):
                        if ident.get("system") == system:
                            groups[ident["value"]].append(resource)
                for value, resources in groups.items():
                    if len(resources) < 2:
                        continue
                    found += len(resources) - 1
                    resources.sort(
                        key=lambda r: r.get("meta", {}).get("lastUpdated", ""), reverse=True
                    )
                    keep = resources[0]
                    click.echo(
                        f"{kind_type} {value}: {len(resources)} resources, keeping {keep['id']}"
                    )
                    if repair:
                        for extra in resources[1:]:
                            client.update(_voided(kind_type, extra, system, keep["id"]))
                            repaired += 1
    click.echo(f"{found} duplicate resources found, {repaired} repaired")


def _voided(kind_type: str, resource: dict[str, Any], system: str, kept: str) -> dict[str, Any]:
    renamed = [
        {**i, "value": f"{i['value']}:duplicate-of:{kept}"} if i.get("system") == system else i
        for i in resource["identifier"]
    ]
    body = {k: v for k, v in resource.items() if k not in ("meta", "text")}
    return VOID[kind_type]({**body, "identifier": renamed})
