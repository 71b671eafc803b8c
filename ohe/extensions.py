"""Flask extensions and the per-app runtime state every layer reaches through ``state()``.

Why a runtime object: the settings, the coordination backend (Redis or in-process), the token
cipher and the circuit-breaker registry are built once per app from its settings and must be the
same objects for the web request and for the Celery task that runs in that app's context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:
    from ohe.coordination import Coordination
    from ohe.crypto import TokenCipher
    from ohe.resilience.breakers import BreakerRegistry
    from ohe.settings import Settings


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


@dataclass
class Runtime:
    """What the app built from its settings; shared by requests and tasks of that app."""

    settings: Settings
    coordination: Coordination
    cipher: TokenCipher
    breakers: BreakerRegistry
    services: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str, build: Callable[[], Any]) -> Any:
        """A collaborator built once per app on first use (FHIR client, provider clients)."""
        if name not in self.services:
            self.services[name] = build()
        return self.services[name]


def state() -> Runtime:
    return current_app.extensions["ohe"]
