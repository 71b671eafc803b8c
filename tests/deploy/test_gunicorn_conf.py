"""config/gunicorn.conf.py's hooks (gunicorn calls them; here they are called directly)."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

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
