"""Every Prometheus metric the service exports, declared once, recorded where events happen.

Counters and histograms are plain prometheus_client objects. With ``PROMETHEUS_MULTIPROC_DIR``
set (gunicorn workers, Celery prefork children) the library writes them to per-process files and
the web endpoint merges them, so task-side counters are scraped too (the reference's main
observability bug). Gauges that describe shared state (queue lengths, connections, breaker
states, sync lag) are computed at scrape time by :class:`ScrapeCollector`, so every process
reports the same truth and no per-pid gauge series pile up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

# --- HTTP API --------------------------------------------------------------------------------
API_REQUESTS = Counter(
    "ohe_api_requests_total",
    "API requests by method, endpoint (route pattern) and status code",
    ["method", "endpoint", "status_code"],
)
API_REQUEST_DURATION = Histogram(
    "ohe_api_request_duration_seconds",
    "API request durations",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# --- Celery tasks (Warehouse-style metrics around every task) --------------------------------
TASK_RUNS = Counter(
    "ohe_task_runs_total",
    "Task executions by task name and outcome (success, retry, failure, poison)",
    ["task", "outcome"],
)
TASK_DURATION = Histogram(
    "ohe_task_duration_seconds",
    "Task execution time",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


# --- sync ----------------------------------------------------------------------------------
SYNC_OPERATIONS = Counter(
    "ohe_sync_operations_total",
    "Finished sync runs by provider, trigger (sync_type) and status (success, failed)",
    ["provider", "sync_type", "status"],
)
SYNC_DURATION = Histogram(
    "ohe_sync_duration_seconds",
    "Duration of sync runs from start to the last page written",
    ["provider", "sync_type"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
)
DATA_POINTS = Counter(
    "ohe_data_points_processed_total",
    "Provider measurements (samples) turned into FHIR resources, by data type",
    ["provider", "data_type"],
)
SAMPLES_SKIPPED = Counter(
    "ohe_samples_skipped_total",
    "Provider measurements deliberately not written (ambiguous owner, excluded data type)",
    ["provider", "reason"],
)
OBSERVATIONS_VOIDED = Counter(
    "ohe_observations_voided_total",
    "Observations marked entered-in-error: record deleted at the provider, or purged on unlink",
    ["provider", "reason"],
)

# --- webhooks ----------------------------------------------------------------------------------
WEBHOOK_REQUESTS = Counter(
    "ohe_webhook_requests_total",
    "Provider webhook calls by outcome (accepted, duplicate, unknown_user, invalid, ...)",
    ["provider", "status"],
)
WEBHOOK_TIME = Histogram(
    "ohe_webhook_processing_time_seconds",
    "Time to answer a provider webhook",
    ["provider"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)

# --- providers ------------------------------------------------------------------------------
PROVIDER_API_ERRORS = Counter(
    "ohe_provider_api_errors_total",
    "Failed provider (and FHIR) calls by error class, including short-circuited calls",
    ["provider", "error_type"],
)
PROVIDER_RATE_LIMITS = Counter(
    "ohe_provider_api_rate_limits_total",
    "Times a provider call had to wait for the shared rate limit or was answered rate-limited",
    ["provider"],
)
PROVIDER_CALLS = Counter(
    "ohe_provider_api_calls_total",
    "Provider API calls by endpoint and outcome",
    ["provider", "endpoint", "outcome"],
)
PROVIDER_CALL_DURATION = Histogram(
    "ohe_provider_api_call_duration_seconds",
    "Provider API call durations by endpoint",
    ["provider", "endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# --- FHIR ------------------------------------------------------------------------------------
FHIR_REQUESTS = Counter(
    "ohe_fhir_requests_total",
    "HTTP requests to the FHIR server by method and status (or failure kind)",
    ["method", "status"],
)
FHIR_REQUEST_DURATION = Histogram(
    "ohe_fhir_request_duration_seconds",
    "FHIR server request durations",
    ["method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
FHIR_RESOURCES_WRITTEN = Counter(
    "ohe_fhir_resources_written_total",
    "Resources sent to the FHIR server by type and outcome (created, updated, existing, failed)",
    ["resource_type", "outcome"],
)
FHIR_VALIDATION_ERRORS = Counter(
    "ohe_fhir_validation_errors_total",
    "Resources dropped before sending because they failed validation",
    ["resource_type"],
)

# --- circuit breakers ------------------------------------------------------------------------
BREAKER_TRANSITIONS = Counter(
    "ohe_circuit_breaker_transitions_total",
    "Circuit breaker state changes, counted by the process that caused them",
    ["breaker", "from_state", "to_state"],
)
BREAKER_OPEN_DURATION = Histogram(
    "ohe_circuit_breaker_open_duration_seconds",
    "How long a breaker stayed open before it half-opened or was closed",
    ["breaker"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)


@dataclass(frozen=True)
class GaugeSource:
    """One scrape-time gauge: name, help, label names and a function yielding (labels, value)."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    read: Callable[[], Iterable[tuple[tuple[str, ...], float]]]


class ScrapeCollector:
    """Builds gauges from live state when Prometheus scrapes; a failing source is skipped."""

    def __init__(self, sources: Iterable[GaugeSource]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterable[Metric]:
        for source in self.sources:
            family = GaugeMetricFamily(source.name, source.documentation, labels=source.labels)
            try:
                for labels, value in source.read():
                    family.add_metric(list(labels), value)
            except Exception as exc:  # a broken dependency must not break the scrape
                log.warning(
                    "metric source failed",
                    extra={
                        "operation": "metrics_scrape",
                        "metric": source.name,
                        "error_type": type(exc).__name__,
                    },
                )
                continue
            yield family


def render(sources: Iterable[GaugeSource], multiproc_dir: Path | None) -> bytes:
    """The text exposition of every counter/histogram (all processes) plus scrape-time gauges."""
    if multiproc_dir is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiproc_dir))
    else:
        registry = REGISTRY
    live = CollectorRegistry()
    live.register(ScrapeCollector(sources))
    return generate_latest(registry) + generate_latest(live)


def serve_multiprocess(host: str, port: int, multiproc_dir: Path) -> None:
    """Serve the counters of every process writing to ``multiproc_dir`` on ``/metrics``.

    For worker pods (Kubernetes): the web pod's endpoint cannot see another pod's files, so
    each worker pod runs this next to Celery on a shared emptyDir. Scrape-time gauges are not
    served here (the web endpoint has them), so no series is exported twice.
    """
    from prometheus_client import make_wsgi_app
    from werkzeug.serving import make_server

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiproc_dir))
    server = make_server(host, port, make_wsgi_app(registry), threaded=True)
    log.info("serving worker metrics", extra={"operation": "metrics_server", "port": port})
    server.serve_forever()
