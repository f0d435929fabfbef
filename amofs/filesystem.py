"""AmoFS: the filesystem's semantics as plain async methods — the facade the FUSE adapter calls.

INTERFACE STUB — the contract between the semantics layer and amofs.fuse_ops. Names are ``str`` (the adapter
decodes bytes with ``os.fsdecode``, so invalid UTF-8 arrives as surrogate escapes), inodes are ``int``, and
every method raises only ``AmoError`` subclasses (the adapter maps them with ``errors.errno_of``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amofs.api.client import AmoClient

ROOT_INODE = 1  # pyfuse3.ROOT_INODE


@dataclass(frozen=True, slots=True)
class Attr:
    """What ``stat`` shows. Permissions only; owner and the file-type bits are the adapter's business."""

    ino: int
    is_dir: bool
    size: int
    perm: int  # 0o644 / 0o755 before the mount's umask
    nlink: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One ``readdir`` row; ``next_id`` is the offset the kernel passes back to continue after it."""

    name: str
    attr: Attr
    next_id: int


@dataclass(frozen=True, slots=True)
class Opened:
    fh: int
    keep_cache: bool = False  # the kernel may keep cached pages from an earlier open
    direct_io: bool = False


@dataclass(frozen=True, slots=True)
class StatFs:
    block_size: int
    total_blocks: int
    free_blocks: int
    total_files: int
    free_files: int
    name_max: int = 255


class AmoFS:
    """The mounted account.

    Lifecycle (mount.py): ``fs = AmoFS(client, cache_dir=…)``; ``await fs.start()`` (loads what it needs; may
    raise AmoError = a start-up failure); ``await nursery.start(fs.run)`` (background work: deferred uploads,
    cache upkeep; returns from ``start`` once running); serve FUSE; at unmount ``await fs.close()`` (waits for
    uploads in flight, then makes ``run`` return).
    """

    #: seconds the kernel may cache entries and attributes (consistent with the metadata cache TTL)
    entry_timeout: float
    attr_timeout: float

    def __init__(
        self,
        client: AmoClient,
        *,
        cache_dir: Path,
        cache_ttl: float = 60.0,
        local_patterns: Sequence[str] = (),
        content_cache_bytes: int = 2 << 30,
    ) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def run(self, *, task_status: object = None) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    # --- names and attributes -----------------------------------------------------------------------------
    async def lookup(self, parent: int, name: str) -> Attr:
        """Resolve a name and count one kernel lookup of the result."""
        raise NotImplementedError

    def incref(self, ino: int) -> None:
        """Count one kernel lookup (a readdirplus entry the kernel accepted)."""
        raise NotImplementedError

    def forget(self, items: Sequence[tuple[int, int]]) -> None:
        raise NotImplementedError

    async def getattr(self, ino: int) -> Attr:
        raise NotImplementedError

    async def setattr(self, ino: int, *, size: int | None = None, fh: int | None = None) -> Attr:
        """Truncate when ``size`` is given; mode, owner and times are accepted and not kept."""
        raise NotImplementedError

    # --- folders ------------------------------------------------------------------------------------------
    async def opendir(self, ino: int) -> int:
        raise NotImplementedError

    async def readdir(self, fh: int, start_id: int) -> Sequence[DirEntry]:
        """Entries after offset ``start_id`` (0 = from the start), snapshot taken at opendir."""
        raise NotImplementedError

    async def releasedir(self, fh: int) -> None:
        raise NotImplementedError

    async def mkdir(self, parent: int, name: str) -> Attr:
        raise NotImplementedError

    async def rmdir(self, parent: int, name: str) -> None:
        raise NotImplementedError

    async def symlink(self, parent: int, name: str, target: str) -> Attr:
        raise NotImplementedError

    # --- files --------------------------------------------------------------------------------------------
    async def open(self, ino: int, flags: int) -> Opened:
        raise NotImplementedError

    async def create(self, parent: int, name: str, flags: int) -> tuple[Opened, Attr]:
        raise NotImplementedError

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        raise NotImplementedError

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        raise NotImplementedError

    async def flush(self, fh: int) -> None:
        raise NotImplementedError

    async def fsync(self, fh: int) -> None:
        raise NotImplementedError

    async def release(self, fh: int) -> None:
        raise NotImplementedError

    async def unlink(self, parent: int, name: str) -> None:
        raise NotImplementedError

    async def rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str, flags: int) -> None:
        raise NotImplementedError

    async def link(self, ino: int, new_parent: int, new_name: str) -> Attr:
        raise NotImplementedError

    # --- extended attributes and the filesystem -----------------------------------------------------------
    async def getxattr(self, ino: int, name: str) -> bytes:
        raise NotImplementedError

    async def listxattr(self, ino: int) -> list[str]:
        raise NotImplementedError

    async def setxattr(self, ino: int, name: str, value: bytes) -> None:
        raise NotImplementedError

    async def removexattr(self, ino: int, name: str) -> None:
        raise NotImplementedError

    async def statfs(self) -> StatFs:
        raise NotImplementedError
