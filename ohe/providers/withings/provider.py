"""``WithingsProvider``: the Provider contract (``ohe.providers.base``) for Withings.

Built once per app; it holds no per-link state. Stream behaviour lives in the stream modules
and is reached through ``streams.SPECS``; OAuth in ``oauth``; webhooks in ``notify``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from ohe.coordination import Coordination
from ohe.providers.base import (
    Capabilities,
    FetchRequest,
    Notification,
    Provider,
    ProviderSession,
    Stream,
    TokenSet,
    TokenSource,
)
from ohe.providers.withings import notify, oauth
from ohe.providers.withings.api import WithingsApi
from ohe.providers.withings.paging import Plan, unix
from ohe.providers.withings.session import WithingsSession
from ohe.providers.withings.streams import APPLI_STREAMS, SPECS, STREAMS
from ohe.resilience.breakers import Breaker
from ohe.samples import Sample
from ohe.settings import Settings


class WithingsProvider(Provider):
    name: ClassVar[str] = "withings"
    display_name: ClassVar[str] = "Withings"
    breaker: ClassVar[str] = "withings_api"
    streams: ClassVar[Mapping[str, Stream]] = STREAMS

    def __init__(self, settings: Settings, coordination: Coordination, breaker: Breaker) -> None:
        self.settings = settings
        self.api = WithingsApi(settings, coordination, breaker)

    # --- OAuth ---------------------------------------------------------------------------------

    def authorize_url(self, state: str, redirect_uri: str, code_challenge: str | None) -> str:
        return oauth.authorize_url(self.settings, state, redirect_uri)

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
        return oauth.exchange_code(self.api, self.settings, code, redirect_uri)

    def refresh(self, refresh_token: str) -> TokenSet:
        return oauth.refresh(self.api, self.settings, refresh_token)

    # --- data ----------------------------------------------------------------------------------

    def session(self, tokens: TokenSource) -> ProviderSession:
        return WithingsSession(self.api, tokens)

    def first_request(
        self, stream: str, *, cursor: str | None, start: datetime | None, end: datetime | None
    ) -> FetchRequest:
        """Incremental from ``cursor`` when given, else the window [start, end (default now)]."""
        spec = SPECS.get(stream)
        if spec is None:
            raise ValueError(f"Withings has no stream {stream!r}; known: {', '.join(SPECS)}")
        if cursor is None and start is None:
            raise ValueError("first_request needs a cursor or a window start")
        plan = Plan(
            stream,
            unix(cursor) if cursor is not None else None,
            _seconds(start) if start is not None else None,
            _seconds(end) if end is not None else int(time.time()),
        )
        return spec.plan(plan)

    def parse(self, request: FetchRequest, payload: dict[str, Any]) -> list[Sample]:
        spec = SPECS.get(request.stream)
        if spec is None:
            raise ValueError(f"Withings has no stream {request.stream!r}")
        return spec.parse(request, payload)

    # --- webhooks ------------------------------------------------------------------------------

    def parse_notification(self, form: Mapping[str, str]) -> Notification:
        return notify.parse_notification(form)

    def capabilities(self) -> Capabilities:
        data_types = sorted({t for s in STREAMS.values() for t in s.data_types})
        return Capabilities(
            data_types=tuple(data_types),
            streams=tuple(STREAMS),
            webhooks=True,
            categories={str(appli): streams for appli, streams in APPLI_STREAMS.items()},
        )


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("first_request needs timezone-aware datetimes")
    return int(moment.timestamp())
