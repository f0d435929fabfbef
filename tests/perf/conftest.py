"""Fixtures for the performance behaviour tests: real mounts reuse tests/mount's helpers (always unmounted and
ended at teardown); tests that mount carry ``pytest.mark.mount`` (skipped without FUSE)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "mount"))

from mounthelpers import Mount, start_foreground

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

PerfMount = Callable[..., Mount]


@pytest.fixture
def perf_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PerfMount]:
    """``perf_mount(emu, name, *extra_args)``: ``amofs mount`` of the emulator at tmp/NAME with the cache dir
    tmp/cache (shared by every mount of the test, so a remount finds the content cache), rate limit off."""
    for key in list(os.environ):
        if key.startswith(("AMOFS_", "XDG_")):
            monkeypatch.delenv(key)
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    made: list[Mount] = []

    def make(emu: Emulator, name: str, *extra: str) -> Mount:
        path = tmp_path / name
        path.mkdir()
        args = ["--account-url", emu.account_url, "--drive-url", emu.drive_url, "--cache-dir", str(tmp_path / "cache")]
        args += ["--rate", "100000", *extra]
        m = start_foreground(path, tmp_path, args, env=dict(os.environ, AMOFS_TOKEN=emu.token))
        made.append(m)
        return m

    yield make
    for m in reversed(made):
        m.stop()
