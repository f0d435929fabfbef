"""Fixtures for the facade tests: a started AmoFS on a fresh emulator (see fshelpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from fshelpers import P

from amofs.api.client import AmoClient
from amofs.filesystem import AmoFS


@pytest.fixture
async def fs(emulator: Any, tmp_path: Path) -> AsyncIterator[AmoFS]:
    async with AmoClient(
        emulator.account_url, token=emulator.token, drive_url=emulator.drive_url, rate=10_000
    ) as client:
        f = AmoFS(client, cache_dir=tmp_path / "cache", cache_ttl=60)
        await f.start()
        async with trio.open_nursery() as n:
            await n.start(f.run)
            yield f
            await f.close()


@pytest.fixture
def p(fs: AmoFS) -> P:
    return P(fs)
