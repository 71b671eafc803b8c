"""Settings: embedded defaults, aliases, one-line errors naming the variable, production rules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from ohe.settings import BreakerSpec, Settings, SettingsError, settings_table
from tests.helpers import ROOT

PRODUCTION = {
    "OHE_ENV": "production",
    "OHE_SECRET_KEY": "s" * 40,
    "OHE_TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgresql+psycopg2://u:p@db/ohe",
    "REDIS_URL": "redis://cache:6379/0",
    "OHE_FHIR_BASE_URL": "https://fhir.hospital.example/r4",
    "OHE_FHIR_IDENTIFIER_BASE": "https://ohe.hospital.example/fhir/sid",
    "OHE_WITHINGS_CLIENT_ID": "hospital-app",
    "OHE_WITHINGS_CLIENT_SECRET": "withings-secret",
}


def test_embedded_defaults_need_no_server(tmp_path: Path) -> None:
    settings = Settings.from_env({"OHE_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{(tmp_path / 'ohe.db').resolve()}"
    assert settings.broker_url.startswith("filesystem://")
    assert settings.coordination_backend == "memory"
    assert settings.sandbox is True
    assert settings.log_format == "text"
    assert settings.breaker_fhir_server == BreakerSpec(5, 3, 60)


def test_usual_names_are_accepted_and_ohe_names_win() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://a/b", "REDIS_URL": "redis://r/1"})
    assert settings.database_url == "postgresql://a/b"
    assert settings.redis_url == "redis://r/1"
    assert settings.broker_url == "redis://r/1"
    assert settings.coordination_backend == "redis"
    both = Settings.from_env(
        {"DATABASE_URL": "postgresql://a/b", "OHE_DATABASE_URL": "sqlite:///x"}
    )
    assert both.database_url == "sqlite:///x"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OHE_TASK_MAX_DELIVERIES": "many"}, "OHE_TASK_MAX_DELIVERIES: expected an integer >= 1"),
        ({"OHE_ENV": "staging"}, "OHE_ENV: expected one of development, production"),
        ({"OHE_LOG_LEVEL": "LOUD"}, "OHE_LOG_LEVEL: expected one of DEBUG"),
        (
            {"OHE_BREAKER_FHIR_SERVER": "5/3"},
            "OHE_BREAKER_FHIR_SERVER: expected failures/successes",
        ),
        ({"OHE_LOG_LEVELS": "ohe=CHATTY"}, "OHE_LOG_LEVELS: expected comma-separated logger=LEVEL"),
        ({"OHE_PUBLIC_URL": "localhost:8000"}, "OHE_PUBLIC_URL: expected a URL starting with http"),
        ({"OHE_SANDBOX": "maybe"}, "OHE_SANDBOX: expected true or false"),
        ({"REDIS_URL": "http://cache"}, "REDIS_URL: expected a URL starting with redis://"),
        ({"OHE_TOKEN_ENCRYPTION_KEYS": "short"}, "OHE_TOKEN_ENCRYPTION_KEYS: expected"),
        ({"OHE_FLOWER_BASIC_AUTH": "admin"}, "OHE_FLOWER_BASIC_AUTH: expected user:password"),
        (
            {"OHE_TASK_SOFT_TIME_LIMIT": "200", "OHE_TASK_TIME_LIMIT": "100"},
            "OHE_TASK_SOFT_TIME_LIMIT: expected less than OHE_TASK_TIME_LIMIT",
        ),
    ],
)
def test_bad_values_name_the_variable_and_the_expectation(environ: dict, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(environ)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"REDIS_URL": "http://user:hunter2@cache"})
    assert "hunter2" not in str(info.value)
    assert "<hidden>" in str(info.value)


@pytest.mark.parametrize(
    "missing",
    [
        "OHE_SECRET_KEY",
        "OHE_TOKEN_ENCRYPTION_KEYS",
        "REDIS_URL",
        "DATABASE_URL",
        "OHE_FHIR_BASE_URL",
        "OHE_FHIR_IDENTIFIER_BASE",
        "OHE_WITHINGS_CLIENT_ID",
    ],
)
def test_production_requires_secrets_and_servers(missing: str) -> None:
    environ = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(environ)
    assert missing.removeprefix("OHE_") in str(info.value)


def test_production_settings_are_valid_and_turn_sandboxes_and_text_logs_off() -> None:
    settings = Settings.from_env(PRODUCTION)
    assert settings.production
    assert settings.sandbox is False
    assert settings.log_format == "json"


def test_settings_round_trip_through_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"OHE_DATA_DIR": str(tmp_path), "OHE_LOG_LEVELS": "ohe=DEBUG"})
    again = Settings.from_env(settings.as_environ())
    assert again == settings
    assert "OHE_SECRET_KEY" in settings.redacted()
    assert settings.redacted()["OHE_SECRET_KEY"] == "<hidden>"


def test_a_bad_variable_stops_each_process_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "OHE_DATA_DIR": str(tmp_path), "OHE_TASK_TIME_LIMIT": "soon"}
    for args in (
        [sys.executable, "-c", "from ohe.app import create_app; create_app()"],
        [sys.executable, "-m", "celery", "-A", "ohe.worker", "worker"],
        [sys.executable, "-m", "flask", "--app", "ohe.app", "ohe", "settings"],
    ):
        result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == [
            "ohe: configuration error: OHE_TASK_TIME_LIMIT: expected an integer >= 1, got 'soon'"
        ], result.stderr


def test_readme_configuration_table_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        match = re.match(r"^\| (`[A-Z0-9_]+`(?: / `[A-Z0-9_]+`)*) \| ([^|]*) \|", line)
        if match:
            names = tuple(re.findall(r"`([A-Z0-9_]+)`", match.group(1)))
            rows[names] = match.group(2).strip().strip("`")
    expected = {(row.env, *row.aliases): row.default for row in settings_table()}
    assert rows == expected


@pytest.mark.parametrize(
    ("auth", "given", "missing"),
    [
        ("bearer", {}, "OHE_FHIR_TOKEN"),
        ("client_credentials", {"OHE_FHIR_TOKEN_URL": "https://idp/token"}, "OHE_FHIR_CLIENT_ID"),
        (
            "client_credentials",
            {"OHE_FHIR_TOKEN_URL": "https://idp/token", "OHE_FHIR_CLIENT_ID": "ohe"},
            "OHE_FHIR_CLIENT_SECRET",
        ),
    ],
)
def test_fhir_auth_modes_require_their_credentials(auth: str, given: dict, missing: str) -> None:
    with pytest.raises(SettingsError, match=f"^{missing}: required when OHE_FHIR_AUTH={auth}"):
        Settings.from_env({"OHE_FHIR_AUTH": auth, **given})


def test_fhir_defaults_point_at_the_sandbox() -> None:
    settings = Settings.from_env({})
    assert settings.fhir_base_url == "http://127.0.0.1:8090/fhir"
    assert settings.fhir_version == "R5"
    assert settings.fhir_identifier_base == "http://localhost:8000/fhir/sid"


def test_unknown_providers_are_refused() -> None:
    with pytest.raises(
        SettingsError, match=r"^OHE_PROVIDERS: expected a list of withings, got garmin"
    ):
        Settings.from_env({"OHE_PROVIDERS": "withings,garmin"})
