"""Fixtures for real mounts: an isolated environment (XDG folders under tmp, no AMOFS_* from outside), a mount
point, and ``mounted``: ``amofs mount --foreground`` against the ``emulator`` fixture, always unmounted and
ended at teardown. Tests here must carry ``pytestmark = pytest.mark.mount`` (skipped without FUSE)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mounthelpers import Mount, MountFactory, start_foreground

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator


@pytest.fixture(autouse=True)
def mount_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test's own environment, inherited by every amofs subprocess it starts."""
    for key in list(os.environ):
        if key.startswith("AMOFS_") or key.startswith("XDG_"):
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
def mount_factory(tmp_path: Path) -> Iterator[MountFactory]:
    """``mount_factory(emulator, path, *extra_args, token=None)`` → a mounted Mount (token via AMOFS_TOKEN)."""
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


@pytest.fixture
def mounted(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> Mount:
    """The emulator's account mounted at ``mnt`` (cache TTL 1 s, so changes made behind the mount show soon)."""
    return mount_factory(emulator, mnt, "--cache-ttl", "1")
