"""Authenticated calls for one link (``ProviderSession``): fetch a page, devices, subscriptions."""

from __future__ import annotations

from typing import Any

from ohe.observability.context import bind
from ohe.providers.base import FetchRequest, FetchResult, Subscription, TokenSource
from ohe.providers.withings import devices, notify
from ohe.providers.withings.api import WithingsApi
from ohe.providers.withings.streams import SPECS
from ohe.samples import DeviceRef


class WithingsSession:
    def __init__(self, api: WithingsApi, tokens: TokenSource) -> None:
        self._api = api
        self._tokens = tokens

    def _call(self, path: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._api.call(path, action, params, tokens=self._tokens)

    def fetch(self, request: FetchRequest) -> FetchResult:
        spec = SPECS.get(request.stream)
        if spec is None:
            raise ValueError(
                f"Withings has no stream {request.stream!r}; known: {', '.join(SPECS)}"
            )
        with bind(provider="withings", stream=request.stream):
            return spec.fetch(self._call, request)

    def devices(self) -> list[DeviceRef]:
        return devices.devices(self._call)

    def subscribe(self, callback_url: str, categories: tuple[str, ...], comment: str) -> list[str]:
        return notify.subscribe(self._api, self._tokens, callback_url, categories, comment)

    def unsubscribe(self, callback_url: str, categories: tuple[str, ...]) -> None:
        notify.unsubscribe(self._api, self._tokens, callback_url, categories)

    def subscriptions(self) -> list[Subscription]:
        return notify.subscriptions(self._api, self._tokens)
