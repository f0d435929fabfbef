"""The pyfuse3 adapter without a kernel: every error becomes FUSEError (AmoError → its errno, anything else → EIO
and a log line), names go through fsdecode/fsencode, and Attr becomes EntryAttributes with owner and umask."""

from __future__ import annotations

import errno
import logging
import stat
from types import SimpleNamespace
from typing import Any

import pyfuse3
import pytest

from amofs.errors import Forbidden, NoAttribute, NotFound, NotPermitted
from amofs.filesystem import Attr, Opened, StatFs
from amofs.fuse_ops import BLOCK_SIZE, Operations

CTX: Any = None  # handlers here never look at the request context


class FakeFS:
    """Just enough of AmoFS: records calls, raises what a test sets."""

    entry_timeout = 5.0
    attr_timeout = 7.0

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.raise_: BaseException | None = None

    def _call(self, *args: Any) -> None:
        self.calls.append(args)
        if self.raise_ is not None:
            raise self.raise_

    async def lookup(self, parent: int, name: str) -> Attr:
        self._call("lookup", parent, name)
        return Attr(ino=7, is_dir=False, size=1000, perm=0o644, nlink=1, mtime_ns=3, ctime_ns=2, atime_ns=1)

    async def getattr(self, ino: int) -> Attr:
        self._call("getattr", ino)
        return Attr(ino=ino, is_dir=True, size=0, perm=0o755, nlink=2, mtime_ns=0, ctime_ns=0, atime_ns=0)

    async def setattr(
        self, ino: int, *, size: int | None = None, fh: int | None = None, mtime_ns: int | None = None
    ) -> Attr:
        self._call("setattr", ino, size, fh, mtime_ns)
        return await self.lookup(1, "x")

    async def unlink(self, parent: int, name: str) -> None:
        self._call("unlink", parent, name)

    async def mkdir(self, parent: int, name: str) -> Attr:
        self._call("mkdir", parent, name)
        raise NotPermitted("no folders")

    async def create(self, parent: int, name: str, flags: int) -> tuple[Opened, Attr]:
        self._call("create", parent, name, flags)
        return Opened(fh=9, keep_cache=True), await self.lookup(parent, name)

    async def listxattr(self, ino: int) -> list[str]:
        self._call("listxattr", ino)
        return ["user.amo.uuid"]

    async def getxattr(self, ino: int, name: str) -> bytes:
        self._call("getxattr", ino, name)
        raise NoAttribute(name)

    async def statfs(self) -> StatFs:
        return StatFs(block_size=4096, total_blocks=100, free_blocks=40, total_files=10, free_files=5)

    def forget(self, items: Any) -> None:
        self._call("forget", list(items))
        raise RuntimeError("a bug in forget")


@pytest.fixture
def ops() -> tuple[Operations, FakeFS]:
    fs = FakeFS()
    return Operations(fs, uid=1234, gid=5678, umask=0o027), fs  # type: ignore[arg-type]


def test_entry_attributes_are_reused_for_the_same_attr(ops: tuple[Operations, FakeFS]) -> None:
    o, _ = ops
    a = Attr(7, False, 10, 0o644, 1, 5, 5, 5)
    e = o.entry(a)
    assert o.entry(a) is e
    b = Attr(7, False, 11, 0o644, 1, 5, 5, 5)
    assert o.entry(b) is not e and o.entry(b).st_size == 11


async def test_entry_attributes(ops: tuple[Operations, FakeFS]) -> None:
    o, fs = ops
    e = await o.lookup(1, "Отчёт.txt".encode(), CTX)
    assert fs.calls == [("lookup", 1, "Отчёт.txt")]
    assert e.st_ino == 7
    assert e.st_mode == stat.S_IFREG | 0o640  # 0o644 minus umask 027
    assert (e.st_uid, e.st_gid) == (1234, 5678)
    assert e.st_size == 1000 and e.st_blocks == 2 and e.st_blksize == BLOCK_SIZE
    assert (e.st_atime_ns, e.st_ctime_ns, e.st_mtime_ns) == (1, 2, 3)
    assert (e.entry_timeout, e.attr_timeout) == (5.0, 7.0)
    d = await o.getattr(1, CTX)
    assert d.st_mode == stat.S_IFDIR | 0o750 and d.st_nlink == 2


async def test_undecodable_names_survive_as_surrogates(ops: tuple[Operations, FakeFS]) -> None:
    o, fs = ops
    await o.unlink(1, b"bad\xff.txt", CTX)
    assert fs.calls == [("unlink", 1, "bad\udcff.txt")]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (NotFound("gone"), errno.ENOENT),
        (Forbidden("scope"), errno.EACCES),
        (NotPermitted("no"), errno.EPERM),
        (pyfuse3.FUSEError(errno.EROFS), errno.EROFS),
    ],
)
async def test_errors_become_their_errno(ops: tuple[Operations, FakeFS], exc: BaseException, code: int) -> None:
    o, fs = ops
    fs.raise_ = exc
    with pytest.raises(pyfuse3.FUSEError) as info:
        await o.lookup(1, b"x", CTX)
    assert info.value.errno == code


async def test_a_bug_becomes_eio_and_is_logged(
    ops: tuple[Operations, FakeFS], caplog: pytest.LogCaptureFixture
) -> None:
    o, _ = ops
    with caplog.at_level(logging.ERROR, logger="amofs.fuse_ops"), pytest.raises(pyfuse3.FUSEError) as info:
        await o.forget([(7, 1)])
    assert info.value.errno == errno.EIO
    assert "forget failed unexpectedly" in caplog.text and "a bug in forget" in caplog.text


async def test_setattr_passes_only_size_and_mtime(ops: tuple[Operations, FakeFS]) -> None:
    o, fs = ops
    attr = pyfuse3.EntryAttributes()
    attr.st_size = 42
    attr.st_mtime_ns = 5
    fields = pyfuse3.SetattrFields()  # nothing to update: chmod/chown arrive like this, size untouched
    await o.setattr(7, attr, fields, None, CTX)
    assert fs.calls[0] == ("setattr", 7, None, None, None)
    utimens = SimpleNamespace(update_size=False, update_mtime=True)  # pyfuse3's fields are read-only
    await o.setattr(7, attr, utimens, None, CTX)  # type: ignore[arg-type]
    assert ("setattr", 7, None, None, 5) in fs.calls


async def test_create_open_mkdir_xattrs_statfs(ops: tuple[Operations, FakeFS]) -> None:
    o, _ = ops
    fi, e = await o.create(1, b"new.txt", 0o644, 0, CTX)
    assert fi.fh == 9 and fi.keep_cache and not fi.direct_io and e.st_ino == 7
    with pytest.raises(pyfuse3.FUSEError) as info:
        await o.mkdir(1, b"d", 0o755, CTX)
    assert info.value.errno == errno.EPERM
    assert await o.listxattr(7, CTX) == [b"user.amo.uuid"]
    with pytest.raises(pyfuse3.FUSEError) as info:
        await o.getxattr(7, b"user.x", CTX)
    assert info.value.errno == errno.ENODATA
    v = await o.statfs(CTX)
    assert (v.f_bsize, v.f_frsize, v.f_blocks, v.f_bfree, v.f_bavail) == (4096, 4096, 100, 40, 40)
    assert (v.f_files, v.f_ffree, v.f_namemax) == (10, 5, 255)
