"""config/gunicorn.conf.py's hooks (gunicorn calls them; here they are called directly)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from ohe.settings import Settings
from tests.helpers import TEST_SECRET_KEY, Process, child_env, free_port, wait_for

CONF = Path(__file__).resolve().parents[2] / "config" / "gunicorn.conf.py"


def test_a_recycled_worker_leaves_its_counters_and_takes_its_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("counter_4242.db", "gauge_livesum_4242.db", "gauge_liveall_4242.db"):
        (tmp_path / name).write_bytes(b"")
    runpy.run_path(str(CONF))["child_exit"](None, SimpleNamespace(pid=4242))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db"]


def test_without_a_multiprocess_directory_the_hook_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    runpy.run_path(str(CONF))["child_exit"](None, SimpleNamespace(pid=4242))


def test_gunicorn_s_own_lines_follow_the_json_log_format(tmp_path: Path) -> None:
    """Worker boots, timeouts and signals are the master's lines, not the app's: in production
    they must be JSON too, or the log pipeline drops them."""
    settings = Settings.from_env(
        {}, data_dir=tmp_path, secret_key=TEST_SECRET_KEY, log_format="json"
    )
    port = free_port()
    web = Process(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            *("-c", str(CONF), "-b", f"127.0.0.1:{port}", "ohe.wsgi:app"),
        ],
        child_env(settings),
        tmp_path / "gunicorn.log",
    )
    try:
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{port}/api/metrics/live/", timeout=1).ok, 60
        )
    finally:
        assert web.stop() == 0
    lines = [json.loads(line) for line in web.output().splitlines() if line.strip()]
    ours = [line for line in lines if line["logger"] == "gunicorn.error"]
    assert any("Booting worker" in line["message"] for line in ours), lines
    assert any("Shutting down" in line["message"] for line in ours), lines
    assert all({"timestamp", "level", "module", "process_id"} <= set(line) for line in ours)
