"""FHIR client: transaction bundles of conditional writes, with the errors servers really send.

- One pooled HTTP session per process; bundles of ``OHE_FHIR_BATCH_SIZE`` entries, so 1,000
  observations cost about five requests (the reference made two per observation, each on a
  new connection).
- Every request goes through the ``fhir_server`` breaker; failures are classified with the
  guide's error classes (429, 5xx and timeouts retryable; other 4xx not).
- 409/412 on a conditional write means "someone else wrote it": the bundle is retried once,
  then written entry by entry, and an entry still answered 409/412 is re-read by identifier and
  counted as already there — never a failure. A 400/422 from a server whose rules are stricter
  than ours sinks a transaction; the bundle is then bisected so only the entries the server
  rejects are dropped (counted, logged) and the rest are written.
- Auth: none, a static bearer token, or OAuth2 client credentials (token cached per process,
  refreshed before it expires and once on a 401).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter

from ohe.fhir import bundle
from ohe.observability.metrics import (
    FHIR_REQUEST_DURATION,
    FHIR_REQUESTS,
    FHIR_RESOURCES_WRITTEN,
)
from ohe.resilience.breakers import Breaker
from ohe.resilience.errors import (
    ApiError,
    AuthError,
    NetworkError,
    OheError,
    ValidationError,
    error_for_status,
)

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/fhir+json"
TOKEN_MARGIN = 30.0  # refresh a client-credentials token this many seconds before it expires
CONFLICT = (409, 412)


@dataclass(frozen=True)
class FhirConfig:
    base_url: str
    version: str = "R5"
    auth: str = "none"
    token: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scope: str | None = None
    timeout: float = 30.0
    batch_size: int = 200


@dataclass
class WriteResult:
    """What happened to the entries of one write."""

    created: int = 0
    updated: int = 0
    existing: int = 0  # answered 409/412 and found on re-read: someone wrote it already
    rejected: list[str] = field(default_factory=list)  # server-side validation failures
    requests: int = 0

    @property
    def written(self) -> int:
        return self.created + self.updated + self.existing

    def add(self, other: WriteResult) -> None:
        self.created += other.created
        self.updated += other.updated
        self.existing += other.existing
        self.rejected += other.rejected
        self.requests += other.requests


class ConflictError(ApiError):
    """409/412 from the server on a conditional write."""


class TokenSource:
    """The Authorization header for the configured auth mode."""

    def __init__(self, config: FhirConfig, session: requests.Session) -> None:
        self._config = config
        self._session = session
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def header(self) -> dict[str, str]:
        if self._config.auth == "none":
            return {}
        if self._config.auth == "bearer":
            return {"Authorization": f"Bearer {self._config.token}"}
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at - TOKEN_MARGIN:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self._config.scope:
            form["scope"] = self._config.scope
        try:
            response = self._session.post(
                self._config.token_url,  # type: ignore[arg-type]
                data=form,
                auth=(self._config.client_id or "", self._config.client_secret or ""),
                timeout=self._config.timeout,
            )
        except requests.RequestException as exc:
            raise NetworkError(f"FHIR token endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise AuthError(f"FHIR token endpoint answered {response.status_code}")
        body = response.json()
        self._token = body["access_token"]
        self._expires_at = time.monotonic() + float(body.get("expires_in", 300))


class FhirClient:
    def __init__(
        self, config: FhirConfig, breaker: Breaker, session: requests.Session | None = None
    ) -> None:
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self._breaker = breaker
        self._session = session or requests.Session()
        self._session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=16))
        self._session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=16))
        self._tokens = TokenSource(config, self._session)

    # --- HTTP --------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request through the breaker; raises classified errors for failures."""
        return self._breaker.call(self._send, method, path, **kwargs)

    def _send(
        self, method: str, path: str, *, body: bytes | None = None, **kwargs: Any
    ) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        for attempt in (1, 2):
            headers = {"Accept": MEDIA_TYPE, **self._tokens.header()}
            if body is not None:
                headers["Content-Type"] = MEDIA_TYPE
            started = time.perf_counter()
            try:
                response = self._session.request(
                    method, url, data=body, headers=headers, timeout=self.config.timeout, **kwargs
                )
            except requests.Timeout:
                FHIR_REQUESTS.labels(method, "timeout").inc()
                raise NetworkError(
                    f"FHIR {method} timed out after {self.config.timeout:g} s"
                ) from None
            except requests.ConnectionError:
                FHIR_REQUESTS.labels(method, "connection_error").inc()
                raise NetworkError(f"FHIR server unreachable at {self.base_url}") from None
            finally:
                FHIR_REQUEST_DURATION.labels(method).observe(time.perf_counter() - started)
            FHIR_REQUESTS.labels(method, str(response.status_code)).inc()
            if (
                response.status_code == 401
                and self.config.auth == "client_credentials"
                and attempt == 1
            ):
                self._tokens.invalidate()
                continue
            if response.status_code < 400:
                return response
            raise self._error(response, method)
        raise AuthError("FHIR server refused the refreshed token")  # pragma: no cover

    @staticmethod
    def _error(response: requests.Response, method: str) -> OheError:
        detail = _outcome_text(response)
        message = f"FHIR {method} answered {response.status_code}: {detail}"
        if response.status_code in CONFLICT:
            return ConflictError(message)
        retry_after = response.headers.get("Retry-After")
        hint = float(retry_after) if retry_after and retry_after.isdigit() else None
        return error_for_status(response.status_code, message, retry_after=hint)

    # --- writes ------------------------------------------------------------------------------

    def write(self, entries: list[dict[str, Any]]) -> WriteResult:
        """Write entries as transaction bundles of the configured size."""
        result = WriteResult()
        for part in bundle.chunks(entries, self.config.batch_size):
            result.add(self._write_bundle(part))
        return result

    def _write_bundle(self, entries: list[dict[str, Any]]) -> WriteResult:
        result = WriteResult()
        for attempt in (1, 2):
            result.requests += 1
            try:
                response = self.request("POST", "", body=bundle.dumps(bundle.transaction(entries)))
            except ConflictError:
                if attempt == 1:
                    continue  # a concurrent writer created it meanwhile: now it is an update
                log.warning(
                    "conditional write conflict persists; writing entries one by one",
                    extra={
                        "operation": "fhir_write",
                        "error_type": "api_error",
                        "entries": len(entries),
                    },
                )
                result.add(self._write_singly(entries))
                return result
            except ValidationError as exc:
                result.add(self._bisect(entries, str(exc)))
                return result
            result.add(_count(entries, response.json()))
            return result
        return result  # pragma: no cover

    def _bisect(self, entries: list[dict[str, Any]], reason: str) -> WriteResult:
        """Find the entries the server rejects; write the others."""
        readers = [e for e in entries if e["resource"]["resourceType"] != "Device"]
        if len(readers) <= 1:
            resource_type = (readers or entries)[0]["resource"]["resourceType"]
            FHIR_RESOURCES_WRITTEN.labels(resource_type, "rejected").inc()
            log.warning(
                "FHIR server rejected a resource",
                extra={
                    "operation": "fhir_write",
                    "error_type": "validation_error",
                    "resource_type": resource_type,
                    "reason": reason,
                },
            )
            return WriteResult(rejected=[reason])
        result = WriteResult()
        half = max(len(readers) // 2, 1)
        for part in bundle.chunks(entries, half):
            result.add(self._write_bundle(part))
        return result

    def _write_singly(self, entries: list[dict[str, Any]]) -> WriteResult:
        result = WriteResult()
        for entry in entries:
            single = [entry]
            if "device" in entry["resource"]:
                reference = entry["resource"]["device"]["reference"]
                single = [e for e in entries if e.get("fullUrl") == reference] + single
            result.requests += 1
            try:
                response = self.request("POST", "", body=bundle.dumps(bundle.transaction(single)))
            except ConflictError:
                result.add(self._already_there(entry))
                continue
            result.add(_count(single[-1:], {"entry": response.json().get("entry", [])[-1:]}))
        return result

    def _already_there(self, entry: dict[str, Any]) -> WriteResult:
        resource = entry["resource"]
        system, value = bundle.identifier_of(resource)
        found = self.search_identifier(resource["resourceType"], system, value)
        if not found:
            raise ApiError(f"{resource['resourceType']} conflict but nothing found by identifier")
        FHIR_RESOURCES_WRITTEN.labels(resource["resourceType"], "existing").inc()
        if len(found) > 1:
            log.warning(
                "duplicate resources share an identifier; run `ohe dedup-check`",
                extra={
                    "operation": "fhir_write",
                    "error_type": "api_error",
                    "resource_type": resource["resourceType"],
                    "count": len(found),
                },
            )
        return WriteResult(existing=1, requests=1)

    # --- reads -------------------------------------------------------------------------------

    def search(
        self, resource_type: str, params: Mapping[str, str | list[str]]
    ) -> Iterator[dict[str, Any]]:
        """Every matching resource, following ``next`` links (a list repeats its parameter)."""
        url: str | None = resource_type
        query: Mapping[str, str | list[str]] | None = params
        while url:
            page = self.request("GET", url, params=query).json()
            for entry in page.get("entry", []):
                if entry.get("search", {}).get("mode", "match") == "match":
                    yield entry["resource"]
            url = next(
                (link["url"] for link in page.get("link", []) if link["relation"] == "next"), None
            )
            query = None

    def search_identifier(
        self, resource_type: str, system: str, value: str
    ) -> list[dict[str, Any]]:
        return list(self.search(resource_type, {"identifier": f"{system}|{value}"}))

    def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        """PUT one resource by its id (used to mark duplicates entered-in-error)."""
        return self.request(
            "PUT", f"{resource['resourceType']}/{resource['id']}", body=bundle.dumps(resource)
        ).json()


def _count(entries: list[dict[str, Any]], response: dict[str, Any]) -> WriteResult:
    """Outcomes per entry from a transaction-response (same order as the request)."""
    result = WriteResult()
    for entry, outcome in zip(entries, response.get("entry", []), strict=False):
        status = str(outcome.get("response", {}).get("status", ""))
        resource_type = entry["resource"]["resourceType"]
        kind = "created" if status.startswith("201") else "updated"
        if entry["request"]["method"] == "POST" and status.startswith("200"):
            kind = "existing"  # conditional create found it
        setattr(result, kind, getattr(result, kind) + 1)
        FHIR_RESOURCES_WRITTEN.labels(resource_type, kind).inc()
    return result


def _outcome_text(response: requests.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.reason or "no details"
    issues = body.get("issue", []) if isinstance(body, dict) else []
    texts = [i.get("diagnostics") or i.get("details", {}).get("text", "") for i in issues]
    return "; ".join(t for t in texts if t)[:300] or response.reason or "no details"


def client_factory(settings: Any, breaker: Breaker) -> Callable[[], FhirClient]:
    def build() -> FhirClient:
        return FhirClient(
            FhirConfig(
                base_url=settings.fhir_base_url,
                version=settings.fhir_version,
                auth=settings.fhir_auth,
                token=settings.fhir_token,
                token_url=settings.fhir_token_url,
                client_id=settings.fhir_client_id,
                client_secret=settings.fhir_client_secret,
                scope=settings.fhir_scope,
                timeout=settings.fhir_timeout,
                batch_size=settings.fhir_batch_size,
            ),
            breaker,
        )

    return build
