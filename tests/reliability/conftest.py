"""Fixtures for the reliability tests: real mounts (through tests/mount/mounthelpers.py), a started facade, and
an emulator that can be stopped and started again on the same ports and data (a service outage).

Every mount made here is unmounted at teardown, failure or not (``Mount.stop``); every emulator is stopped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

HERE = Path(__file__).resolve().parent
for sub in ("mount", "fs"):
    p = str(HERE.parent / sub)
    if p not in sys.path:
        sys.path.insert(0, p)

from mounthelpers import Mount, isolate_env, new_mountpoint, start_foreground  # noqa: E402
from relhelpers import Outage  # noqa: E402

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator
    from amofs.filesystem import AmoFS


@pytest.fixture(autouse=True)
def rel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return isolate_env(tmp_path, monkeypatch)


@pytest.fixture
def mnt(tmp_path: Path) -> Path:
    return new_mountpoint(tmp_path)


@pytest.fixture
def mount_factory(tmp_path: Path) -> Iterator[Any]:
    """``mount_factory(emu, path, *extra_args, token=None, no_token=False, env=None, urls=True)`` → a mounted
    Mount (token via AMOFS_TOKEN, cache dir ``tmp_path/cache-NAME``); unmounted at teardown."""
    made: list[Mount] = []

    def make(
        emu: Emulator,
        path: Path,
        *extra: str,
        token: str | None = None,
        no_token: bool = False,
        env: dict[str, str] | None = None,
        urls: bool = True,
    ) -> Mount:
        e = dict(os.environ) if env is None else dict(env)
        if not no_token:
            e["AMOFS_TOKEN"] = emu.token if token is None else token
        args = ["--account-url", emu.account_url, "--drive-url", emu.drive_url] if urls else []
        if "--cache-dir" not in extra:
            args += ["--cache-dir", str(tmp_path / f"cache-{path.name}")]
        m = start_foreground(path, tmp_path, [*args, *extra], env=e)
        made.append(m)
        return m

    yield make
    for m in reversed(made):
        m.stop()


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    """An emulator that ``stop()``s and ``start()``s again on the same ports and data dir."""
    o = Outage(tmp_path / "emu-data")
    try:
        yield o
    finally:
        o.close()


@pytest.fixture
async def fs(emulator: Emulator, tmp_path: Path) -> AsyncIterator[AmoFS]:
    from relhelpers import open_fs

    async with open_fs(emulator, tmp_path / "cache") as f:
        yield f
