"""The container image's install steps, replayed without Docker (no engine on our machines).

Copies exactly what the Dockerfile COPYs into an empty directory, installs it the way the
Dockerfile does (a non-editable install pinned by constraints.txt) into a fresh virtualenv,
and runs the installed entry points from outside the repository: the package must carry its
migrations, templates and everything the chart's commands need.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration


def _copied_paths() -> list[str]:
    paths: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        match = re.match(r"^COPY\s+(.+?)\s+\S+$", line)
        if match:
            paths += match.group(1).split()
    return paths


def test_the_image_install_is_self_contained(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for path in _copied_paths():
        source = ROOT / path
        assert source.exists(), f"the Dockerfile copies {path}, which does not exist"
        if source.is_dir():
            shutil.copytree(source, context / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, context / path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "-c", "constraints.txt", "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    for tool in ("ohe", "celery", "gunicorn", "flask"):
        assert (venv / "bin" / tool).exists(), f"{tool} is not installed"
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "OHE_DATA_DIR": str(tmp_path / "var"),
        "HOME": str(tmp_path),
    }
    elsewhere = tmp_path  # not the repository: only the installed package is importable
    upgrade = subprocess.run(
        ["flask", "--app", "ohe.app", "db", "upgrade"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr[-3000:]
    assert (tmp_path / "var" / "ohe.db").exists()
    page = subprocess.run(
        [
            "python",
            "-c",
            "from ohe.app import create_app; app = create_app(); "
            "print(app.jinja_env.get_template('link_result.html').name)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert page.stdout.strip() == "link_result.html", page.stderr[-2000:]
    config = subprocess.run(
        [
            "gunicorn",
            "--check-config",
            "-c",
            str(context / "config" / "gunicorn.conf.py"),
            "ohe.wsgi:app",
        ],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert config.returncode == 0, config.stderr[-2000:]
