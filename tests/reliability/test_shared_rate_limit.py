"""Many patients backfilling under one tight, shared provider rate limit.

Runs the full-size scenario script (benchmarks/backfill_under_fire.py) small: the Withings
sandbox counts every call in its own rolling window and must never see more than the limit
(nor answer 601), and the FHIR server must end with exactly the expected resources, once each.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration


def test_twenty_patients_backfill_under_one_shared_limit_exactly_once() -> None:
    base = os.environ.get(
        "OHE_TEST_DATABASE_URL", "postgresql+psycopg2://ohe:ohe@127.0.0.1:5432/ohe_test"
    )
    database = base.rsplit("/", 1)[0] + "/ohe_test_ratelimit"
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/backfill_under_fire.py",
            "--users",
            "20",
            "--days",
            "14",
            "--kills",
            "0",
            "--webhooks",
            "0",
            "--rate-limit",
            "40",
            "--rate-window",
            "4",
            "--bulk-workers",
            "2",
            "--database-url",
            database,
            "--redis-url",
            "redis://127.0.0.1:6379/10",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = result.stdout
    assert "PASS  shared rate limit never exceeded" in report, (
        report[-3000:] + result.stderr[-3000:]
    )
    assert "PASS  exactly the expected resources" in report, report[-3000:]
    assert "PASS  re-running writes nothing new" in report, report[-3000:]
    assert result.returncode == 0, report[-3000:]
