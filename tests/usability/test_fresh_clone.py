"""The README tried as a new user would, from a fresh clone of the committed HEAD (scripts/try-fresh-clone):
opt-in, since it builds a virtualenv (about a minute with a warm pip cache). Run with
``AMOFS_TEST_FRESH_CLONE=1 bash scripts/test`` or ``bash scripts/try-fresh-clone`` directly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.mount,
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("AMOFS_TEST_FRESH_CLONE") != "1", reason="set AMOFS_TEST_FRESH_CLONE=1"),
]


def test_the_readme_quick_start_works_in_a_fresh_clone() -> None:
    res = subprocess.run(
        ["bash", str(ROOT / "scripts" / "try-fresh-clone")], capture_output=True, text=True, timeout=1200
    )
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    assert "fresh clone: OK" in res.stdout
