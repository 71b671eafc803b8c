"""Every shell command and Python snippet of docs/operations.md, run against a running stack.

The stack is the e2e one (our web app on a real port, a real Celery worker, the Withings
sandbox and the sandbox FHIR server) with one linked patient, so status, sync, breaker and
queue commands have something real to act on. A block that fails fails this test with its
output, so the guide cannot rot.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, child_env

pytestmark = pytest.mark.integration

GUIDE = ROOT / "docs" / "operations.md"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(lang, code) for lang, code in BLOCK.findall(path.read_text())]


def test_the_guide_has_commands_and_snippets() -> None:
    kinds = [lang for lang, _ in blocks(GUIDE)]
    assert kinds.count("sh") >= 10 and kinds.count("python") >= 4


def test_every_command_and_snippet_in_the_operations_guide_runs(make_stack) -> None:
    stack = make_stack()
    stack.start_worker()
    stack.link("demo-patient-ops", history_days=3)
    stack.wait_idle()
    env = child_env(
        stack.settings,
        OHE_URL=stack.web_url,
        OHE_API_KEY=stack.api_key,
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    )
    for number, (lang, code) in enumerate(blocks(GUIDE), 1):
        command = (
            ["bash", "-euo", "pipefail", "-c", code]
            if lang == "sh"
            else [sys.executable, "-c", code]
        )
        result = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, (
            f"block {number} ({lang}) failed:\n{code}\n--- stdout ---\n{result.stdout[-2000:]}"
            f"\n--- stderr ---\n{result.stderr[-3000:]}"
        )
