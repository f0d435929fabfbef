"""Helpers for the facade tests: AmoFS driven directly (no FUSE) against the emulator over loopback HTTP,
as s3ql's t3_fs_api does.

``fs`` is a started AmoFS on a fresh emulator; ``P(fs)`` walks paths the way the kernel would (lookup per
component) so tests read like shell sessions: ``await p.write("files/a.txt", b"x")``.
"""

from __future__ import annotations

import os
from typing import Any

from amofs.filesystem import ROOT_INODE, AmoFS, Attr


class P:
    def __init__(self, fs: AmoFS) -> None:
        self.fs = fs

    async def ino(self, path: str) -> int:
        ino = ROOT_INODE
        for part in [p for p in path.split("/") if p]:
            ino = (await self.fs.lookup(ino, part)).ino
        return ino

    async def stat(self, path: str) -> Attr:
        return await self.fs.getattr(await self.ino(path))

    async def ls(self, path: str) -> list[str]:
        fh = await self.fs.opendir(await self.ino(path))
        try:
            out: list[str] = []
            start = 0
            while batch := await self.fs.readdir(fh, start):  # the kernel's way: continue from next_id
                out += [e.name for e in batch]
                start = batch[-1].next_id
            return sorted(out)
        finally:
            await self.fs.releasedir(fh)

    async def read(self, path: str) -> bytes:
        opened = await self.fs.open(await self.ino(path), os.O_RDONLY)
        try:
            out = bytearray()
            while chunk := await self.fs.read(opened.fh, len(out), 128 * 1024):
                out += chunk
            return bytes(out)
        finally:
            await self.fs.release(opened.fh)

    async def write(self, path: str, data: bytes, *, flush: bool = True) -> None:
        """open(O_CREAT|O_TRUNC), write in 128 KiB pieces, close (flush + release) — like cp."""
        parent, _, name = path.rpartition("/")
        pino = await self.ino(parent)
        try:
            ino = (await self.fs.lookup(pino, name)).ino
            fh = (await self.fs.open(ino, os.O_WRONLY | os.O_TRUNC)).fh
        except Exception as e:
            from amofs.errors import NoEntry

            if not isinstance(e, NoEntry):
                raise
            fh = (await self.fs.create(pino, name, os.O_WRONLY | os.O_CREAT))[0].fh
        try:
            for off in range(0, len(data), 128 * 1024):
                await self.fs.write(fh, off, data[off : off + 128 * 1024])
            if flush:
                await self.fs.flush(fh)
        finally:
            await self.fs.release(fh)

    async def mv(self, src: str, dst: str, flags: int = 0) -> None:
        sp, _, sn = src.rpartition("/")
        dp, _, dn = dst.rpartition("/")
        await self.fs.rename(await self.ino(sp), sn, await self.ino(dp), dn, flags)

    async def rm(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        await self.fs.unlink(await self.ino(parent), name)


def by_name(emu: Any, shown: str, trashed: bool | None = False) -> dict[str, Any]:
    """The emulator's stored file whose name.ext is ``shown``."""
    for f in emu.files(trashed=trashed):
        ext = (f.get("metadata") or {}).get("extension") or ""
        if (f["name"] + ("." + ext if ext else "")) == shown:
            return dict(f)
    raise AssertionError(f"{shown!r} is not in the account")
