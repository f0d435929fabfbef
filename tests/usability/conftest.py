"""Fixtures for trying amofs the way a user does: an isolated environment (XDG folders under tmp, no AMOFS_* from
outside, HOME kept), a mount point, a config file, and the helpers of tests/mount (subprocesses with timeouts,
teardown that always unmounts). Tests that mount carry ``pytest.mark.mount`` (skipped without FUSE)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "mount"))  # mounthelpers, shared with tests/mount
from mounthelpers import Mount, MountFactory, start_foreground

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator


@pytest.fixture(autouse=True)
def user_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test's own environment, inherited by every amofs subprocess it starts."""
    for key in list(os.environ):
        if key.startswith("AMOFS_") or key.startswith("XDG_") or key == "NOTIFY_SOCKET":
            monkeypatch.delenv(key)
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    return dict(os.environ)


@pytest.fixture
def mnt(tmp_path: Path) -> Path:
    path = tmp_path / "mnt"
    path.mkdir()
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Where amofs looks for its config file in this environment (not created)."""
    return tmp_path / "config" / "amofs" / "config.toml"


@pytest.fixture
def mount_factory(tmp_path: Path) -> Iterator[MountFactory]:
    """``mount_factory(emulator, path, *extra_args, token=None)`` → a mounted foreground Mount (token via
    AMOFS_TOKEN), unmounted and ended at teardown."""
    made: list[Mount] = []

    def make(emu: Emulator, path: Path, *extra: str, token: str | None = None, wait: bool = True) -> Mount:
        env = dict(os.environ, AMOFS_TOKEN=emu.token if token is None else token)
        args = ["--account-url", emu.account_url, "--drive-url", emu.drive_url, *extra]
        m = start_foreground(path, tmp_path, args, env=env, wait=wait)
        made.append(m)
        return m

    yield make
    for m in reversed(made):
        m.stop()
