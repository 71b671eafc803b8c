"""Alert rules (config/prometheus-rules.yml) and the Grafana dashboard against the code.

Every metric and label an expression refers to must be one the service exports, read from the
code at test time: the counters and histograms registered in prometheus_client's registry by
the application's modules, and the scrape-time gauges of ``build_sources(app)``. No allow-list,
except ``PENDING`` below, which fails once its metrics exist. Where promtool is installed
(Debian package ``prometheus``), the rules and every dashboard query are also checked by it
and each alert is fired on synthetic series.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from ohe.observability.gauges import build_sources
from tests.deploy.conftest import ROOT
from tests.deploy.promql import Expression, parse

RULES_FILE = ROOT / "config" / "prometheus-rules.yml"
DASHBOARD_FILE = ROOT / "config" / "grafana-dashboard.json"

# Metrics another engineer is adding right now, with the names and labels agreed for them
# (name as exposed -> type, labels). Rules and dashboard may use them before they land.
# test_pending_metrics_are_not_exported_yet fails as soon as one of them is exported by the
# code: then delete its entry here, so this list can never go stale.
PENDING: dict[str, tuple[str, tuple[str, ...]]] = {}

# Labels Prometheus attaches to every scraped series (target labels of the chart's
# ServiceMonitor/PodMonitor) rather than the service.
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "container", "service", "endpoint", "pool"}
)
# Series Prometheus itself produces for every target.
PROMETHEUS_SERIES = {"up": frozenset()}

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def _series(family: str, kind: str, labels: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Every series name a metric family exposes, with its label names."""
    series = {}
    for suffix in _SUFFIXES[kind]:
        extra = ("le",) if suffix == "_bucket" else ()
        series[family + suffix] = frozenset(labels + extra)
    return series


def _family(name: str, kind: str) -> str:
    return name.removesuffix("_total") if kind == "counter" else name


@pytest.fixture(scope="module")
def exported(ohe_app: Flask) -> dict[str, frozenset[str]]:
    """Series name -> label names of everything the service exports, read from the code.

    ``ohe_app`` imports every module the web and worker processes load (create_app imports the
    task modules), so their counters and histograms are registered by now.
    """
    series: dict[str, frozenset[str]] = {}
    # prometheus_client keeps no public list of collectors; these attributes are stable
    # across its releases (pinned <0.27 in setup.cfg).
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):  # not the GC/platform/process collectors
            series.update(
                _series(
                    collector._name,
                    collector._type,
                    tuple(collector._labelnames),
                )
            )
    for source in build_sources(ohe_app):
        series[source.name] = frozenset(source.labels)
    return series


@pytest.fixture(scope="module")
def allowed(exported: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Exported series, plus Prometheus's own, plus the pending metrics' series."""
    names = dict(PROMETHEUS_SERIES)
    for name, (kind, labels) in PENDING.items():
        names.update(_series(_family(name, kind), kind, labels))
    names.update(exported)
    return names


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) of every dashboard target and templating query."""
    dashboard = _dashboard()
    queries = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            queries.append(
                (
                    f"variable {variable['name']}",
                    query["query"] if isinstance(query, dict) else query,
                )
            )
    return queries


def _all_queries() -> list[tuple[str, str]]:
    return [(f"alert {r['alert']}", r["expr"]) for r in _rules()] + _dashboard_queries()


# --- the metrics exist --------------------------------------------------------------------------


def test_pending_metrics_are_not_exported_yet(exported: dict[str, frozenset[str]]) -> None:
    landed = sorted(
        name
        for name, (kind, labels) in PENDING.items()
        if set(_series(_family(name, kind), kind, labels)) & set(exported)
    )
    assert not landed, (
        f"{landed} are exported by the code now: delete them from PENDING in {__file__} "
        "(the test then checks them against the code like every other metric)"
    )


def test_the_code_exports_the_metrics_the_operations_guide_names(
    allowed: dict[str, frozenset[str]],
) -> None:
    """The registry reading works: the service's documented metrics are found."""
    for name in (
        "ohe_api_requests_total",
        "ohe_api_request_duration_seconds_bucket",
        "ohe_task_runs_total",
        "ohe_provider_api_errors_total",
        "ohe_circuit_breaker_state",
        "ohe_celery_queue_size",
        "ohe_database_connections",
    ):
        assert name in allowed


@pytest.mark.parametrize(("where", "expr"), _all_queries())
def test_every_query_uses_exported_metrics_and_labels(
    where: str, expr: str, allowed: dict[str, frozenset[str]]
) -> None:
    found: Expression = parse(expr)
    assert found.metrics, f"{where}: no metric found in {expr!r}"
    unknown = sorted(found.metrics - set(allowed))
    assert not unknown, f"{where}: {unknown} are not exported by the service ({expr!r})"
    for metric, labels in found.matchers.items():
        bad = labels - allowed[metric] - TARGET_LABELS
        assert not bad, f"{where}: {metric} has no label {sorted(bad)} ({expr!r})"
    known = set(TARGET_LABELS).union(*(allowed[m] for m in found.metrics))
    bad = found.grouping - known
    assert not bad, f"{where}: grouping by unknown label(s) {sorted(bad)} ({expr!r})"


@pytest.mark.parametrize(
    "guide_expr",
    [
        "ohe_huey_queue_size > 1000",  # Huey's gauge: here ohe_celery_queue_size{queue}
        "histogram_quantile(0.95, ohe_sync_duration_seconds) > 30",  # no bare histogram series
        'ohe_circuit_breaker_state{provider="withings"} == 1',  # the label is `breaker`
        "sum by (provder) (rate(ohe_provider_api_errors_total[5m]))",  # typo in a grouping
    ],
)
def test_the_checks_catch_the_operations_guides_mistakes(
    guide_expr: str, allowed: dict[str, frozenset[str]]
) -> None:
    with pytest.raises(AssertionError):
        test_every_query_uses_exported_metrics_and_labels("guide", guide_expr, allowed)


def test_histograms_are_read_through_their_buckets(allowed: dict[str, frozenset[str]]) -> None:
    """histogram_quantile over rate(<histogram>_bucket[...]) by le, never the bare name."""
    for where, expr in _all_queries():
        if "histogram_quantile" not in expr:
            continue
        assert re.search(r"rate\(\w+_bucket\b", expr), f"{where}: {expr!r}"
        assert re.search(r"by \([^)]*\ble\b", expr), f"{where}: quantile not by le: {expr!r}"


# --- the rules ----------------------------------------------------------------------------------


def test_rules_are_the_guides_alerts_plus_lag_fhir_and_workers() -> None:
    data = yaml.safe_load(RULES_FILE.read_text())
    severities = {
        rule["alert"]: (group["name"], rule["labels"]["severity"])
        for group in data["groups"]
        for rule in group["rules"]
    }
    assert severities == {
        "HighErrorRate": ("ohe_critical", "critical"),
        "CircuitBreakerOpen": ("ohe_critical", "critical"),
        "QueueBacklog": ("ohe_critical", "critical"),
        "WorkerDown": ("ohe_critical", "critical"),
        "SlowSyncOperations": ("ohe_warnings", "warning"),
        "RateLimitApproaching": ("ohe_warnings", "warning"),
        "SyncLagHigh": ("ohe_warnings", "warning"),
        "FhirWriteFailures": ("ohe_warnings", "warning"),
    }
    for rule in _rules():
        assert rule["annotations"]["summary"], rule["alert"]


def test_annotations_only_use_labels_the_alert_keeps() -> None:
    """E.g. the breaker alert groups by `breaker`, so its text cannot say $labels.provider."""
    for rule in _rules():
        found = parse(rule["expr"])
        kept = found.grouping - {"le"}
        for label in found.matchers.values():
            kept |= label  # absent(up{job=...}) keeps its matchers
        for text in rule["annotations"].values():
            for label in re.findall(r"\$labels\.(\w+)", text):
                assert label in kept, f"{rule['alert']}: $labels.{label} is not kept by the expr"


def test_breaker_alert_is_per_breaker_and_queue_alert_per_queue() -> None:
    rules = {rule["alert"]: rule for rule in _rules()}
    assert 'ohe_circuit_breaker_state{state="open"}' in rules["CircuitBreakerOpen"]["expr"]
    assert "$labels.breaker" in rules["CircuitBreakerOpen"]["annotations"]["summary"]
    assert "ohe_celery_queue_size" in rules["QueueBacklog"]["expr"]
    assert "queue" in parse(rules["QueueBacklog"]["expr"]).grouping


def test_worker_down_refers_to_the_charts_scrape_job() -> None:
    """The rules' job names are the ones the chart's monitors set (job relabeling)."""
    monitors = (ROOT / "helm" / "ohe" / "templates" / "monitoring.yaml").read_text()
    chart_jobs = set(re.findall(r"targetLabel: job\s+replacement: ([\w-]+)", monitors))
    rule_jobs = set(re.findall(r'job="([^"]+)"', RULES_FILE.read_text()))
    assert rule_jobs
    assert rule_jobs <= chart_jobs


# --- the dashboard ------------------------------------------------------------------------------


def test_dashboard_has_the_guides_panels_and_ours() -> None:
    titles = {panel["title"] for panel in _panels(_dashboard()["panels"])}
    guide = {"Sync Success Rate", "API Request Rate", "Provider API Errors", "Queue Size"}
    ours = {
        "Circuit breaker state",
        "Sync lag",
        "FHIR write outcomes",
        "FHIR request latency",
        "Task outcomes",
        "Webhook requests",
    }
    assert guide | ours <= titles


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= names
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert 'namespace=~"$namespace"' in target["expr"], panel["title"]


# --- promtool (where installed) -----------------------------------------------------------------

promtool = shutil.which("promtool")


def needs_promtool(test):
    """promtool is installed by scripts/test-tools; without it these tests fail, never skip."""
    return test


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert promtool is not None, "promtool missing: scripts/test-tools installs Debian prometheus"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_every_dashboard_query(tmp_path: Path) -> None:
    grafana = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}
    rules = []
    for index, (_, query) in enumerate(_dashboard_queries()):
        expr = query
        if expr.startswith("label_values("):
            expr = expr.removeprefix("label_values(").split(",")[0]
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        rules.append(
            {"record": f"dashboard:query_{index}", "expr": expr.replace("$namespace", ".*")}
        )
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _histogram(name: str, labels: str, slow: bool) -> list[dict[str, str]]:
    """Buckets of a histogram observing one event per second, each 45 s or 1 s long."""
    per_minute = "0+60x40"
    return [
        {"series": f'{name}_bucket{{{labels}, le="10"}}', "values": "0x40" if slow else per_minute},
        {"series": f'{name}_bucket{{{labels}, le="60"}}', "values": per_minute},
        {"series": f'{name}_bucket{{{labels}, le="+Inf"}}', "values": per_minute},
    ]


# Synthetic series (namespace "ohe", as the chart's monitors label them) and, for each alert,
# the labels and summary it must fire with at 40 minutes — or none.
ALERT_CASES: list[dict[str, Any]] = [
    {
        "alert": "HighErrorRate",
        "series": [
            # 1 error/s to withings on two worker pods, 0.01/s to fitbit
            {
                "series": 'ohe_provider_api_errors_total{namespace="ohe", pod="w1", provider="withings", error_type="api_error"}',
                "values": "0+30x40",
            },
            {
                "series": 'ohe_provider_api_errors_total{namespace="ohe", pod="w2", provider="withings", error_type="network_error"}',
                "values": "0+30x40",
            },
            {
                "series": 'ohe_provider_api_errors_total{namespace="ohe", pod="w1", provider="fitbit", error_type="api_error"}',
                "values": "0+0.6x40",
            },
        ],
        "fires": [({"provider": "withings"}, "High error rate calling withings")],
    },
    {
        "alert": "CircuitBreakerOpen",
        "series": [
            # every web pod reports the same shared state: one alert per breaker
            {
                "series": f'ohe_circuit_breaker_state{{namespace="ohe", pod="{pod}", breaker="fhir_server", state="{state}"}}',
                "values": value,
            }
            for pod in ("web-1", "web-2")
            for state, value in (("open", "1x40"), ("closed", "0x40"), ("half-open", "0x40"))
        ]
        + [
            {
                "series": 'ohe_circuit_breaker_state{namespace="ohe", pod="web-1", breaker="withings_api", state="open"}',
                "values": "0x40",
            }
        ],
        "fires": [({"breaker": "fhir_server"}, "Circuit breaker fhir_server open")],
    },
    {
        "alert": "QueueBacklog",
        "series": [
            {
                "series": f'ohe_celery_queue_size{{namespace="ohe", pod="{pod}", queue="{queue}"}}',
                "values": value,
            }
            for pod in ("web-1", "web-2")
            for queue, value in (("backfill", "5000x40"), ("webhooks", "20x40"))
        ],
        "fires": [({"queue": "backfill"}, "Large backlog in Celery queue backfill")],
    },
    {
        "alert": "WorkerDown",
        "series": [{"series": 'up{namespace="ohe", job="ohe-worker", pod="w1"}', "values": "0x40"}],
        "fires": [({}, "No Celery worker pod is being scraped")],
    },
    {
        "alert": "WorkerDown",
        "series": [{"series": 'up{namespace="ohe", job="ohe-web", pod="web-1"}', "values": "1x40"}],
        "fires": [(None, "No Celery worker pod is being scraped")],  # absent(): no namespace
    },
    {
        "alert": "WorkerDown",
        "series": [
            {"series": 'up{namespace="ohe", job="ohe-worker", pod="w1"}', "values": "0x40"},
            {"series": 'up{namespace="ohe", job="ohe-worker", pod="w2"}', "values": "1x40"},
        ],
        "fires": [],
    },
    {
        "alert": "SlowSyncOperations",
        "series": _histogram(
            "ohe_sync_duration_seconds",
            'namespace="ohe", provider="withings", sync_type="webhook"',
            True,
        )
        + _histogram(
            "ohe_sync_duration_seconds",
            'namespace="ohe", provider="fitbit", sync_type="webhook"',
            False,
        ),
        "fires": [({"provider": "withings"}, "Sync operations for withings running slowly")],
    },
    {
        "alert": "RateLimitApproaching",
        "series": [
            {
                "series": 'ohe_provider_api_rate_limits_total{namespace="ohe", pod="w1", provider="fitbit"}',
                "values": "0+1x40",
            },
            {
                "series": 'ohe_provider_api_rate_limits_total{namespace="ohe", pod="w1", provider="withings"}',
                "values": "0x40",
            },
        ],
        "fires": [({"provider": "fitbit"}, "Approaching rate limits for fitbit")],
    },
    {
        "alert": "SyncLagHigh",
        "series": [
            {
                "series": 'ohe_sync_lag_seconds{namespace="ohe", pod="web-1", provider="fitbit"}',
                "values": "30000+60x40",
            },
            {
                "series": 'ohe_sync_lag_seconds{namespace="ohe", pod="web-1", provider="withings"}',
                "values": "600x40",
            },
        ],
        "fires": [({"provider": "fitbit"}, "fitbit data is not reaching the FHIR server")],
    },
    {
        "alert": "FhirWriteFailures",
        "series": [
            {
                "series": 'ohe_fhir_resources_written_total{namespace="ohe", pod="w1", resource_type="Observation", outcome="rejected"}',
                "values": "0x35 2 2 2 2 2 2",
            },
            {
                "series": 'ohe_fhir_resources_written_total{namespace="ohe", pod="w1", resource_type="Device", outcome="created"}',
                "values": "0+5x40",
            },
            {
                "series": 'ohe_fhir_validation_errors_total{namespace="ohe", pod="w1", resource_type="DeviceAssociation"}',
                "values": "0x35 1 1 1 1 1 1",
            },
        ],
        "fires": [
            ({"resource_type": "Observation"}, "FHIR Observation resources rejected or dropped"),
            (
                {"resource_type": "DeviceAssociation"},
                "FHIR DeviceAssociation resources rejected or dropped",
            ),
        ],
    },
]


@needs_promtool
def test_each_alert_fires_on_synthetic_series_with_its_labels(tmp_path: Path) -> None:
    """promtool unit tests: the expressions, `for` durations and summaries behave."""
    rules = yaml.safe_load(RULES_FILE.read_text())
    severity = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            severity[rule["alert"]] = rule["labels"]["severity"]
            # compare the summary only; descriptions are prose
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    rules_path = tmp_path / "rules.yml"
    rules_path.write_text(yaml.safe_dump(rules))
    tests = []
    for case in ALERT_CASES:
        expected = []
        for labels, summary in case["fires"]:
            exp_labels = {"severity": severity[case["alert"]]}
            if labels is None:
                exp_labels["job"] = "ohe-worker"
            else:
                exp_labels |= {"namespace": "ohe", **labels}
            expected.append({"exp_labels": exp_labels, "exp_annotations": {"summary": summary}})
        tests.append(
            {
                "interval": "1m",
                "input_series": case["series"],
                "alert_rule_test": [
                    {"eval_time": "40m", "alertname": case["alert"], "exp_alerts": expected}
                ],
            }
        )
    assert {case["alert"] for case in ALERT_CASES} == set(severity)
    spec = tmp_path / "tests.yml"
    spec.write_text(
        yaml.safe_dump(
            {"rule_files": [str(rules_path)], "evaluation_interval": "1m", "tests": tests}
        )
    )
    result = _promtool("test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
