"""The installed ``ohe`` command: the operator commands at top level, Flask's own beside them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ohe.cli import ohe_cli
from tests.helpers import TEST_SECRET_KEY


def test_ohe_help_lists_every_operator_command_once(tmp_path: Path) -> None:
    ohe = Path(sys.executable).with_name("ohe")
    listed = subprocess.run(
        [str(ohe), "--help"],
        env={"OHE_DATA_DIR": str(tmp_path), "OHE_SECRET_KEY": TEST_SECRET_KEY, "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = listed.split("Commands:", 1)[1].splitlines()
    names = [line.split()[0] for line in lines if line.startswith("  ") and line.strip()]
    assert "ohe" not in names  # the group itself is spread out, not listed again
    assert set(ohe_cli.commands) | {"db", "run", "shell", "routes"} <= set(names)
    assert len(names) == len(set(names))
