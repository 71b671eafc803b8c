"""The Provider contract: what a wearable provider package gives the rest of OHE.

A provider is one package under ``ohe/providers/`` plus one line in ``ohe/providers/__init__.py``.
It knows its provider's OAuth flow, its data endpoints and their paging, its webhook format, and
how to turn a page of provider JSON into provider-neutral :class:`~ohe.samples.Sample` objects.
It knows nothing about FHIR, Celery or the sync bookkeeping: the tasks layer drives it.

How sync uses it (``ohe.tasks.sync``): for each *stream* (a provider endpoint family with its own
cursor, e.g. Withings ``measures`` = getmeas), ``first_request`` plans the first page from the
stored cursor or a time window; ``ProviderSession.fetch`` calls the provider (shared rate limit,
breaker, token refresh) and returns the raw page, the next page's request and the cursor to
store once every page is written; ``parse`` — pure, no I/O — turns the page into samples.
Requests and cursors are small JSON values because they travel through the broker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from ohe.resilience.errors import AuthError
from ohe.samples import DeviceRef, Sample


@dataclass(frozen=True)
class TokenSet:
    """Tokens from a code exchange or a refresh. Never logged: see ``__repr__``."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scopes: tuple[str, ...] = ()
    external_user_id: str | None = None  # the provider's stable user id (code exchange only)

    def __repr__(self) -> str:
        return f"TokenSet(expires_at={self.expires_at.isoformat()}, scopes={self.scopes!r})"


@dataclass(frozen=True)
class Stream:
    """An endpoint family with its own cursor, e.g. Withings ``measures`` (getmeas)."""

    name: str
    data_types: frozenset[str]  # sample data types it can yield (keys of ohe.fhir.codes)
    scope: str | None = None  # OAuth scope it needs; skipped when the user did not grant it
    max_backfill_days: int | None = None  # e.g. intraday: a backfill goes this far back at most
    #: Record kinds a *window* fetch returns completely, so that one written earlier and absent
    #: now was deleted at the provider (``ohe.tasks.deletions``). Empty: absence proves nothing.
    complete_kinds: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FetchRequest:
    """One page to fetch; small and JSON-serializable (it is a task argument)."""

    stream: str
    start: int | None = None  # unix seconds, inclusive
    end: int | None = None  # unix seconds
    cursor: str | None = None  # incremental position (e.g. Withings lastupdate)
    page: str | None = None  # the provider's paging token or offset

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FetchRequest:
        return cls(**data)


@dataclass(frozen=True)
class FetchResult:
    payload: dict[str, Any]  # the provider's page, as ``Provider.parse`` expects it
    records: int  # provider records in the page (for progress and metrics)
    next_request: FetchRequest | None = None  # the following page of the same query
    next_cursor: str | None = None  # stored once every page of the run is written


@dataclass(frozen=True)
class Notification:
    """A provider webhook, parsed: which user, which streams, which window changed."""

    external_user_id: str
    category: str  # the provider's notion (Withings appli), kept for the dedup ledger
    streams: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None
    action: str | None = None  # e.g. Withings appli 46 "unlink"/"delete"


@dataclass(frozen=True)
class Subscription:
    category: str
    callback_url: str
    comment: str | None = None


class TokenSource(Protocol):
    """Hands a session the link's access token; the tasks layer implements it (DB + lock)."""

    def current(self) -> str:
        """A valid access token (refreshed first if it expires soon)."""

    def refreshed(self, rejected: str) -> str:
        """The provider rejected ``rejected``: refresh (once across all processes) and return."""


class ProviderSession(Protocol):
    """Authenticated calls for one link."""

    def fetch(self, request: FetchRequest) -> FetchResult: ...

    def devices(self) -> list[DeviceRef]: ...

    def subscribe(self, callback_url: str, categories: tuple[str, ...], comment: str) -> list[str]:
        """Subscribe each category; returns the categories subscribed (raises on failure)."""

    def unsubscribe(self, callback_url: str, categories: tuple[str, ...]) -> None: ...

    def subscriptions(self) -> list[Subscription]: ...


@dataclass(frozen=True)
class Capabilities:
    """What ``GET /api/base/providers/capabilities/`` reports for a provider."""

    data_types: tuple[str, ...]
    streams: tuple[str, ...]
    webhooks: bool
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class Provider(ABC):
    """One provider's behaviour. Instances are built per app from settings (no per-link state)."""

    name: ClassVar[str]  # the provider key in URLs and the database, e.g. "withings"
    display_name: ClassVar[str]
    breaker: ClassVar[str]  # circuit breaker name, e.g. "withings_api"
    streams: ClassVar[Mapping[str, Stream]]

    # --- OAuth ---------------------------------------------------------------------------------

    @abstractmethod
    def authorize_url(self, state: str, redirect_uri: str, code_challenge: str | None) -> str:
        """Where the patient's browser goes to consent."""

    @abstractmethod
    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
        """Trade the callback's code for tokens; raises AuthError on a bad/reused code."""

    @abstractmethod
    def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens; raises ``InvalidGrant`` when the refresh token is dead (re-link needed)."""

    # --- data ----------------------------------------------------------------------------------

    @abstractmethod
    def session(self, tokens: TokenSource) -> ProviderSession: ...

    @abstractmethod
    def first_request(
        self, stream: str, *, cursor: str | None, start: datetime | None, end: datetime | None
    ) -> FetchRequest:
        """The first page of a sync: incremental from ``cursor``, or the window [start, end]."""

    @abstractmethod
    def parse(self, request: FetchRequest, payload: dict[str, Any]) -> list[Sample]:
        """Pure: the samples in a fetched page (no I/O, no clock)."""

    # --- webhooks ------------------------------------------------------------------------------

    @abstractmethod
    def parse_notification(self, form: Mapping[str, str]) -> Notification:
        """A webhook body, or ValidationError saying what is wrong with it."""

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    def streams_for(self, data_types: tuple[str, ...] | None) -> tuple[str, ...]:
        """The streams that yield any of ``data_types`` (all streams when None)."""
        if not data_types:
            return tuple(self.streams)
        wanted = set(data_types)
        return tuple(name for name, s in self.streams.items() if s.data_types & wanted)


class InvalidGrant(AuthError):
    """The refresh token is revoked or expired: the patient must link again."""


ProviderFactory = Callable[..., Provider]
