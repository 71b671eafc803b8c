"""Every setting of the service, read from the environment in one place.

Why one module: the operator needs one table of knobs (the README's configuration table is
checked against ``SETTINGS_TABLE`` by a test), and a bad value must stop the process at start
with one line that names the variable and what it expects, not deep inside a request later.
Nothing else in the package reads ``os.environ``.

Each field of :class:`Settings` carries its environment name, accepted aliases (names the older
reference deployment used, so environment files migrate), a parser and a description. Defaults
are the embedded ones: SQLite under ``./var``, kombu's filesystem transport, in-process
coordination, and the local sandboxes. ``OHE_ENV=production`` turns the secrets into required
values.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ohe import env_parsers as parsers
from ohe.env_parsers import BreakerSpec, SettingsError, setting

__all__ = ["BreakerSpec", "Settings", "SettingsError", "settings_table"]

DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105


def _derived_fernet_key(values: Mapping[str, Any]) -> tuple[str, ...]:
    digest = hashlib.sha256(("ohe-token-key:" + values["secret_key"]).encode()).digest()
    return (base64.urlsafe_b64encode(digest).decode(),)


@dataclass(frozen=True)
class Settings:
    """Typed settings; build with :meth:`from_env`. Field order is the order of derivation."""

    # --- core --------------------------------------------------------------------------------
    env: str = setting(
        "development",
        "`development` (embedded defaults, readable logs) or `production` "
        "(secrets required, JSON logs, sandboxes off).",
        env="OHE_ENV",
        parse=parsers.choice("development", "production"),
        aliases=("ENVIRONMENT",),
    )
    secret_key: str = setting(
        DEV_SECRET_KEY,
        "Signs link URLs and OAuth state; keys the pseudonymous identifier scope. "
        "At least 32 characters in production.",
        env="OHE_SECRET_KEY",
        aliases=("SECRET_KEY",),
        secret=True,
        production_required=True,
    )
    token_encryption_keys: tuple[str, ...] = setting(
        _derived_fernet_key,
        "Fernet keys that encrypt provider tokens at rest, comma-separated, newest first "
        "(older keys still decrypt). Development derives one from the secret key.",
        env="OHE_TOKEN_ENCRYPTION_KEYS",
        parse=parsers.fernet_keys,
        secret=True,
        production_required=True,
    )
    data_dir: Path = setting(
        Path("var"),
        "Directory for embedded state: SQLite database, filesystem broker, beat schedule.",
        env="OHE_DATA_DIR",
        parse=parsers.path,
    )
    database_url: str = setting(
        lambda v: f"sqlite:///{(v['data_dir'] / 'ohe.db').resolve()}",
        "SQLAlchemy database URL. Embedded: SQLite under the data directory. "
        "Production: `postgresql+psycopg2://user:pass@host/db`.",
        env="OHE_DATABASE_URL",
        parse=parsers.url("sqlite", "postgresql", "postgresql+psycopg2", "postgres"),
        aliases=("DATABASE_URL",),
        secret=True,
    )
    redis_url: str | None = setting(
        None,
        "Redis for locks, rate limits, breaker state and dedup keys shared by all processes. "
        "Empty: in-process coordination (one worker process, embedded default).",
        env="OHE_REDIS_URL",
        parse=parsers.optional(parsers.url("redis", "rediss", "unix")),
        aliases=("REDIS_URL",),
        secret=True,
    )
    broker_url: str = setting(
        lambda v: v["redis_url"] or "filesystem://localhost/",
        "Celery broker. Default: the Redis URL, else kombu's filesystem transport "
        "(single host, no server).",
        env="OHE_BROKER_URL",
        parse=parsers.url("redis", "rediss", "amqp", "amqps", "filesystem", "memory"),
        aliases=("CELERY_BROKER_URL",),
        secret=True,
    )
    public_url: str = setting(
        "http://localhost:8000",
        "Base URL under which browsers and providers reach this service "
        "(link URLs, OAuth callbacks, webhook callbacks).",
        env="OHE_PUBLIC_URL",
        parse=parsers.url("http", "https"),
    )
    max_request_bytes: int = setting(
        1_048_576,
        "Largest accepted request body in bytes; larger bodies get 413.",
        env="OHE_MAX_REQUEST_BYTES",
        parse=parsers.integer(1024),
    )

    # --- logging and metrics -------------------------------------------------------------------
    log_level: str = setting(
        "INFO",
        "Root log level.",
        env="OHE_LOG_LEVEL",
        parse=parsers.choice(*parsers.LOG_LEVELS, upper=True),
    )
    log_format: str = setting(
        lambda v: "json" if v["env"] == "production" else "text",
        "`json` (one JSON object per line, the operations guide's fields) or `text`. "
        "Default: json in production, text in development.",
        env="OHE_LOG_FORMAT",
        parse=parsers.choice("json", "text"),
        aliases=("LOG_FORMAT",),
    )
    log_levels: dict[str, str] = setting(
        lambda v: {},
        "Per-logger levels, e.g. `ohe.providers=DEBUG,ohe.fhir=WARNING`.",
        env="OHE_LOG_LEVELS",
        parse=parsers.log_levels,
    )
    prometheus_multiproc_dir: Path | None = setting(
        None,
        "prometheus_client multiprocess directory shared by web and worker processes on one "
        "host; set it for gunicorn and prefork workers. The library reads it too.",
        env="PROMETHEUS_MULTIPROC_DIR",
        parse=parsers.optional(parsers.path),
    )

    # --- Celery --------------------------------------------------------------------------------
    task_soft_time_limit: int = setting(
        120,
        "Seconds before a task gets SoftTimeLimitExceeded (cleans up and retries).",
        env="OHE_TASK_SOFT_TIME_LIMIT",
        parse=parsers.integer(1),
    )
    task_time_limit: int = setting(
        150,
        "Seconds before a task's worker child is killed (the message is redelivered).",
        env="OHE_TASK_TIME_LIMIT",
        parse=parsers.integer(1),
    )
    task_max_deliveries: int = setting(
        5,
        "Redelivery cap: a message delivered this many times without finishing "
        "(worker killed, OOM) is recorded as poison and dropped.",
        env="OHE_TASK_MAX_DELIVERIES",
        parse=parsers.integer(1),
    )
    broker_visibility_timeout: int = setting(
        3600,
        "Seconds an unacknowledged Redis-broker message waits before redelivery; "
        "above every task runtime and retry delay.",
        env="OHE_BROKER_VISIBILITY_TIMEOUT",
        parse=parsers.integer(10),
    )
    flower_basic_auth: str | None = setting(
        None,
        "`user:password` for Flower's basic auth; `ohe flower` refuses to start without it "
        "in production.",
        env="OHE_FLOWER_BASIC_AUTH",
        parse=parsers.optional(parsers.basic_auth),
        secret=True,
    )

    # --- retention -----------------------------------------------------------------------------
    webhook_event_retention_days: int = setting(
        7,
        "Days the webhook dedup ledger keeps processed notifications.",
        env="OHE_WEBHOOK_EVENT_RETENTION_DAYS",
        parse=parsers.integer(1),
    )
    sync_status_retention_days: int = setting(
        90,
        "Days sync-run rows (SyncStatus) and the failed-task ledger are kept.",
        env="OHE_SYNC_STATUS_RETENTION_DAYS",
        parse=parsers.integer(1),
    )

    # --- resilience ----------------------------------------------------------------------------
    breaker_withings_api: BreakerSpec = setting(
        BreakerSpec(3, 2, 30),
        "Breaker `withings_api`: failures to open / successes to close / seconds open.",
        env="OHE_BREAKER_WITHINGS_API",
        parse=parsers.breaker,
    )
    breaker_fitbit_api: BreakerSpec = setting(
        BreakerSpec(3, 2, 30),
        "Breaker `fitbit_api`: failures to open / successes to close / seconds open.",
        env="OHE_BREAKER_FITBIT_API",
        parse=parsers.breaker,
    )
    breaker_fhir_server: BreakerSpec = setting(
        BreakerSpec(5, 3, 60),
        "Breaker `fhir_server`: failures to open / successes to close / seconds open.",
        env="OHE_BREAKER_FHIR_SERVER",
        parse=parsers.breaker,
    )

    # --- sandboxes -----------------------------------------------------------------------------
    sandbox: bool = setting(
        lambda v: v["env"] == "development",
        "Point providers and FHIR at the local sandboxes by default. "
        "Default: on in development, off in production.",
        env="OHE_SANDBOX",
        parse=parsers.boolean,
    )
    sandbox_host: str = setting(
        "127.0.0.1",
        "Host the sandboxes listen on and are reached at.",
        env="OHE_SANDBOX_HOST",
    )
    sandbox_fhir_port: int = setting(
        8090,
        "Port of the sandbox FHIR server.",
        env="OHE_SANDBOX_FHIR_PORT",
        parse=parsers.integer(1),
    )
    sandbox_withings_port: int = setting(
        8091,
        "Port of the sandbox Withings API.",
        env="OHE_SANDBOX_WITHINGS_PORT",
        parse=parsers.integer(1),
    )

    # --- providers and sync ----------------------------------------------------------------------
    providers: tuple[str, ...] = setting(
        ("withings",),
        "Providers offered to patients, comma-separated (known: withings).",
        env="OHE_PROVIDERS",
        parse=parsers.word_list,
    )
    withings_client_id: str | None = setting(
        lambda v: "ohe-sandbox-client" if v["sandbox"] else None,
        "Withings OAuth client id. Default: the sandbox's client when sandboxes are on.",
        env="OHE_WITHINGS_CLIENT_ID",
        parse=parsers.optional(parsers.text),
        aliases=("WITHINGS_CLIENT_ID",),
    )
    withings_client_secret: str | None = setting(
        lambda v: "ohe-sandbox-secret" if v["sandbox"] else None,
        "Withings OAuth client secret. Default: the sandbox's when sandboxes are on.",
        env="OHE_WITHINGS_CLIENT_SECRET",
        parse=parsers.optional(parsers.text),
        aliases=("WITHINGS_CLIENT_SECRET",),
        secret=True,
    )
    withings_api_url: str = setting(
        lambda v: (
            f"http://{v['sandbox_host']}:{v['sandbox_withings_port']}"
            if v["sandbox"]
            else "https://wbsapi.withings.net"
        ),
        "Withings API base (data, token and notify calls). Default: the sandbox, or "
        "https://wbsapi.withings.net with sandboxes off.",
        env="OHE_WITHINGS_API_URL",
        parse=parsers.url("http", "https"),
    )
    withings_authorize_url: str = setting(
        lambda v: (
            f"http://{v['sandbox_host']}:{v['sandbox_withings_port']}/oauth2_user/authorize2"
            if v["sandbox"]
            else "https://account.withings.com/oauth2_user/authorize2"
        ),
        "Withings consent page. Default: the sandbox's, or account.withings.com.",
        env="OHE_WITHINGS_AUTHORIZE_URL",
        parse=parsers.url("http", "https"),
    )
    withings_scopes: tuple[str, ...] = setting(
        ("user.info", "user.metrics", "user.activity"),
        "OAuth scopes asked of Withings users, comma-separated.",
        env="OHE_WITHINGS_SCOPES",
        parse=parsers.word_list,
    )
    withings_notify_categories: tuple[str, ...] = setting(
        ("1", "2", "4", "16", "44", "54"),
        "Withings notification categories (appli) subscribed on link, comma-separated.",
        env="OHE_WITHINGS_NOTIFY_CATEGORIES",
        parse=parsers.word_list,
    )
    withings_rate_limit: int = setting(
        120,
        "Withings calls allowed per window for the whole application, shared by every process.",
        env="OHE_WITHINGS_RATE_LIMIT",
        parse=parsers.integer(1),
        aliases=("WITHINGS_MAX_REQUESTS_PER_WINDOW",),
    )
    withings_rate_window: float = setting(
        60.0,
        "Seconds of the Withings rate-limit window (a rolling window).",
        env="OHE_WITHINGS_RATE_WINDOW",
        parse=parsers.number(1),
        aliases=("WITHINGS_RATE_LIMIT_WINDOW",),
    )
    bulk_rate_share: float = setting(
        0.8,
        "Share of a provider's rate limit that backfills and polls may use; linking new "
        "patients may use half the rest too; the remainder is kept for webhook-driven syncs, "
        "so they stay fast during big backfills and link bursts.",
        env="OHE_BULK_RATE_SHARE",
        parse=parsers.number(0.1, 1.0),
    )
    provider_timeout: float = setting(
        30.0,
        "Seconds before a provider API call times out.",
        env="OHE_PROVIDER_TIMEOUT",
        parse=parsers.number(1, 300),
        aliases=("API_TIMEOUT",),
    )
    webhook_base_url: str = setting(
        lambda v: f"{v['public_url']}/webhooks/",
        "Base of the callback URLs given to providers (`<base><provider>/`).",
        env="OHE_WEBHOOK_BASE_URL",
        parse=lambda raw: parsers.url("http", "https")(raw) + "/",
        aliases=("WEBHOOK_BASE_URL",),
    )
    webhook_secret_segment: str | None = setting(
        None,
        "Optional secret path segment in webhook callback URLs (`/webhooks/withings/<segment>/`); "
        "calls without it get 404.",
        env="OHE_WEBHOOK_SECRET_SEGMENT",
        parse=parsers.optional(parsers.text),
        aliases=("WITHINGS_WEBHOOK_SECRET",),
        secret=True,
    )
    initial_backfill_days: int = setting(
        30,
        "Days of history fetched when a patient links an account.",
        env="OHE_INITIAL_BACKFILL_DAYS",
        parse=parsers.integer(1, 3660),
        aliases=("HEALTH_DATA_LOOKBACK_DAYS",),
    )
    safety_net_interval: int = setting(
        3600,
        "Seconds between incremental polls of every link (the safety net when webhooks are lost).",
        env="OHE_SAFETY_NET_INTERVAL",
        parse=parsers.integer(60),
    )
    link_url_ttl: int = setting(
        600,
        "Seconds a signed link URL (and its OAuth state) stays valid.",
        env="OHE_LINK_URL_TTL",
        parse=parsers.integer(30, 86400),
    )

    # --- FHIR server -----------------------------------------------------------------------------
    fhir_base_url: str | None = setting(
        lambda v: (
            f"http://{v['sandbox_host']}:{v['sandbox_fhir_port']}/fhir" if v["sandbox"] else None
        ),
        "Base URL of the hospital's FHIR server. Default: the sandbox FHIR server when sandboxes "
        "are on; required otherwise.",
        env="OHE_FHIR_BASE_URL",
        parse=parsers.optional(parsers.url("http", "https")),
        aliases=("FHIR_BASE_URL",),
    )
    fhir_version: str = setting(
        "R5",
        "FHIR release written: `R5`, or `R4` (most production EHR servers).",
        env="OHE_FHIR_VERSION",
        parse=parsers.choice("R5", "R4", upper=True),
    )
    fhir_auth: str = setting(
        "none",
        "How OHE authenticates to the FHIR server: `none`, `bearer` (OHE_FHIR_TOKEN) or "
        "`client_credentials` (OAuth2; OHE_FHIR_TOKEN_URL, _CLIENT_ID, _CLIENT_SECRET).",
        env="OHE_FHIR_AUTH",
        parse=parsers.choice("none", "bearer", "client_credentials"),
    )
    fhir_token: str | None = setting(
        None,
        "Static bearer token for `bearer` auth.",
        env="OHE_FHIR_TOKEN",
        parse=parsers.optional(parsers.text),
        secret=True,
    )
    fhir_token_url: str | None = setting(
        None,
        "OAuth2 token endpoint for `client_credentials` auth.",
        env="OHE_FHIR_TOKEN_URL",
        parse=parsers.optional(parsers.url("http", "https")),
    )
    fhir_client_id: str | None = setting(
        None,
        "OAuth2 client id for `client_credentials` auth.",
        env="OHE_FHIR_CLIENT_ID",
        parse=parsers.optional(parsers.text),
    )
    fhir_client_secret: str | None = setting(
        None,
        "OAuth2 client secret for `client_credentials` auth.",
        env="OHE_FHIR_CLIENT_SECRET",
        parse=parsers.optional(parsers.text),
        secret=True,
    )
    fhir_scope: str | None = setting(
        None,
        "OAuth2 scope requested with `client_credentials` (optional).",
        env="OHE_FHIR_SCOPE",
        parse=parsers.optional(parsers.text),
    )
    fhir_timeout: float = setting(
        30.0,
        "Seconds before a FHIR request times out (then retried).",
        env="OHE_FHIR_TIMEOUT",
        parse=parsers.number(1, 300),
        aliases=("FHIR_TIMEOUT",),
    )
    fhir_batch_size: int = setting(
        200,
        "Entries per transaction bundle.",
        env="OHE_FHIR_BATCH_SIZE",
        parse=parsers.integer(1, 1000),
        aliases=("FHIR_BATCH_SIZE",),
    )
    fhir_validation: str = setting(
        "fast",
        "Check before sending: `fast` (data-derived parts per resource, shared fragments once) "
        "or `strict` (full fhir.resources validation of every resource).",
        env="OHE_FHIR_VALIDATION",
        parse=parsers.choice("fast", "strict"),
    )
    fhir_identifier_base: str = setting(
        lambda v: f"{v['public_url']}/fhir/sid",
        "Namespace of OHE's business identifiers (`<base>/<provider>/<kind>`), a URI your "
        "deployment owns. It is part of every identifier: set it once and never change it.",
        env="OHE_FHIR_IDENTIFIER_BASE",
        parse=parsers.url("http", "https"),
        production_required=True,
    )

    # ------------------------------------------------------------------------------------------

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def coordination_backend(self) -> str:
        """``redis`` when Redis is configured, else ``memory`` (embedded single host)."""
        return "redis" if self.redis_url else "memory"

    @property
    def broker_dir(self) -> Path:
        """Folder of the filesystem transport's messages (embedded default)."""
        return (self.data_dir / "broker").resolve()

    def sandbox_url(self, port: int) -> str:
        return f"http://{self.sandbox_host}:{port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read, parse and validate every setting; the first bad one raises SettingsError.

        ``overrides`` (attribute names) win over the environment; tests use them.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if f.name in overrides:
                values[f.name] = overrides[f.name]
                continue
            raw, source = _lookup(environ, meta["env"], meta["aliases"])
            if raw is None:
                default = meta["default"]
                values[f.name] = default(values) if callable(default) else default
                continue
            try:
                values[f.name] = meta["parse"](raw)
            except ValueError as exc:
                shown = "<hidden>" if meta["secret"] else repr(raw)
                raise SettingsError(f"{source}: expected {exc}, got {shown}") from None
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SettingsError(f"unknown setting override(s): {', '.join(sorted(unknown))}")
        settings = cls(**values)
        settings.validate(environ)
        return settings

    def validate(self, environ: Mapping[str, str]) -> None:
        """Cross-field rules that a single parser cannot see; the first broken one raises."""
        for rule in _RULES:
            problem = rule(self, environ)
            if problem:
                raise SettingsError(problem)

    def as_environ(self) -> dict[str, str]:
        """Every setting as the environment that reproduces it (for child processes)."""
        return {f.metadata["env"]: _render(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def redacted(self) -> dict[str, str]:
        """Every setting as text, secrets hidden: what `ohe settings` prints."""
        secret = {f.metadata["env"] for f in dataclasses.fields(self) if f.metadata["secret"]}
        return {
            name: "<hidden>" if name in secret and value else value
            for name, value in self.as_environ().items()
        }


KNOWN_PROVIDERS = frozenset({"withings"})


def _production_rule(s: Settings, environ: Mapping[str, str]) -> str | None:
    if not s.production:
        return None
    for f in dataclasses.fields(s):
        meta = f.metadata
        if (
            meta["production_required"]
            and _lookup(environ, meta["env"], meta["aliases"])[0] is None
        ):
            return f"{meta['env']}: required when OHE_ENV=production"
    if s.secret_key == DEV_SECRET_KEY or len(s.secret_key) < 32:
        return "OHE_SECRET_KEY: expected at least 32 characters of your own in production"
    if s.database_url.startswith("sqlite"):
        return "OHE_DATABASE_URL: expected a PostgreSQL URL in production, got SQLite"
    if not s.redis_url:
        return (
            "OHE_REDIS_URL: required when OHE_ENV=production "
            "(locks, rate limits and breaker state are shared through Redis)"
        )
    return None


def _fhir_rule(s: Settings, environ: Mapping[str, str]) -> str | None:
    if not s.fhir_base_url:
        return "OHE_FHIR_BASE_URL: required when the sandboxes are off (OHE_SANDBOX=false)"
    for needed in _FHIR_AUTH_NEEDS[s.fhir_auth]:
        if not getattr(s, needed):
            return f"OHE_{needed.upper()}: required when OHE_FHIR_AUTH={s.fhir_auth}"
    return None


def _provider_rule(s: Settings, environ: Mapping[str, str]) -> str | None:
    unknown = set(s.providers) - KNOWN_PROVIDERS
    if unknown:
        return (
            f"OHE_PROVIDERS: expected a list of {', '.join(sorted(KNOWN_PROVIDERS))}, "
            f"got {', '.join(sorted(unknown))}"
        )
    if "withings" in s.providers and not (s.withings_client_id and s.withings_client_secret):
        return (
            "OHE_WITHINGS_CLIENT_ID: required (with OHE_WITHINGS_CLIENT_SECRET) when "
            "withings is in OHE_PROVIDERS and the sandboxes are off"
        )
    return None


def _celery_rule(s: Settings, environ: Mapping[str, str]) -> str | None:
    if s.task_soft_time_limit >= s.task_time_limit:
        return (
            "OHE_TASK_SOFT_TIME_LIMIT: expected less than OHE_TASK_TIME_LIMIT "
            f"({s.task_time_limit}), got {s.task_soft_time_limit}"
        )
    if s.broker_visibility_timeout <= s.task_time_limit:
        return (
            "OHE_BROKER_VISIBILITY_TIMEOUT: expected more than OHE_TASK_TIME_LIMIT "
            f"({s.task_time_limit}), got {s.broker_visibility_timeout}"
        )
    return None


_RULES = (_production_rule, _fhir_rule, _provider_rule, _celery_rule)

_FHIR_AUTH_NEEDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "bearer": ("fhir_token",),
    "client_credentials": ("fhir_token_url", "fhir_client_id", "fhir_client_secret"),
}


def _lookup(
    environ: Mapping[str, str], env: str, aliases: tuple[str, ...]
) -> tuple[str | None, str]:
    for name in (env, *aliases):
        if name in environ:
            return environ[name], name
    return None, env


def _render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class SettingRow:
    """One row of the configuration table (README and `ohe settings --table`)."""

    env: str
    aliases: tuple[str, ...]
    default: str
    doc: str


def settings_table() -> list[SettingRow]:
    """The configuration table as data; the README's table must list exactly these rows."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.metadata["default"]
        if callable(default):
            shown = "derived"
        elif f.metadata["secret"] and default:
            shown = "(development only)"
        else:
            shown = _render(default)
        rows.append(SettingRow(f.metadata["env"], f.metadata["aliases"], shown, f.metadata["doc"]))
    return rows
