"""Fixtures for trying amofs the way a user does: an isolated environment (XDG folders under tmp, no AMOFS_* from
outside, HOME kept), a mount point, a config file, and the helpers of tests/mount (subprocesses with timeouts,
teardown that always unmounts). Tests that mount carry ``pytest.mark.mount`` (skipped without FUSE)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "mount"))  # mounthelpers, shared with tests/mount
from mounthelpers import MountFactory, foreground_mounts, isolate_env, new_mountpoint


@pytest.fixture(autouse=True)
def user_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return isolate_env(tmp_path, monkeypatch)


@pytest.fixture
def mnt(tmp_path: Path) -> Path:
    return new_mountpoint(tmp_path)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Where amofs looks for its config file in this environment (not created)."""
    return tmp_path / "config" / "amofs" / "config.toml"


@pytest.fixture
def mount_factory(tmp_path: Path) -> Iterator[MountFactory]:
    """``mount_factory(emulator, path, *extra_args, token=None)`` → a mounted foreground Mount (token via
    AMOFS_TOKEN), unmounted and ended at teardown."""
    with foreground_mounts(tmp_path) as make:
        yield make
