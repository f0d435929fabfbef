"""A stateful property test: random sequences of create, write (whole and partial), overwrite, rename, unlink,
restore, link and unlink-from-an-entity applied to the AmoFS facade and to a plain model of an account, checked
after every step against the emulator's storage (names, trash flags, bytes of the active version, entity links)
and against what the facade lists. The facade runs in a trio thread; each example gets a fresh emulator.

``AMOFS_STATEFUL_EXAMPLES`` (default 20) and ``AMOFS_STATEFUL_STEPS`` (default 25) make longer runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fshelpers import P
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule
from relhelpers import TrioThread, open_fs, shown

from amofs.errors import AmoError
from amofs.names import escape

NAMES = ["a.txt", "b.txt", "c.pdf", "notes", "Отчёт.txt", "x.tar.gz", "a (copy).txt", ".env", "Акт 01／2024.pdf"]
LEADS = [1, 2]
PART = 4096  # small upload parts: a few kilobytes already take several


@dataclass
class F:
    name: str
    data: bytes
    trashed: bool = False
    links: set[int] = field(default_factory=set)


bodies = st.one_of(st.binary(max_size=64), st.binary(min_size=PART, max_size=3 * PART + 17))


class AccountMachine(RuleBasedStateMachine):
    trashed = Bundle("trashed")

    def __init__(self) -> None:
        super().__init__()
        from amofs.emulator.server import Emulator, EmulatorOptions

        self.tmp = Path(tempfile.mkdtemp(prefix="amofs-stateful-"))
        self.emu = Emulator(self.tmp / "emu", EmulatorOptions(max_part_size=PART))
        self.emu.start()
        for lead in LEADS:
            self.emu.add_entity("leads", lead, f"Deal {lead}")
        self.trio = TrioThread()
        self.fs = self.trio.enter(open_fs(self.emu, self.tmp / "cache"))
        self.p = P(self.fs)
        self.model: dict[str, F] = {}  # uuid → state

    def teardown(self) -> None:
        try:
            self.trio.close()
        finally:
            self.emu.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # --- helpers ------------------------------------------------------------------------------------------
    def run(self, fn: Any, *args: Any) -> Any:
        return self.trio.call(fn, *args)

    def live(self) -> dict[str, str]:
        """name → uuid of the live files."""
        return {f.name: u for u, f in self.model.items() if not f.trashed}

    async def _uuid_of(self, path: str) -> str:
        return (await self.fs.getxattr(await self.p.ino(path), "user.amo.uuid")).decode()

    async def _patch(self, path: str, offset: int, data: bytes) -> None:
        fh = (await self.fs.open(await self.p.ino(path), os.O_WRONLY)).fh
        try:
            await self.fs.write(fh, offset, data)
            await self.fs.flush(fh)
        finally:
            await self.fs.release(fh)

    async def _link(self, path: str, lead: int) -> None:
        await self.fs.link(await self.p.ino(path), await self.p.ino(f"leads/{lead}"), path.rpartition("/")[2])

    async def _trash_name(self, uuid: str) -> str:
        for name in await self.p.ls("trash"):
            if await self._uuid_of(f"trash/{name}") == uuid:
                return name
        raise AssertionError(f"{uuid} is not in trash/")

    # --- rules --------------------------------------------------------------------------------------------
    @rule(name=st.sampled_from(NAMES), data=bodies)
    def write(self, name: str, data: bytes) -> None:
        """cp into files/: a new file, or a new version of the live file of that name."""
        self.run(self.p.write, f"files/{name}", data)
        uuid = self.live().get(name)
        if uuid is None:
            uuid = self.run(self._uuid_of, f"files/{name}")
            assert uuid not in self.model
            self.model[uuid] = F(name, data)
        else:
            assert self.run(self._uuid_of, f"files/{name}") == uuid, "an overwrite made a new file"
            self.model[uuid].data = data

    @precondition(lambda self: self.live())
    @rule(
        pick=st.randoms(use_true_random=False),
        offset=st.integers(0, 2 * PART),
        data=st.binary(min_size=1, max_size=300),
    )
    def patch(self, pick: Any, offset: int, data: bytes) -> None:
        """A partial overwrite without O_TRUNC (dd conv=notrunc): the other bytes stay."""
        name = pick.choice(sorted(self.live()))
        f = self.model[self.live()[name]]
        self.run(self._patch, f"files/{name}", offset, data)
        old = f.data.ljust(offset, b"\0")
        f.data = old[:offset] + data + old[offset + len(data) :]

    @precondition(lambda self: self.live())
    @rule(pick=st.randoms(use_true_random=False), new=st.sampled_from(NAMES))
    def rename(self, pick: Any, new: str) -> None:
        name = pick.choice(sorted(self.live()))
        live = self.live()
        src = live[name]
        self.run(self.p.mv, f"files/{name}", f"files/{new}")
        if new == name:
            return
        if new in live:  # onto an existing file: it gets the bytes as a new version, the source goes to trash
            self.model[live[new]].data = self.model[src].data
            self.model[src].trashed = True
        else:
            self.model[src].name = new

    @precondition(lambda self: self.live())
    @rule(target=trashed, pick=st.randoms(use_true_random=False))
    def unlink(self, pick: Any) -> str:
        name = pick.choice(sorted(self.live()))
        uuid = self.live()[name]
        self.run(self.p.rm, f"files/{name}")
        self.model[uuid].trashed = True
        return uuid

    @rule(uuid=consumes(trashed))
    def restore(self, uuid: str) -> None:
        f = self.model[uuid]
        if not f.trashed or f.name in self.live():
            return  # restored already, or its name is taken (the collision case is tested elsewhere)
        shown_name = self.run(self._trash_name, uuid)
        self.run(self.p.mv, f"trash/{shown_name}", f"files/{f.name}")
        f.trashed = False

    @precondition(lambda self: self.live())
    @rule(pick=st.randoms(use_true_random=False), lead=st.sampled_from(LEADS))
    def link(self, pick: Any, lead: int) -> None:
        name = pick.choice(sorted(self.live()))
        self.run(self._link, f"files/{name}", lead)
        self.model[self.live()[name]].links.add(lead)

    @precondition(lambda self: any(f.links and not f.trashed for f in self.model.values()))
    @rule(pick=st.randoms(use_true_random=False))
    def unlink_from_lead(self, pick: Any) -> None:
        linked = sorted((lead, f.name, u) for u, f in self.model.items() if not f.trashed for lead in f.links)
        lead, name, uuid = pick.choice(linked)
        self.run(self.p.rm, f"leads/{lead}/{name}")
        self.model[uuid].links.discard(lead)

    @precondition(lambda self: self.live())
    @rule(pick=st.randoms(use_true_random=False))
    def read(self, pick: Any) -> None:
        name = pick.choice(sorted(self.live()))
        assert self.run(self.p.read, f"files/{name}") == self.model[self.live()[name]].data

    @rule(name=st.sampled_from(NAMES))
    def refused_operations_change_nothing(self, name: str) -> None:
        """Things the account cannot do fail with an errno and leave everything as it was."""
        for op in (
            lambda: self.p.mv(f"files/{name}", "versions/x"),
            lambda: self.p.rm(f"trash/{name}"),
            lambda: self.fs.mkdir(1, name),
        ):
            with contextlib.suppress(AmoError):
                self.run(op)

    # --- the account, the model and the facade agree after every step ---------------------------------------
    @invariant()
    def storage_matches_the_model(self) -> None:
        stored = {f["uuid"]: f for f in self.emu.files(trashed=None)}
        assert set(stored) == set(self.model)
        for uuid, f in self.model.items():
            s = stored[uuid]
            assert escape(shown(s)) == f.name, (uuid, shown(s), f.name)  # "／" typed is "/" in the account
            assert s["is_trashed"] == f.trashed, uuid
            assert self.emu.content(uuid) == f.data, (uuid, f.name)
        for lead in LEADS:
            want = {u for u, f in self.model.items() if lead in f.links}
            assert set(self.emu.links("leads", lead)) == want, lead

    @invariant()
    def facade_lists_the_model(self) -> None:
        assert self.run(self.p.ls, "files") == sorted(self.live())
        for lead in LEADS:
            want = sorted(f.name for f in self.model.values() if lead in f.links and not f.trashed)
            assert self.run(self.p.ls, f"leads/{lead}") == want


AccountMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("AMOFS_STATEFUL_EXAMPLES", "20")),
    stateful_step_count=int(os.environ.get("AMOFS_STATEFUL_STEPS", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
class TestAccount(AccountMachine.TestCase):  # type: ignore[name-defined,misc]
    pass
