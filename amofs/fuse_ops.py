"""The pyfuse3 adapter: kernel requests in, ``AmoFS`` calls out.

Owns: the translation between the kernel's types and the facade's plain ones — names as bytes ↔ ``str``
(``os.fsdecode``/``os.fsencode``, so undecodable bytes survive as surrogate escapes), ``Attr`` →
``EntryAttributes`` (file type bits, owner, the mount's umask, block counts, cache timeouts), ``Opened`` →
``FileInfo``, ``StatFs`` → ``StatvfsData`` — and the one place where an error becomes an errno: the
``_errno`` decorator on every handler. It caches nothing and keeps no state besides the owner and umask.

Must not: decide anything about the filesystem (that is ``AmoFS``'s job; handlers here are decode, call,
encode), or let any exception other than ``FUSEError`` escape a handler: pyfuse3 ends the whole mount on one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import stat
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import pyfuse3
import trio

from amofs.errors import AmoError, ProtocolError, errno_of
from amofs.filesystem import MEMO_MAX

if TYPE_CHECKING:
    from amofs.filesystem import AmoFS, Attr, Opened, StatFs

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

BLOCK_SIZE = 1 << 20  # st_blksize: the I/O size cp and cat use: 1 MiB kernel reads and writes (the most)


def _errno(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn every exception of a handler into ``FUSEError``: AmoError → its errno, anything else → EIO
    with the traceback logged (a bug, but one that must not end the mount)."""

    @functools.wraps(fn)
    async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except AmoError as e:
            code = errno_of(e)
            if isinstance(e, ProtocolError):  # the service answered something unusable: worth a line in the log
                log.warning("%s: %s → %s", fn.__name__, e, errno.errorcode.get(code, code))
            else:
                log.debug("%s: %s → %s", fn.__name__, e, errno.errorcode.get(code, code))
            raise pyfuse3.FUSEError(code) from None
        except Exception:
            log.exception("%s failed unexpectedly; answering EIO", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return handler


class Operations(pyfuse3.Operations):
    """Every kernel request the mount answers; the others get ENOSYS from pyfuse3's base class."""

    supports_dot_lookup = True
    enable_writeback_cache = False

    def __init__(self, fs: AmoFS, *, uid: int, gid: int, umask: int) -> None:
        super().__init__()
        self.fs = fs
        self.uid = uid
        self.gid = gid
        self.umask = umask
        fs.invalidate_entry = self.invalidate_entry
        fs.invalidate_attrs = self.invalidate_attrs
        self._entries: dict[int, tuple[Attr, pyfuse3.EntryAttributes]] = {}
        #: set while pyfuse3 answers the kernel's INIT; the answer is on its way once a waiting task runs
        self.initialized = trio.Event()

    def init(self) -> None:
        self.initialized.set()

    @staticmethod
    async def invalidate_attrs(inode: int) -> None:
        """Make the kernel ask for an inode's attributes again (the size above all). In a worker thread: the
        kernel may need a moment, and it must never wait on a handler of ours."""
        with contextlib.suppress(OSError):  # the kernel has already forgotten it
            await trio.to_thread.run_sync(pyfuse3.invalidate_inode, inode, True)

    @staticmethod
    def invalidate_entry(parent_inode: int, name: str) -> None:
        """Make the kernel forget ``parent/name`` (from within a handler: queued, done once it returned)."""
        pyfuse3.invalidate_entry_async(parent_inode, os.fsencode(name), ignore_enoent=True)

    # --- conversions --------------------------------------------------------------------------------------

    def entry(self, a: Attr) -> pyfuse3.EntryAttributes:
        memo = self._entries.get(a.ino)
        if memo is not None and memo[0] is a:  # the facade hands out the same Attr while nothing changed
            return memo[1]
        e = self._entry(a)
        if len(self._entries) >= MEMO_MAX:
            self._entries.clear()
        self._entries[a.ino] = (a, e)
        return e

    def _entry(self, a: Attr) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = a.ino
        e.generation = 0
        e.entry_timeout = self.fs.entry_timeout
        e.attr_timeout = self.fs.attr_timeout
        e.st_mode = (stat.S_IFDIR if a.is_dir else stat.S_IFREG) | (a.perm & ~self.umask & 0o7777)
        e.st_nlink = a.nlink
        e.st_uid = self.uid
        e.st_gid = self.gid
        e.st_rdev = 0
        e.st_size = a.size
        e.st_blksize = BLOCK_SIZE
        e.st_blocks = (a.size + 511) // 512
        e.st_atime_ns = a.atime_ns
        e.st_mtime_ns = a.mtime_ns
        e.st_ctime_ns = a.ctime_ns
        return e

    @staticmethod
    def file_info(o: Opened) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=o.fh, keep_cache=o.keep_cache, direct_io=o.direct_io)

    @staticmethod
    def statvfs(s: StatFs) -> pyfuse3.StatvfsData:
        v = pyfuse3.StatvfsData()
        v.f_bsize = v.f_frsize = s.block_size
        v.f_blocks = s.total_blocks
        v.f_bfree = v.f_bavail = s.free_blocks
        v.f_files = s.total_files
        v.f_ffree = v.f_favail = s.free_files
        v.f_namemax = s.name_max
        return v

    # --- names and attributes -----------------------------------------------------------------------------

    @_errno
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self.fs.lookup(parent_inode, os.fsdecode(name)))

    @_errno
    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        self.fs.forget(inode_list)

    @_errno
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(await self.fs.getattr(inode))

    @_errno
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        # size and mtime are kept; mode, owner and atime are accepted so that cp -p and rsync -a succeed
        size = attr.st_size if fields.update_size else None
        mtime = attr.st_mtime_ns if fields.update_mtime else None
        return self.entry(await self.fs.setattr(inode, size=size, fh=fh, mtime_ns=mtime))

    # --- folders ------------------------------------------------------------------------------------------

    @_errno
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return await self.fs.opendir(inode)

    @_errno
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        reply, entry, incref = pyfuse3.readdir_reply, self.entry, self.fs.incref  # per entry of a warm ls -l
        for d in await self.fs.readdir(fh, start_id):
            if not reply(token, os.fsencode(d.name), entry(d.attr), d.next_id):
                break
            incref(d.attr.ino)

    @_errno
    async def releasedir(self, fh: int) -> None:
        await self.fs.releasedir(fh)

    @_errno
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self.entry(await self.fs.mkdir(parent_inode, os.fsdecode(name)))

    @_errno
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.rmdir(parent_inode, os.fsdecode(name))

    @_errno
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self.entry(await self.fs.symlink(parent_inode, os.fsdecode(name), os.fsdecode(target)))

    # --- files --------------------------------------------------------------------------------------------

    @_errno
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return self.file_info(await self.fs.open(inode, flags))

    @_errno
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        opened, attr = await self.fs.create(parent_inode, os.fsdecode(name), flags)
        return self.file_info(opened), self.entry(attr)

    @_errno
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        # pyfuse3 replies with any contiguous buffer (its stub says bytes): a slice is sent without a copy
        return await self.fs.read(fh, off, size)

    @_errno
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self.fs.write(fh, off, buf)

    @_errno
    async def flush(self, fh: int) -> None:
        await self.fs.flush(fh)

    @_errno
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.fs.fsync(fh)

    @_errno
    async def release(self, fh: int) -> None:
        await self.fs.release(fh)

    @_errno
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.unlink(parent_inode, os.fsdecode(name))

    @_errno
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        old, new = os.fsdecode(name_old), os.fsdecode(name_new)
        await self.fs.rename(parent_inode_old, old, parent_inode_new, new, flags)

    @_errno
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self.entry(await self.fs.link(inode, new_parent_inode, os.fsdecode(new_name)))

    # --- extended attributes and the filesystem -----------------------------------------------------------

    @_errno
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.fs.getxattr(inode, os.fsdecode(name))

    @_errno
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        return [os.fsencode(n) for n in await self.fs.listxattr(inode)]

    @_errno
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.setxattr(inode, os.fsdecode(name), value)

    @_errno
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.removexattr(inode, os.fsdecode(name))

    @_errno
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        return self.statvfs(await self.fs.statfs())
