"""Races the soak run (scripts/soak.py) found, pinned down on the facade: a rename-temp file (rsync's
``.NAME.XXXXXX``) whose rename is slow must not be uploaded under its temp name meanwhile; a rename whose upload
fails leaves both names as they were; a folder never lists one name twice."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from fshelpers import P
from relhelpers import by_name, names, open_fs

from amofs.errors import AmoError, errno_of

FAST = {"backoff_base": 0.001, "backoff_cap": 0.01}


async def write_closed(fs: Any, p: P, path: str, data: bytes) -> None:
    """Create, write and close (flush + release) a file, as cp or rsync does."""
    await p.write(path, data)


async def test_a_slow_rename_of_a_temp_file_never_uploads_the_temp_name(emulator: Any, tmp_path: Path) -> None:
    emulator.seed_file("report.txt", b"old")
    async with open_fs(emulator, tmp_path / "cache", cache_ttl=0.5) as fs:
        p = P(fs)
        assert await p.ls("files") == ["report.txt"]
        await write_closed(fs, p, "files/.report.txt.Xy12Ab", b"new bytes")  # waits for its rename (3 s)
        await trio.sleep(0.6)  # the listing is stale: the rename must sync it first, slowly
        emulator.options.latency = 1.6  # the sync (two requests) outlasts the temp's 3-second grace
        try:
            await p.mv("files/.report.txt.Xy12Ab", "files/report.txt")
        finally:
            emulator.options.latency = 0
        assert await p.ls("files") == ["report.txt"]
    assert names(emulator, trashed=None) == ["report.txt"], "the temp name reached the account"
    f = by_name(emulator, "report.txt")
    assert emulator.content(f["uuid"]) == b"new bytes"


async def test_a_rename_whose_upload_fails_changes_nothing(emulator: Any, tmp_path: Path) -> None:
    uuid = emulator.seed_file("report.txt", b"old")
    async with open_fs(emulator, tmp_path / "cache", **FAST) as fs:
        p = P(fs)
        await write_closed(fs, p, "files/.report.txt.Xy12Ab", b"new bytes")
        emulator.options.fail_parts = 1000
        try:
            with pytest.raises(AmoError) as exc:
                await p.mv("files/.report.txt.Xy12Ab", "files/report.txt")
        finally:
            emulator.options.fail_parts = 0
        assert errno_of(exc.value) == errno.EIO
        # as a failed rename(2) must: the temp is still there, the target still holds its old bytes
        assert await p.ls("files") == [".report.txt.Xy12Ab", "report.txt"]
        assert await p.read("files/report.txt") == b"old"
        assert await p.read("files/.report.txt.Xy12Ab") == b"new bytes"
        await p.rm("files/.report.txt.Xy12Ab")  # what rsync does after a failed rename
        assert await p.ls("files") == ["report.txt"]
        assert [k.read_bytes() for k in fs.dirs.failed_files()] == [b"new bytes"]
    assert names(emulator, trashed=None) == ["report.txt"]
    assert emulator.content(uuid) == b"old"


async def test_a_folder_never_lists_a_name_twice(emulator: Any, tmp_path: Path) -> None:
    """A file being written under a name the account also has (made elsewhere meanwhile) shadows it."""
    async with open_fs(emulator, tmp_path / "cache", cache_ttl=0.2) as fs:
        p = P(fs)
        assert await p.ls("files") == []
        parent = await p.ino("files")
        opened, _ = await fs.create(parent, "same.txt", os.O_WRONLY | os.O_CREAT)
        try:
            await fs.write(opened.fh, 0, b"mine")
            emulator.seed_file("same.txt", b"theirs")  # elsewhere, meanwhile
            await trio.sleep(0.3)
            listed = await p.ls("files")
            assert listed.count("same.txt") == 1, listed
            await fs.flush(opened.fh)
        finally:
            await fs.release(opened.fh)
        listed = await p.ls("files")
        assert len(listed) == len(set(listed)) == 2, listed


async def test_readdir_after_a_rename_or_rm_does_not_hand_out_the_old_names(emulator: Any, tmp_path: Path) -> None:
    """A folder read in several batches while a rename or rm happens through the mount: the kernel turns every
    entry readdir gives (READDIRPLUS) into a cached name, so an entry that is gone must not be given out —
    else the old name comes back to life for the cache's lifetime (reads of a trashed file, EPERM on writes)."""
    for n in ("a.txt", "b.txt", "c.txt", "d.txt"):
        emulator.seed_file(n, n.encode())
    async with open_fs(emulator, tmp_path / "cache") as fs:
        p = P(fs)
        fh = await fs.opendir(await p.ino("files"))  # the snapshot is taken here
        try:
            await p.mv("files/a.txt", "files/b.txt")  # over an existing file: a goes to the trash
            await p.rm("files/c.txt")
            await p.mv("files/d.txt", "files/e.txt")
            listed = {(e.name, e.attr.ino) for e in await fs.readdir(fh, 0)}
        finally:
            await fs.releasedir(fh)
        now = {(n, await p.ino(f"files/{n}")) for n in await p.ls("files")}
        assert listed <= now, listed - now


async def test_a_temp_file_waits_while_the_kernel_looks_its_rename_target_up(emulator: Any, tmp_path: Path) -> None:
    """The kernel looks the target up before it sends the rename; when that lookup waits on a slow listing,
    the temp file's 3-second grace must not run out meanwhile."""
    emulator.seed_file("report.txt", b"old")
    async with open_fs(emulator, tmp_path / "cache", cache_ttl=0.5) as fs:
        p = P(fs)
        files = await p.ino("files")
        await write_closed(fs, p, "files/.report.txt.Xy12Ab", b"new bytes")
        await trio.sleep(0.6)  # the listing is stale
        emulator.reset_log()
        emulator.options.latency = 2.5
        try:
            await fs.lookup(files, "report.txt")  # what the kernel does first: slow (a sync of two requests)
        finally:
            emulator.options.latency = 0
        assert emulator.count("POST", "/v1.0/sessions") == 0, "the temp file was uploaded under its own name"
        await p.mv("files/.report.txt.Xy12Ab", "files/report.txt")
    assert names(emulator, trashed=None) == ["report.txt"]
    assert emulator.content(by_name(emulator, "report.txt")["uuid"]) == b"new bytes"


async def test_a_rename_during_the_temp_files_own_upload_still_renames(emulator: Any, tmp_path: Path) -> None:
    """The temp's grace ran out and its upload under its own name is under way when the rename arrives: the
    rename must wait for that upload and then rename what it made — not report success and leave the bytes
    under the temp name (as it did: the upload's outcome overwrote the rename's target)."""
    emulator.seed_file("report.txt", b"old")
    async with open_fs(emulator, tmp_path / "cache") as fs:
        p = P(fs)
        await p.ls("files")
        await write_closed(fs, p, "files/.report.txt.Xy12Ab", b"new bytes")
        emulator.options.latency = 1.0
        try:
            with trio.fail_after(10):
                while not fs.uploader.in_flight:  # the background upload under the temp name has begun
                    await trio.sleep(0.05)
            await p.mv("files/.report.txt.Xy12Ab", "files/report.txt")
        finally:
            emulator.options.latency = 0
        assert await p.ls("files") == ["report.txt"]
        assert await p.read("files/report.txt") == b"new bytes"
    assert names(emulator, trashed=False) == ["report.txt"], "the bytes stayed under the temp name"
    assert emulator.content(by_name(emulator, "report.txt")["uuid"]) == b"new bytes"


async def test_after_mv_over_a_file_the_inode_the_kernel_holds_is_the_targets(emulator: Any, tmp_path: Path) -> None:
    """rename(a, b) over an existing b: the kernel now holds a's inode at b (until an invalidation, which is
    asynchronous and can wait behind a slow request). That inode must stand for b's file: writing it writes b
    — never EPERM on the trashed a — and b's own former inode (an entity folder may hold it) still works."""
    a = emulator.seed_file("a.txt", b"bytes of a")
    b = emulator.seed_file("b.txt", b"bytes of b")
    async with open_fs(emulator, tmp_path / "cache") as fs:
        p = P(fs)
        a_ino, b_ino = await p.ino("files/a.txt"), await p.ino("files/b.txt")
        await p.mv("files/a.txt", "files/b.txt")
        for ino in (a_ino, b_ino):
            assert (await fs.getxattr(ino, "user.amo.uuid")).decode() == b
        fh = (await fs.open(a_ino, os.O_WRONLY | os.O_TRUNC)).fh
        try:
            await fs.write(fh, 0, b"written through the kernel's inode")
            await fs.flush(fh)
        finally:
            await fs.release(fh)
        assert (await fs.getattr(b_ino)).size == len(b"written through the kernel's inode")
        assert await p.read("files/b.txt") == b"written through the kernel's inode"
        assert await p.ls("trash") == ["a.txt"]
        assert (await fs.getxattr(await p.ino("trash/a.txt"), "user.amo.uuid")).decode() == a
    assert emulator.content(b) == b"written through the kernel's inode"


async def test_after_promoting_a_version_the_inode_the_kernel_holds_is_the_files(emulator: Any, tmp_path: Path) -> None:
    uuid = emulator.seed_file("x.txt", b"one")
    emulator.add_version(uuid, "x.txt", b"two")
    async with open_fs(emulator, tmp_path / "cache") as fs:
        p = P(fs)
        old = sorted(n for n in await p.ls(f"versions/{uuid}") if n.startswith("v"))[0]
        v_ino = await p.ino(f"versions/{uuid}/{old}")
        await p.mv(f"versions/{uuid}/{old}", "files/x.txt")
        assert (await fs.getxattr(v_ino, "user.amo.uuid")).decode() == uuid
        fh = (await fs.open(v_ino, os.O_WRONLY | os.O_TRUNC)).fh
        try:
            await fs.write(fh, 0, b"three")
            await fs.flush(fh)
        finally:
            await fs.release(fh)
    assert emulator.content(uuid) == b"three"
