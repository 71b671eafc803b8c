"""Fixtures for the deploy-time packaging tests: the application as the code defines it.

The chart, the alert rules and the dashboard are checked against what the code declares (routes,
settings, queues, metrics), never against lists copied into the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from ohe.app import create_app
from ohe.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ohe_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """An app on embedded defaults (SQLite, filesystem broker): no server needed."""
    return create_app(Settings.from_env({}, data_dir=tmp_path_factory.mktemp("ohe-deploy")))


@pytest.fixture(scope="session")
def routes(ohe_app: Flask) -> dict[str, str]:
    """Flask endpoint name -> URL rule, e.g. ``health.ready`` -> ``/api/metrics/ready/``."""
    return {rule.endpoint: rule.rule for rule in ohe_app.url_map.iter_rules()}
