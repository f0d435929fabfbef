"""Helpers for the reliability tests: deterministic data, the emulator's view of the account, an emulator that
can go down and come back (same ports, same data), a started facade, and a thread running trio for tests that
drive async code from synchronous frameworks (hypothesis' stateful machines).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import trio

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator, EmulatorOptions
    from amofs.filesystem import AmoFS

T = TypeVar("T")


def data(n: int, seed: int = 0) -> bytes:
    """``n`` deterministic pseudo-random bytes (different for each seed)."""
    out = bytearray()
    block = seed.to_bytes(8, "little", signed=True)
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 8
    return bytes(out[:n])


def shown(f: dict[str, Any]) -> str:
    """An emulator file model's ``name.ext``."""
    ext = (f.get("metadata") or {}).get("extension") or ""
    return f"{f['name']}.{ext}" if ext else str(f["name"])


def by_name(emu: Emulator, name: str, *, trashed: bool | None = False) -> dict[str, Any]:
    found = [f for f in emu.files(trashed=trashed) if shown(f) == name]
    assert len(found) == 1, f"{name!r}: {sorted(shown(f) for f in emu.files(trashed=trashed))}"
    return found[0]


def names(emu: Emulator, *, trashed: bool | None = False) -> list[str]:
    return sorted(shown(f) for f in emu.files(trashed=trashed))


class Outage:
    """An emulator that can be stopped (the service goes away: listeners closed, connections cut) and started
    again on the same account and drive ports with the same data, as a restarted service would be. Upload and
    storage listeners come back on new ports, as the URLs they serve are handed out by the other two."""

    def __init__(self, data_dir: Path, options: EmulatorOptions | None = None) -> None:
        from amofs.emulator.server import Emulator, EmulatorOptions, restartable_port

        self.data_dir = data_dir
        self.options = options if options is not None else EmulatorOptions()
        # ports below the kernel's ephemeral range: while the service is down, no outgoing connection can be
        # given its port (a client retrying against it may even connect to itself on Linux)
        self.port, self.drive_port = restartable_port(), restartable_port()
        self.emu: Emulator = Emulator(data_dir, self.options, port=self.port, drive_port=self.drive_port)
        self.emu.start()
        self.account_url = self.emu.account_url
        self.drive_url = self.emu.drive_url
        self.token = self.emu.token
        self.restarts = 0

    def stop(self) -> None:
        self.emu.stop()

    def start(self) -> None:
        from amofs.emulator.server import Emulator

        self.emu = Emulator(self.data_dir, self.options, port=self.port, drive_port=self.drive_port)
        self.emu.start()
        self.restarts += 1

    def close(self) -> None:
        self.emu.stop()


@contextlib.asynccontextmanager
async def open_fs(
    emu: Any,
    cache_dir: Path,
    *,
    rate: float = 10_000,
    cache_ttl: float = 60,
    transport: Any = None,
    **client_kw: Any,
) -> AsyncIterator[AmoFS]:
    """A started AmoFS on ``emu`` (its ``run`` in a nursery), closed at exit."""
    from amofs.api.client import AmoClient
    from amofs.filesystem import AmoFS

    async with AmoClient(
        emu.account_url,
        token=emu.token,
        drive_url=emu.drive_url,
        rate=rate,
        transport=transport,
        **client_kw,
    ) as client:
        f = AmoFS(client, cache_dir=cache_dir, cache_ttl=cache_ttl)
        await f.start()
        async with trio.open_nursery() as n:
            await n.start(f.run)
            try:
                yield f
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(30):
                    await f.close()
                n.cancel_scope.cancel()


class TrioThread:
    """trio running in a thread of its own, for synchronous callers (hypothesis' stateful machines).

    ``call(fn, *args)`` runs ``await fn(*args)`` there and returns its result (or raises its exception) in the
    calling thread; ``enter(cm)`` enters an async context manager there and keeps it entered (in a task of the
    thread's nursery) until ``close()``, which exits every one of them, newest first, and ends the thread."""

    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._ready = threading.Event()
        self._nursery: trio.Nursery | None = None
        self._exits: list[trio.Event] = []
        self._errors: queue.Queue[BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._main, name="trio", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the trio thread did not start")

    def _main(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as n:
                self._nursery = n
                self._ready.set()
                await trio.sleep_forever()

        try:
            trio.run(main)
        except BaseException as e:  # reported by close()
            self._errors.put(e)
        finally:
            self._ready.set()

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float = 120.0) -> T:
        async def bounded() -> T:
            with trio.fail_after(timeout):
                return await fn(*args)

        return trio.from_thread.run(bounded, trio_token=self._token)

    def enter(self, cm: contextlib.AbstractAsyncContextManager[T]) -> T:
        done = trio.Event()
        self._exits.append(done)

        async def hold(task_status: trio.TaskStatus[T]) -> None:
            async with cm as value:
                task_status.started(value)
                await done.wait()

        async def start() -> T:
            assert self._nursery is not None
            return await self._nursery.start(hold)  # type: ignore[no-any-return]

        return self.call(start)

    def close(self) -> None:
        if self._token is not None and self._thread.is_alive():

            async def stop() -> None:
                for ev in reversed(self._exits):
                    ev.set()
                    await trio.sleep(0)
                assert self._nursery is not None
                # let the held contexts exit, then end the thread's nursery
                with trio.move_on_after(60):
                    while self._nursery.child_tasks:
                        await trio.sleep(0.01)
                self._nursery.cancel_scope.cancel()

            with contextlib.suppress(trio.RunFinishedError):
                self.call(stop)
        self._thread.join(60)
        if not self._errors.empty():
            raise self._errors.get()


def log_lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def mount_log(m: Any) -> str:
    """The mount's log file only (its stderr repeats warnings and errors)."""
    path = Path(m.log_file)
    return path.read_text(errors="replace") if path.exists() else ""


def file_mode(path: Path | str) -> int:
    return os.stat(path).st_mode & 0o777
