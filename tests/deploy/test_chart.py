"""The Helm chart helm/ohe, linted and rendered offline with Helm's own SDK (helm_python).

What production needs is read from the code (settings, queues, routes, Procfile), so a new
required setting, queue or route fails these tests until the chart follows.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import shlex
from collections.abc import Iterator
from typing import Any

import helm_python
import pytest
import yaml
from cryptography.fernet import Fernet

import ohe
from ohe.settings import _FHIR_AUTH_NEEDS, Settings, SettingsError
from ohe.tasks.base import QUEUES
from tests.deploy.conftest import ROOT

CHART = ROOT / "helm" / "ohe"
PRODUCTION_VALUES = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
RELEASE = "demo"
NAMESPACE = "ohe"
# Pods that run OHE code; every container in them must get the production settings.
APP_COMPONENTS = ("web", "worker", "beat", "flower", "migrations")
FIELDS = {f.name: f for f in dataclasses.fields(Settings)}

Docs = list[dict[str, Any]]


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


def render_text(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> dict[str, str]:
    return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)


def render(chart: helm_python.Chart, values: dict[str, Any] | None = None) -> Docs:
    docs: Docs = []
    for path, text in render_text(chart, values).items():
        if not path.endswith("NOTES.txt"):
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def with_values(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with top-level keys replaced or merged (dicts)."""
    values = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


def kinds(docs: Docs) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for doc in docs:
        found.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
    return found


def one(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {kinds(docs).get(kind)}"
    return matches[0]


def workloads(docs: Docs) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(component, workload, pod spec) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            template = doc["spec"]["template"]
            component = template["metadata"]["labels"]["app.kubernetes.io/component"]
            yield component, doc, template["spec"]


def containers(docs: Docs, component: str) -> list[dict[str, Any]]:
    return [c for comp, _, pod in workloads(docs) if comp == component for c in pod["containers"]]


def config_maps(docs: Docs) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}


def secrets(docs: Docs) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d["data"].items()}
        for d in docs
        if d["kind"] == "Secret"
    }


def environment(
    docs: Docs, container: dict[str, Any], secret_data: dict[str, dict[str, str]] | None = None
) -> dict[str, str | None]:
    """The container's environment: ConfigMap values, literal values, and secret references.

    A secretKeyRef resolves to the value in ``secret_data`` (rendered Secrets plus the test's
    stand-in for an existing Secret) or None when that is unknown; optional references whose key
    is absent are left out, as Kubernetes does.
    """
    maps = config_maps(docs)
    known = secrets(docs) | (secret_data or {})
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in maps, f"{container['name']}: ConfigMap {name} is not rendered"
        env.update(maps[name])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        data = known.get(ref["name"])
        if data is None:
            env[var["name"]] = None
        elif ref["key"] in data:
            env[var["name"]] = data[ref["key"]]
        else:
            assert ref.get("optional"), f"{var['name']}: key {ref['key']} not in {ref['name']}"
    return env


def production_requirements() -> list[tuple[str, ...]]:
    """Env names production needs, each as (name, *aliases): read from ohe.settings."""
    names = [
        (meta["env"], *meta["aliases"])
        for meta in (f.metadata for f in FIELDS.values())
        if meta["production_required"]
    ]
    for field in ("database_url", "redis_url", "fhir_base_url"):
        meta = FIELDS[field].metadata
        names.append((meta["env"], *meta["aliases"]))
    return names


def secret_settings() -> dict[str, tuple[str, ...]]:
    """Canonical env name -> aliases of every secret setting."""
    return {
        f.metadata["env"]: f.metadata["aliases"] for f in FIELDS.values() if f.metadata["secret"]
    }


# Valid stand-ins for every secret setting, as an existing Secret would hold them.
_SAMPLE_SECRETS = {
    "OHE_SECRET_KEY": "s" * 48,
    "OHE_TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "OHE_DATABASE_URL": "postgresql+psycopg2://ohe:pw@postgres:5432/ohe",
    "OHE_REDIS_URL": "redis://:pw@redis:6379/0",
    "OHE_BROKER_URL": "redis://:pw@redis:6379/1",
    "OHE_FHIR_TOKEN": "fhir-bearer-token-0123456789",
    "OHE_FHIR_CLIENT_SECRET": "fhir-client-secret-0123456789",
    "OHE_FLOWER_BASIC_AUTH": "admin:flower-password-0123456789",
    "OHE_WITHINGS_CLIENT_SECRET": "withings-client-secret-0123456789",
    "OHE_WEBHOOK_SECRET_SEGMENT": "webhook-segment-0123456789",
}


def sample_secrets() -> dict[str, str]:
    """Valid stand-ins for every secret setting, as an existing Secret would hold them."""
    return dict(_SAMPLE_SECRETS)


def test_sample_secrets_cover_every_secret_setting() -> None:
    assert set(sample_secrets()) == set(secret_settings())


# --- lint, metadata, schema --------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, PRODUCTION_VALUES], ids=["defaults", "production"])
def test_helm_lint_finds_no_errors_or_warnings(values: dict[str, Any] | None) -> None:
    report = helm_python.lint(CHART, values, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_metadata(chart: helm_python.Chart) -> None:
    assert chart.metadata["apiVersion"] == "v2"
    assert chart.name == "ohe"
    assert chart.metadata["appVersion"] == ohe.__version__


@pytest.mark.parametrize("values", [{}, PRODUCTION_VALUES], ids=["defaults", "production"])
def test_schema_accepts_defaults_and_production_values(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    chart.validate_schema(chart.merge_values(values))


def _pool(**overrides: Any) -> dict[str, Any]:
    return {"name": "default", "queues": list(QUEUES), "concurrency": 4, "replicas": 1} | overrides


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"beat": {"replicas": 2}}, "/beat/replicas"),
        ({"beat": {"replicas": 0}}, "/beat/replicas"),
        ({"worker": {"pools": [_pool(concurrency=-1)]}}, "/worker/pools/0/concurrency"),
        ({"worker": {"pools": [_pool(concurrency=0)]}}, "/worker/pools/0/concurrency"),
        ({"worker": {"pools": [_pool(replicas=-1)]}}, "/worker/pools/0/replicas"),
        ({"worker": {"pools": [_pool(queues=["celery"])]}}, "/worker/pools/0/queues"),
        ({"worker": {"pools": [_pool(queues=[])]}}, "/worker/pools/0/queues"),
        ({"worker": {"pools": [_pool(name="Bulk_Pool")]}}, "/worker/pools/0/name"),
        ({"worker": {"pools": [_pool(autoscaling={"enabled": True})]}}, "/autoscaling"),
        ({"worker": {"pools": []}}, "/worker/pools"),
        ({"config": {"OHE_ENV": "development"}}, "/config/OHE_ENV"),
        ({"config": {"OHE_FHIR_VERSION": "STU3"}}, "/config/OHE_FHIR_VERSION"),
        ({"config": {"PROMETHEUS_MULTIPROC_DIR": "/tmp"}}, "'PROMETHEUS_MULTIPROC_DIR'"),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
        ({"secrets": {"optional": ["OHE_SECRET_KEY"]}}, "/secrets/optional"),
        ({"secrets": {"keys": {"OHE_UNKNOWN": "x"}}}, "'OHE_UNKNOWN'"),
        ({"web": {"replicas": "two"}}, "/web/replicas"),
        ({"replicaCount": 3}, "replicaCount"),
    ],
)
def test_schema_rejects_bad_values(
    chart: helm_python.Chart, bad: dict[str, Any], where: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as error:
        chart.validate_schema(chart.merge_values(bad))
    assert where in str(error.value)
    with pytest.raises(helm_python.HelmValuesError):  # render refuses them too
        render(chart, bad)


@pytest.mark.parametrize(
    "name", sorted({n for env, aliases in secret_settings().items() for n in (env, *aliases)})
)
def test_schema_refuses_secret_settings_in_the_configmap(
    chart: helm_python.Chart, name: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=f"invalid propertyName '{name}'"):
        chart.validate_schema(chart.merge_values({"config": {name: "value"}}))


def test_chart_knows_every_secret_setting(chart: helm_python.Chart) -> None:
    """secrets.keys can carry every secret setting; production's secret needs are not optional."""
    schema_keys = chart.schema["properties"]["secrets"]["properties"]["keys"]
    assert set(schema_keys["propertyNames"]["enum"]) == set(secret_settings())
    assert set(chart.values["secrets"]["keys"]) == set(secret_settings())
    required_secrets = {
        group[0] for group in production_requirements() if group[0] in secret_settings()
    }
    assert required_secrets <= set(schema_keys["required"])
    assert not required_secrets & set(chart.values["secrets"]["optional"])


def test_queues_in_the_chart_are_the_applications(chart: helm_python.Chart) -> None:
    queue_enum = chart.schema["definitions"]["queue"]["enum"]
    assert queue_enum == list(QUEUES)
    served = {q for pool in chart.values["worker"]["pools"] for q in pool["queues"]}
    assert served == set(QUEUES)
    exporter = one(
        render(chart, {"celeryExporter": {"enabled": True}}),
        "Deployment",
        f"{RELEASE}-ohe-celery-exporter",
    )
    args = exporter["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--queues={','.join(QUEUES)}" in args


def test_a_queue_without_a_pool_or_a_duplicate_pool_fails_the_render(
    chart: helm_python.Chart,
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match="no pool serves queue"):
        render(chart, {"worker": {"pools": [_pool(queues=list(QUEUES[:-1]))]}})
    with pytest.raises(helm_python.HelmRenderError, match="used twice"):
        render(chart, {"worker": {"pools": [_pool(), _pool(queues=["sync"])]}})


# --- what is rendered ----------------------------------------------------------------------------


def test_default_render_has_the_core_objects_only(chart: helm_python.Chart) -> None:
    found = kinds(render(chart))
    assert set(found) == {
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Job",
    }
    prefix = f"{RELEASE}-ohe"
    assert sorted(found["Deployment"]) == sorted(
        f"{prefix}-{c}" for c in ("web", "worker-default", "beat", "flower")
    )
    assert sorted(found["Service"]) == [f"{prefix}-flower", f"{prefix}-web"]
    assert sorted(found["PodDisruptionBudget"]) == [f"{prefix}-web", f"{prefix}-worker-default"]


def test_production_render(chart: helm_python.Chart) -> None:
    found = kinds(render(chart, PRODUCTION_VALUES))
    assert "Secret" not in found
    for kind in (
        "Ingress",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
    ):
        assert kind in found, kind
    assert f"{RELEASE}-ohe-celery-exporter" in found["Deployment"]


@pytest.mark.parametrize("values", [{}, PRODUCTION_VALUES], ids=["defaults", "production"])
def test_beat_is_one_recreated_redbeat_scheduler(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    beat = one(render(chart, values), "Deployment", f"{RELEASE}-ohe-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = beat["spec"]["template"]["spec"]["containers"]
    command = container["command"] + container["args"]
    assert command[command.index("-S") + 1] == "redbeat.RedBeatScheduler"


def test_web_probes_hit_the_services_probe_routes(
    chart: helm_python.Chart, routes: dict[str, str]
) -> None:
    (web,) = containers(render(chart), "web")
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports["http"] == 8000
    ready, live = web["readinessProbe"], web["livenessProbe"]
    assert ready["httpGet"]["path"] == routes["health.ready"] == "/api/metrics/ready/"
    assert live["httpGet"]["path"] == routes["health.live"] == "/api/metrics/live/"
    assert ports[ready["httpGet"]["port"]] == ports[live["httpGet"]["port"]] == 8000
    # the operations guide's timings
    assert {k: v for k, v in ready.items() if k != "httpGet"} == {
        "initialDelaySeconds": 10,
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert {k: v for k, v in live.items() if k != "httpGet"} == {
        "initialDelaySeconds": 30,
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def test_flower_probe_is_its_healthcheck(chart: helm_python.Chart) -> None:
    (flower,) = containers(render(chart), "flower")
    assert flower["readinessProbe"]["httpGet"]["path"] == "/healthcheck"
    assert flower["livenessProbe"]["httpGet"]["path"] == "/healthcheck"


def _procfile() -> dict[str, list[str]]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            # ${VAR:-default} -> default: the chart passes the default port explicitly
            commands[name] = shlex.split(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", command))
    return commands


def test_processes_run_the_procfiles_commands(chart: helm_python.Chart) -> None:
    procfile = _procfile()
    docs = render(chart)

    def command(component: str, name: str | None = None) -> list[str]:
        for c in containers(docs, component):
            if name is None or c["name"] == name:
                return c["command"] + c["args"]
        raise AssertionError(component)

    assert command("web") == procfile["web"]
    assert command("beat") == procfile["beat"]
    assert command("flower") == procfile["flower"]
    assert command("migrations") == procfile["release"]
    worker = command("worker", "worker")
    expected = procfile["worker"]
    # same program, options and queues; the node name is the pool's instead of "worker"
    assert worker[: expected.index("-n")] == expected[: expected.index("-n")]
    assert worker[worker.index("-n") + 1] == "default@%h"


def test_ohe_commands_the_chart_runs_exist_with_their_options(chart: helm_python.Chart) -> None:
    """`ohe serve-metrics` (worker sidecar) and `ohe flower` are commands of the CLI."""
    from ohe.cli import ohe_cli

    docs = render(chart)
    for container in (c for comp in APP_COMPONENTS for c in containers(docs, comp)):
        if container["command"] != ["ohe"]:
            continue
        name, *options = container["args"]
        assert name in ohe_cli.commands, name
        command = ohe_cli.commands[name]
        if command.context_settings.get("ignore_unknown_options"):
            continue  # `ohe flower` passes its options on to Flower
        known = {opt for param in command.params for opt in param.opts}
        for option in options:
            assert option.split("=", 1)[0] in known, f"ohe {name} has no option {option}"


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(chart: helm_python.Chart) -> None:
    docs = render(chart)
    job = one(docs, "Job", f"{RELEASE}-ohe-migrations")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # the release's ConfigMap and Secret do not exist yet before pre-install hooks: the Job
    # reads hook copies created before it (lower weight) with the very same data
    hook_objects = [
        d
        for d in docs
        if d["kind"] in ("ConfigMap", "Secret")
        and "helm.sh/hook" in d["metadata"].get("annotations", {})
    ]
    assert sorted(d["kind"] for d in hook_objects) == ["ConfigMap", "Secret"]
    for obj in hook_objects:
        meta = obj["metadata"]["annotations"]
        assert meta["helm.sh/hook"] == annotations["helm.sh/hook"]
        assert int(meta["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
        release_copy = one(docs, obj["kind"], obj["metadata"]["name"].replace("-migrations", ""))
        assert obj["data"] == release_copy["data"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    refs = {v["valueFrom"]["secretKeyRef"]["name"] for v in container["env"] if "valueFrom" in v}
    assert refs == {f"{RELEASE}-ohe-migrations-secrets"}
    assert container["envFrom"][0]["configMapRef"]["name"] == f"{RELEASE}-ohe-migrations-config"


def test_migrations_can_be_turned_off(chart: helm_python.Chart) -> None:
    docs = render(chart, {"migrations": {"enabled": False}})
    assert "Job" not in kinds(docs)
    assert not any("helm.sh/hook" in d["metadata"].get("annotations", {}) for d in docs)


# --- settings: env of every app container --------------------------------------------------------


@pytest.mark.parametrize("values", [{}, PRODUCTION_VALUES], ids=["defaults", "production"])
def test_every_app_container_gets_every_setting_production_requires(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    docs = render(chart, values)
    merged = chart.merge_values(values)
    auth_needs = [
        (FIELDS[f].metadata["env"], *FIELDS[f].metadata["aliases"])
        for f in _FHIR_AUTH_NEEDS[merged["config"]["OHE_FHIR_AUTH"]]
    ]
    checked = set()
    for component, _, pod in workloads(docs):
        if component not in APP_COMPONENTS:
            continue
        for container in pod["containers"]:
            env = environment(docs, container)
            checked.add(component)
            for names in production_requirements() + auth_needs:
                assert any(name in env for name in names), (
                    f"{component}/{container['name']} lacks {' or '.join(names)}"
                )
            assert env["OHE_ENV"] == "production"
            for var in container["env"]:  # required settings never hang on an optional ref
                if var["name"] in {n for names in production_requirements() for n in names}:
                    assert not var.get("valueFrom", {}).get("secretKeyRef", {}).get("optional")
    assert checked == set(APP_COMPONENTS)


def test_the_rendered_environment_passes_the_production_settings_check(
    chart: helm_python.Chart,
) -> None:
    """Settings.from_env accepts each container's environment (existing Secret stand-in)."""
    docs = render(chart, PRODUCTION_VALUES)
    key_of = PRODUCTION_VALUES["secrets"]["keys"]
    existing = {
        PRODUCTION_VALUES["secrets"]["existingSecret"]: {
            key_of[env]: value for env, value in sample_secrets().items()
        }
    }
    for component, _, pod in workloads(docs):
        if component not in APP_COMPONENTS:
            continue
        for container in pod["containers"]:
            env = environment(docs, container, existing)
            settings = Settings.from_env({k: v for k, v in env.items() if v is not None})
            assert settings.production
            assert settings.fhir_base_url == PRODUCTION_VALUES["config"]["OHE_FHIR_BASE_URL"]
            assert settings.redis_url == sample_secrets()["OHE_REDIS_URL"]
            if component == "flower":
                assert settings.flower_basic_auth == sample_secrets()["OHE_FLOWER_BASIC_AUTH"]
            else:  # Flower's password goes to Flower only
                assert settings.flower_basic_auth is None


def test_the_default_values_alone_stop_the_processes_with_a_named_variable(
    chart: helm_python.Chart,
) -> None:
    """Unset URLs and secrets reach the containers empty: the app names the first one."""
    docs = render(chart)
    (web,) = containers(docs, "web")
    env = environment(docs, web)
    with pytest.raises(SettingsError, match=r"^OHE_\w+: "):
        Settings.from_env({k: v for k, v in env.items() if v is not None})


def test_chart_managed_secret_is_referenced_never_inlined(chart: helm_python.Chart) -> None:
    values = {
        "config": {
            "OHE_PUBLIC_URL": "https://ohe.test",
            "OHE_FHIR_BASE_URL": "https://fhir.test/fhir",
            "OHE_FHIR_IDENTIFIER_BASE": "https://ohe.test/fhir/sid",
            "OHE_WITHINGS_CLIENT_ID": "ohe-test-client",
        },
        "secrets": {"values": sample_secrets()},
    }
    docs = render(chart, values)
    (secret,) = [d for d in docs if d["kind"] == "Secret" and "helm.sh/hook" not in str(d)]
    stored = secrets([secret])[secret["metadata"]["name"]]
    assert stored == sample_secrets()
    text = "".join(render_text(chart, values).values())
    for value in sample_secrets().values():
        assert value not in text  # only base64 in Secret data, never a plain value
        encoded = base64.b64encode(value.encode()).decode()
        for doc in docs:
            if doc["kind"] != "Secret":
                assert encoded not in json.dumps(doc)
    for component, _, pod in workloads(docs):
        for container in pod["containers"]:
            env = environment(docs, container)
            settings = Settings.from_env({k: v for k, v in env.items() if v is not None})
            assert settings.secret_key == sample_secrets()["OHE_SECRET_KEY"], component


def test_existing_secret_renders_no_secret_and_no_secret_value(chart: helm_python.Chart) -> None:
    """Even with secrets.values filled in, existingSecret wins and nothing is inlined."""
    values = with_values(
        PRODUCTION_VALUES,
        secrets={**PRODUCTION_VALUES["secrets"], "values": sample_secrets()},
    )
    docs = render(chart, values)
    assert "Secret" not in kinds(docs)
    text = "".join(render_text(chart, values).values())  # NOTES.txt included
    for value in sample_secrets().values():
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text
    existing = values["secrets"]["existingSecret"]
    for _, _, pod in workloads(docs):
        for container in pod["containers"]:
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == existing
                    if var["name"] in values["secrets"]["keys"]:
                        assert ref["key"] == values["secrets"]["keys"][var["name"]]
                else:
                    assert var["name"] not in secret_settings(), var["name"]


def test_pods_roll_when_the_settings_change(chart: helm_python.Chart) -> None:
    def checksum(values: dict[str, Any]) -> str:
        web = one(render(chart, values), "Deployment", f"{RELEASE}-ohe-web")
        return web["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) != checksum({"config": {"OHE_LOG_LEVEL": "DEBUG"}})


# --- pods: security, volumes, metrics ---------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [{}, PRODUCTION_VALUES, {"celeryExporter": {"enabled": True}}],
    ids=["defaults", "production", "exporter"],
)
def test_every_pod_runs_non_root_on_a_read_only_root_filesystem(
    chart: helm_python.Chart, values: dict[str, Any]
) -> None:
    for component, _, pod in workloads(render(chart, values)):
        assert pod["securityContext"]["runAsNonRoot"] is True, component
        assert pod["automountServiceAccountToken"] is False, component
        assert pod["enableServiceLinks"] is False, component
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            where = f"{component}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["runAsNonRoot"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], where
            assert container["resources"]["requests"] and container["resources"]["limits"], where


def test_multiprocess_metrics_directory_is_a_shared_empty_dir_in_web_and_worker_pods(
    chart: helm_python.Chart,
) -> None:
    for component, _, pod in workloads(render(chart)):
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            env = {v["name"]: v.get("value") for v in container.get("env", [])}
            path = env.get("PROMETHEUS_MULTIPROC_DIR")
            if component not in ("web", "worker"):
                assert path is None, component  # beat/flower/migrations have no such dir
                continue
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert path in mounts, f"{component}/{container['name']}"
            assert "emptyDir" in volumes[mounts[path]]


def test_worker_pods_serve_their_counters_from_a_sidecar(chart: helm_python.Chart) -> None:
    docs = render(chart, PRODUCTION_VALUES)
    for component, workload, pod in workloads(docs):
        if component != "worker":
            continue
        by_name = {c["name"]: c for c in pod["containers"]}
        assert set(by_name) == {"worker", "metrics"}
        sidecar = by_name["metrics"]
        assert sidecar["command"] + sidecar["args"][:1] == ["ohe", "serve-metrics"]
        assert "--port=9808" in sidecar["args"]
        assert {p["name"]: p["containerPort"] for p in sidecar["ports"]} == {"metrics": 9808}
        env = {v["name"]: v.get("value") for v in by_name["worker"]["env"]}
        assert env["REMAP_SIGTERM"] == "SIGQUIT", workload["metadata"]["name"]
        grace = pod["terminationGracePeriodSeconds"]
        assert grace > 20  # worker_soft_shutdown_timeout in ohe.tasks.base.celery_config


def test_monitors_scrape_the_metrics_endpoints(
    chart: helm_python.Chart, routes: dict[str, str]
) -> None:
    docs = render(chart, PRODUCTION_VALUES)
    (endpoint,) = one(docs, "ServiceMonitor", f"{RELEASE}-ohe-web")["spec"]["endpoints"]
    assert endpoint["path"] == routes["health.prometheus"]
    service = one(docs, "Service", f"{RELEASE}-ohe-web")
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    podmonitor = one(docs, "PodMonitor", f"{RELEASE}-ohe-worker")
    (pod_endpoint,) = podmonitor["spec"]["podMetricsEndpoints"]
    selector = podmonitor["spec"]["selector"]["matchLabels"]
    worker_pods = [
        pod
        for component, workload, pod in workloads(docs)
        if selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(worker_pods) == len(PRODUCTION_VALUES["worker"]["pools"])
    for pod in worker_pods:
        ports = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
        assert pod_endpoint["port"] in ports
    for monitor in (d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor")):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# --- worker pools ------------------------------------------------------------------------------


def _worker_args(deployment: dict[str, Any]) -> list[str]:
    containers_ = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers_ if c["name"] == "worker")["args"]


def test_each_worker_pool_is_a_deployment_with_its_queues_and_autoscaler(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, PRODUCTION_VALUES)
    pools = PRODUCTION_VALUES["worker"]["pools"]
    assert sorted(n for n in kinds(docs)["Deployment"] if "-worker-" in n) == sorted(
        f"{RELEASE}-ohe-worker-{p['name']}" for p in pools
    )
    for pool in pools:
        name = f"{RELEASE}-ohe-worker-{pool['name']}"
        deployment = one(docs, "Deployment", name)
        args = _worker_args(deployment)
        assert args[args.index("-Q") + 1] == ",".join(pool["queues"])
        assert f"--concurrency={pool['concurrency']}" in args
        assert args[args.index("-n") + 1] == f"{pool['name']}@%h"
        assert "replicas" not in deployment["spec"]  # the autoscaler owns it
        resources = next(
            c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "worker"
        )["resources"]
        assert resources == pool["resources"]
        hpa = one(docs, "HorizontalPodAutoscaler", name)["spec"]
        assert hpa["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        scaling = pool["autoscaling"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (
            scaling["minReplicas"],
            scaling["maxReplicas"],
        )
        metrics = {m["type"]: m for m in hpa["metrics"]}
        cpu = metrics["Resource"]["resource"]
        assert cpu["target"]["averageUtilization"] == scaling["targetCPUUtilizationPercentage"]
        external = metrics["External"]["external"]
        assert external["metric"]["name"] == "ohe_celery_queue_size"
        (expression,) = external["metric"]["selector"]["matchExpressions"]
        assert expression == {"key": "queue", "operator": "In", "values": pool["queues"]}
        assert external["target"] == {
            "type": "AverageValue",
            "averageValue": scaling["queueLength"]["averageValue"],
        }
        pdb = one(docs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"]["ohe/pool"] == pool["name"]
    served = [q for pool in pools for q in pool["queues"]]
    assert sorted(served) == sorted(QUEUES)


def test_default_pool_serves_every_queue_without_autoscaling(chart: helm_python.Chart) -> None:
    docs = render(chart)
    deployment = one(docs, "Deployment", f"{RELEASE}-ohe-worker-default")
    args = _worker_args(deployment)
    assert args[args.index("-Q") + 1].split(",") == list(QUEUES)
    assert deployment["spec"]["replicas"] == 1
    assert "HorizontalPodAutoscaler" not in kinds(docs)


def test_cpu_only_autoscaling_and_per_pool_scheduling(chart: helm_python.Chart) -> None:
    pools = [
        _pool(
            name="live",
            queues=["webhooks"],
            autoscaling={
                "enabled": True,
                "minReplicas": 1,
                "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 60,
            },
        ),
        _pool(
            name="bulk", queues=["sync", "backfill", "maintenance"], nodeSelector={"pool": "spot"}
        ),
    ]
    docs = render(chart, {"worker": {"pools": pools, "nodeSelector": {"pool": "general"}}})
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]
    live = one(docs, "Deployment", f"{RELEASE}-ohe-worker-live")["spec"]["template"]["spec"]
    bulk = one(docs, "Deployment", f"{RELEASE}-ohe-worker-bulk")["spec"]["template"]["spec"]
    assert live["nodeSelector"] == {"pool": "general"}
    assert bulk["nodeSelector"] == {"pool": "spot"}


def test_long_release_and_pool_names_stay_valid(chart: helm_python.Chart) -> None:
    name = "a-rather-long-release-name-for-a-hospital-deployment"  # 52 characters
    values = with_values(PRODUCTION_VALUES, worker={"pools": [_pool(name="fifteen-chars-x")]})
    for path, text in chart.render(values, name=name, namespace=NAMESPACE).items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in (d for d in yaml.safe_load_all(text) if d):
            assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


# --- optional components -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "present", "absent"),
    [
        ({"flower": {"enabled": False}}, [], ["Deployment/flower", "Service/flower"]),
        ({}, ["Deployment/flower", "Service/flower"], ["Deployment/celery-exporter"]),
        (
            {"celeryExporter": {"enabled": True}},
            ["Deployment/celery-exporter", "Service/celery-exporter"],
            ["ServiceMonitor/celery-exporter"],
        ),
        (
            {"celeryExporter": {"enabled": True}, "monitoring": {"enabled": True}},
            ["ServiceMonitor/celery-exporter", "ServiceMonitor/web", "PodMonitor/worker"],
            [],
        ),
        (
            {"monitoring": {"enabled": True}},
            ["ServiceMonitor/web", "PodMonitor/worker", "PrometheusRule/", "ConfigMap/dashboard"],
            ["ServiceMonitor/celery-exporter"],
        ),
        (
            {
                "monitoring": {
                    "enabled": True,
                    "prometheusRule": {"enabled": False},
                    "grafanaDashboard": {"enabled": False},
                }
            },
            ["ServiceMonitor/web"],
            ["PrometheusRule/", "ConfigMap/dashboard"],
        ),
        ({}, [], ["ServiceMonitor/web", "PodMonitor/worker", "PrometheusRule/", "Ingress/"]),
        ({"ingress": {"enabled": True}}, ["Ingress/"], []),
        (
            {"web": {"pdb": {"enabled": False, "maxUnavailable": 1}}},
            [],
            ["PodDisruptionBudget/web"],
        ),
        ({"serviceAccount": {"create": False, "name": "ohe-runner"}}, [], ["ServiceAccount/"]),
    ],
)
def test_optional_components_toggle_cleanly(
    chart: helm_python.Chart, values: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    names = {
        f"{d['kind']}/{d['metadata']['name'].removeprefix(f'{RELEASE}-ohe').lstrip('-')}"
        for d in render(chart, values)
    }
    for item in present:
        assert item in names, (item, sorted(names))
    for item in absent:
        assert item not in names, (item, sorted(names))


def test_ingress_routes_to_the_web_service(chart: helm_python.Chart) -> None:
    docs = render(chart, PRODUCTION_VALUES)
    ingress = one(docs, "Ingress", f"{RELEASE}-ohe")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == PRODUCTION_VALUES["ingress"]["hosts"][0]["host"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{RELEASE}-ohe-web", "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == PRODUCTION_VALUES["ingress"]["tls"]


def test_flower_alone_gets_the_flower_password(chart: helm_python.Chart) -> None:
    docs = render(chart, PRODUCTION_VALUES)
    for component, _, pod in workloads(docs):
        for container in pod["containers"]:
            names = {v["name"]: v for v in container.get("env", [])}
            if component == "flower":
                ref = names["OHE_FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
                assert not ref.get("optional")
            else:
                assert "OHE_FLOWER_BASIC_AUTH" not in names, component


def test_celery_exporter_is_the_maintained_image_reading_only_the_broker_url(
    chart: helm_python.Chart,
) -> None:
    docs = render(chart, PRODUCTION_VALUES)
    (container,) = containers(docs, "celery-exporter")
    assert container["image"].startswith("danihodovic/celery-exporter:")
    (env,) = container["env"]
    assert env["name"] == "CE_BROKER_URL"
    ref = env["valueFrom"]["secretKeyRef"]
    assert ref == {
        "name": PRODUCTION_VALUES["secrets"]["existingSecret"],
        "key": PRODUCTION_VALUES["secrets"]["keys"]["OHE_REDIS_URL"],
    }
    assert "envFrom" not in container
    assert chart.values["celeryExporter"]["enabled"] is False


# --- monitoring files: one source ----------------------------------------------------------------


def test_the_chart_ships_the_same_alert_rules_and_dashboard() -> None:
    for name in ("prometheus-rules.yml", "grafana-dashboard.json"):
        assert (CHART / "files" / name).read_bytes() == (ROOT / "config" / name).read_bytes(), (
            f"helm/ohe/files/{name} differs from config/{name}: copy config/{name} over it"
        )


def test_prometheus_rule_is_the_rules_file(chart: helm_python.Chart) -> None:
    docs = render(chart, PRODUCTION_VALUES)
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((ROOT / "config" / "prometheus-rules.yml").read_text())
    (dashboard,) = [d for d in docs if d["kind"] == "ConfigMap" and "dashboard" in str(d["data"])]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = dashboard["data"].values()
    assert json.loads(content) == json.loads(
        (ROOT / "config" / "grafana-dashboard.json").read_text()
    )
