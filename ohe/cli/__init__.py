"""Operator commands: ``flask --app ohe.app ohe …`` or, installed, ``ohe …``.

Every command runs inside the app context, so it uses the same settings, database and
coordination backend as the web and worker processes. Commands live in modules by concern:
``keys`` (API keys, settings), ``processes`` (demo, Flower, metrics server), ``syncing``
(sync, backfill, links, webhook replay), ``operations`` (breakers, failed tasks, dedup).
"""

from __future__ import annotations

import click
from flask.cli import AppGroup, FlaskGroup

ohe_cli = AppGroup("ohe", help="Open Health Exchange operator commands.")


def fail(message: str) -> None:
    """End a command with one clear line and exit status 1."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


class _EntryPoint(FlaskGroup):
    """``ohe``: the app's commands include the ``ohe`` group itself, already spread out here."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in super().list_commands(ctx) if name != ohe_cli.name]


def main() -> None:
    """Console entry point ``ohe``: the ohe commands plus Flask's own (db, run, shell, routes)."""
    from ohe.app import create_app

    cli = _EntryPoint(create_app=create_app, help="Open Health Exchange.")
    for name, command in ohe_cli.commands.items():
        cli.add_command(command, name)
    cli.main(prog_name="ohe")


from ohe.cli import keys, operations, processes, syncing  # noqa: E402, F401 - they register commands
