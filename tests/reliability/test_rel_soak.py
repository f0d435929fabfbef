"""A 20-second smoke run of scripts/soak.py (the soak itself runs for minutes and is not a test): writers,
readers and a lister on a real mount with faults switched on, then the check that nothing was lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"

pytestmark = [pytest.mark.mount, pytest.mark.slow]


def test_soak_smoke_run_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    res = subprocess.run(
        [sys.executable, str(SOAK), "--seconds", "20", "--quiet", "--seed", "7", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    figures = json.loads(out.read_text())
    assert figures["files_lost"] == 0 and figures["wrong_reads"] == 0 and not figures["problems"]
    assert figures["operations"] > 20 and figures["faults_injected"] > 0
    assert figures["files_verified"] > 0 and figures["acknowledged_writes"] > 0
    assert "files lost          0" in res.stdout
