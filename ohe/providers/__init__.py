"""Wearable providers. Adding one: a package under ``ohe/providers/`` and one line below.

Each entry names the :class:`~ohe.providers.base.Provider` class, built once per app from its
settings, coordination backend and circuit breakers (``provider(name)``).
"""

from __future__ import annotations

from importlib import import_module

from ohe.extensions import state
from ohe.providers.base import Provider

REGISTRY: dict[str, str] = {
    "withings": "ohe.providers.withings:WithingsProvider",
}


def provider_class(name: str) -> type[Provider]:
    module, _, attribute = REGISTRY[name].partition(":")
    return getattr(import_module(module), attribute)


def provider(name: str) -> Provider:
    """The app's provider ``name`` (KeyError for providers not enabled in OHE_PROVIDERS)."""
    runtime = state()
    if name not in runtime.settings.providers:
        raise KeyError(name)
    return runtime.service(
        f"provider:{name}",
        lambda: provider_class(name)(
            runtime.settings,
            runtime.coordination,
            runtime.breakers.get_breaker(provider_class(name).breaker),
        ),
    )


def enabled() -> tuple[str, ...]:
    return state().settings.providers
