"""Shared test fixtures: the Files API emulator, a real HTTP server on 127.0.0.1 running in threads.

The fixtures are synchronous on purpose: the emulator runs its own threads, so sync tests and trio tests
(pytest-trio, ``trio_mode = true``) use it the same way.

- ``emulator``: a fresh, started ``Emulator`` on its own data dir with default options; stopped at teardown.
- ``emulator_factory(options=None, data_dir=None, **option_fields)``: starts more emulators, e.g.
  ``emulator_factory(rate_limit=7)``, or ``emulator_factory(data_dir=emu.data_dir)`` to restart on the
  same data (stop the first one before). Every emulator it made is stopped at teardown (``stop()`` is
  idempotent).

Tests marked ``mount`` are skipped where FUSE is unusable (no /dev/fuse or no fusermount3).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator, EmulatorOptions

EmulatorFactory = Callable[..., "Emulator"]


@pytest.fixture
def emulator_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorFactory]:
    from amofs.emulator.server import Emulator, EmulatorOptions

    made: list[Emulator] = []

    def make(options: EmulatorOptions | None = None, data_dir: Path | None = None, **option_fields: Any) -> Emulator:
        if options is None:
            options = EmulatorOptions(**option_fields)
        elif option_fields:
            options = dataclasses.replace(options, **option_fields)
        emu = Emulator(data_dir if data_dir is not None else tmp_path_factory.mktemp("emu"), options)
        made.append(emu)
        emu.start()
        return emu

    yield make
    for emu in reversed(made):
        emu.stop()


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    return emulator_factory()


def _fuse_usable() -> bool:
    return os.access("/dev/fuse", os.R_OK | os.W_OK) and shutil.which("fusermount3") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _fuse_usable():
        return
    skip = pytest.mark.skip(reason="FUSE unavailable (/dev/fuse or fusermount3 missing)")
    for item in items:
        if "mount" in item.keywords:
            item.add_marker(skip)
