"""The benchmarks run and print their ratios (their figures are not asserted: no timed tests)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_fhir_transform_benchmark_runs_and_prints_its_ratios() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/fhir_transform.py", "--days", "5", "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in (
        "baseline orjson round trip",
        "transform to bytes",
        "transform + default check",
        "check share of transform",
        "HTTP requests per 1,000 obs",
    ):
        assert line in out
    assert "ratio" in out
