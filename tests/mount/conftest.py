"""Fixtures for real mounts: an isolated environment (XDG folders under tmp, no AMOFS_* from outside), a mount
point, and ``mounted``: ``amofs mount --foreground`` against the ``emulator`` fixture, always unmounted and
ended at teardown. Tests here must carry ``pytestmark = pytest.mark.mount`` (skipped without FUSE)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mounthelpers import Mount, MountFactory, foreground_mounts, isolate_env, new_mountpoint

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator


@pytest.fixture(autouse=True)
def mount_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return isolate_env(tmp_path, monkeypatch)


@pytest.fixture
def mnt(tmp_path: Path) -> Path:
    return new_mountpoint(tmp_path)


@pytest.fixture
def mount_factory(tmp_path: Path) -> Iterator[MountFactory]:
    """``mount_factory(emulator, path, *extra_args, token=None)`` → a mounted Mount (token via AMOFS_TOKEN)."""
    with foreground_mounts(tmp_path) as make:
        yield make


@pytest.fixture
def mounted(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> Mount:
    """The emulator's account mounted at ``mnt`` (cache TTL 1 s, so changes made behind the mount show soon)."""
    return mount_factory(emulator, mnt, "--cache-ttl", "1")
