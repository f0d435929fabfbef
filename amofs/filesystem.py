"""AmoFS: the filesystem's semantics as plain async methods — the facade the FUSE adapter calls.

Names are ``str`` (the adapter decodes with ``os.fsdecode``, so invalid UTF-8 arrives as surrogate escapes and
is refused with EINVAL where it would reach the account), inodes are ``int``, and every method raises only
``AmoError`` subclasses (the adapter maps them with ``errors.errno_of``). Nothing here imports pyfuse3.

Owns: the handle table (one ``Handle`` per open fh: a RemoteReader or a shared LocalFile), the local overlay
(files created through the mount and not in the account yet, and editor lock files that never go there), the
table of what each Unix operation does in each folder (docs/SEMANTICS.md is its prose), and keeping the
metadata cache right after every mutation made through the mount.

Concurrency: pyfuse3 runs each request in its own trio task. State changes between awaits are atomic; an
upload holds its LocalFile's lock; listings are fetched once for all concurrent askers (MetaCache).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from amofs import names, views
from amofs.api.client import AmoClient
from amofs.api.models import FileModel
from amofs.errors import (
    AmoError,
    BadHandle,
    Exists,
    InvalidName,
    IsADirectory,
    NoAttribute,
    NoEntry,
    NotADirectory,
    NotFound,
    NotPermitted,
    NotSupported,
    ProtocolError,
    ReadOnly,
)
from amofs.inodes import ROOT_INODE, InodeTable
from amofs.localfiles import CacheDir
from amofs.metacache import FileIndex, Listing, MetaCache, file_key
from amofs.reader import RemoteReader
from amofs.writer import LocalFile, Uploader

log = logging.getLogger(__name__)

Key = tuple[Hashable, ...]

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FILE_KINDS = ("file", "sfile")  # node kinds that stand for an account file ("sfile": seen through search/)
STATS_TTL = 600.0  # seconds the quota shown by df is kept before the background task asks again
SAVE_DELAY = 2.0  # seconds after a sync before the index is written: a listing's own ls (and the next) run alone
STATS_DELAY = 5.0  # the first quota fetch waits this long after start, so it never delays the first ls
MEMO_MAX = 32768  # attributes kept for reuse (about 300 bytes each): a warm `ls -l` of a folder this size builds none
READDIR_BATCH = 256  # entries answered per readdir call (Linux 6.x takes ~256 short names per READDIRPLUS)
PENDING_GRACE = 3.0  # seconds a closed rename-temp file waits for its rename before it is uploaded as is
CONTROL: Key = ("dir", ".amofs")  # MOUNT/.amofs/status: the mount's state as JSON, read by `amofs status`
STATUS: Key = ("ctl", "status")
_GTRASH = re.compile(r"^\.Trash-(\d+)$")  # GIO's per-user trash folder on a mount ("Move to Trash")
XATTRS_FILE = ("user.amo.uuid", "user.amo.version_uuid", "user.amo.links")
XATTRS_VERSION = ("user.amo.version_uuid", "user.amo.file_uuid")


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


@dataclass(slots=True)  # not frozen: a warm `ls -l` makes one per file, and frozen costs 3x to build
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


@dataclass
class Handle:
    ino: int
    writable: bool
    local: LocalFile | None = None
    reader: RemoteReader | None = None
    entries: list[tuple[str, Key]] | None = None  # a folder handle's snapshot
    snapshot: bytes | None = None  # a control file's content, taken at open


async def _no_invalidation(ino: int) -> None:
    return None


def _write_only(flags: int) -> bool:
    return flags & os.O_ACCMODE == os.O_WRONLY


def _ns(seconds: int | float) -> int:
    return int(seconds * 1_000_000_000)


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
        local_patterns: Sequence[str] = names.DEFAULT_LOCAL_PATTERNS,
        content_cache_bytes: int = 2 << 30,
        poll_interval: float | None = None,
        persist_metadata: bool = True,
    ) -> None:
        self.client = client
        db = cache_dir / "meta.sqlite" if persist_metadata else None
        self.cache = MetaCache(cache_ttl, db=db, account=client.account_url)
        self.poll_interval = poll_interval
        self.ctx = views.Ctx(client, self.cache)
        self.inodes = InodeTable()
        self.dirs = CacheDir(cache_dir, content_cache_bytes)
        self.uploader = Uploader(client, self.dirs, self._on_uploaded)
        self.local_patterns = tuple(local_patterns)
        self.entry_timeout = cache_ttl
        self.attr_timeout = cache_ttl
        self._local: dict[int, LocalFile] = {}  # inode → its local bytes (being written, pending, local-only)
        self._overlay: dict[Key, dict[str, int]] = {}  # folder → names of local files not in the account
        self._handles: dict[int, Handle] = {}
        self._next_fh = 1
        self._next_new = 1
        self._kernel_version: dict[int, str] = {}  # inode → version whose pages the kernel may hold
        self._pending: dict[int, float] = {}  # inode → when a closed rename-temp file is uploaded as is
        self._renaming: set[int] = set()  # pending rename-temp files whose rename is under way
        self._failed_new: dict[int, tuple[Key, str]] = {}  # new files whose upload failed → (folder, name)
        #: tells the kernel to forget a name it holds wrongly (set by the FUSE adapter; a no-op without one)
        self.invalidate_entry: Callable[[int, str], None] = lambda parent, name: None
        #: makes the kernel forget an inode's attributes (set by the FUSE adapter; never from a handler)
        self.invalidate_attrs: Callable[[int], Awaitable[None]] = _no_invalidation
        self._started_ns = time.time_ns()
        self._closed = trio.Event()
        self._stats_cache: tuple[float, Any] | None = None
        self.recovered: list[Path] = []  # unsent bytes a killed previous run left, now under failed/
        self._local_mtime: dict[int, int] = {}  # inode → mtime set on a file not uploaded yet
        self._attr_memo: dict[int, tuple[FileModel, object, Attr]] = {}  # see _model_attr
        self._gtrash: set[str] = set()  # GIO trash folders made in this mount (".Trash-1000")
        self.info: dict[str, Any] = {}  # what the mount tells about itself in .amofs/status (profile, account)

    # --- lifecycle ----------------------------------------------------------------------------------------
    @staticmethod
    def persisted(cache_dir: Path, account_url: str) -> dict[str, Any] | None:
        """What a previous mount of this account left in ``cache_dir`` (``files_complete``, ``drive_url``), so
        the mount can skip its start-up probe: ``start(sync=True)`` then proves the URLs and the token."""
        return FileIndex.peek(cache_dir / "meta.sqlite", account_url.rstrip("/"))

    async def start(self, *, sync: bool = False) -> None:
        """Prepare the cache dir and load the persisted index. With ``sync``, bring a loaded index up to date
        now (the incremental sync, ~2 requests), so the first ``ls`` answers at once."""
        self.recovered = self.dirs.prepare()
        await self.cache.index.load()
        idx = self.cache.index
        idx.drive_url = self.client.drive_url
        if sync and idx.files is not None:
            await views.refresh(self.ctx)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        started = trio.current_time()
        while not self._closed.is_set():
            now = trio.current_time()
            due = self._stats_cache is None or now - self._stats_cache[0] > STATS_TTL
            if due and now - started >= STATS_DELAY:
                await self._fetch_stats()
            idx = self.cache.index
            if idx.save_wanted_at is not None and now - idx.save_wanted_at >= SAVE_DELAY:
                await idx.save()  # here, not on the path of the ls that waited for the sync
            with trio.move_on_after(1.0):
                await self._closed.wait()
            await self._upload_due(trio.current_time())
            await self._poll_due()
            await self._forget_changed()

    async def _poll_due(self) -> None:
        """With --poll-interval: sync the index in the background, so changes made elsewhere show up."""
        idx = self.cache.index
        if not self.poll_interval or idx.files is None or self._closed.is_set():
            return
        if trio.current_time() - idx.checked >= self.poll_interval:
            try:
                await views.refresh(self.ctx, force=True)
            except AmoError as e:
                log.warning("background refresh failed: %s", e)

    async def _forget_changed(self) -> None:
        """Files whose name, size or bytes changed (elsewhere, found by a sync): no request of the kernel's about
        them brought the news, so it still holds their old size (a read of a longer new version would stop at
        it) and names (a file deleted elsewhere would still open). Make it forget them; run() does this every
        second, right after any poll."""
        idx = self.cache.index
        changed, idx.changed = idx.changed, {}
        files_ino = self.inodes.find(views.FILES)
        for uuid, old_name in changed.items():
            ino = self.inodes.find(file_key(uuid))
            if ino is None:
                continue  # never shown to the kernel
            new_name = idx.files.by_key.get(file_key(uuid)) if idx.files is not None else None
            if old_name is not None and old_name != new_name and files_ino is not None:
                self.invalidate_entry(files_ino, old_name)
            self.cache.drop_listing(("dir", "versions", uuid))
            await self.invalidate_attrs(ino)
        if changed:
            self.cache.drop_listing(views.VERSIONS)

    async def close(self) -> None:
        """Upload what waits, then stop ``run``. Every upload in flight finishes first."""
        n = len(self._pending) + len(self.uploader.in_flight)
        if n:
            log.warning("unmounting: waiting for %d upload(s) to finish", n)
        await self._upload_due(float("inf"))
        while self.uploader.in_flight:
            await trio.sleep(0.05)
        self._closed.set()
        await self.cache.index.save()
        for h in list(self._handles.values()):
            if h.reader is not None:
                await h.reader.close()
        self.dirs.release()

    async def _upload_due(self, now: float) -> None:
        for ino, due in list(self._pending.items()):
            lf = self._local.get(ino)
            if lf is None or lf.unlinked:
                self._pending.pop(ino, None)
                continue
            # not while a listing is being fetched either (but always at unmount): the kernel looks the rename's
            # target up before it sends the rename, and that lookup may be what waits (a slow or throttled service)
            waiting = ino in self._renaming or (self.cache.fetching and now != float("inf"))
            if due <= now and lf.handles == 0 and not waiting:
                self._pending.pop(ino, None)
                with contextlib.suppress(AmoError):  # the uploader logged it, with where the bytes are kept
                    await self.uploader.upload(lf)
                self._drop_local_if_idle(ino)

    # --- nodes and attributes -----------------------------------------------------------------------------
    def _key(self, ino: int) -> Key:
        key = self.inodes.key(ino)
        if key is None:
            raise NoEntry(f"inode {ino} is not known")
        return key

    def _dir_key(self, ino: int) -> Key:
        key = self._key(ino)
        if not views.is_dir_key(key):
            raise NotADirectory()
        return key

    async def _model(self, uuid: str) -> FileModel:
        idx = self.cache.index
        m = self.cache.model(uuid)
        if m is None and idx.files is not None and uuid in idx.models:
            await views.refresh(self.ctx)  # one incremental sync refreshes every file at once
            m = self.cache.model(uuid)
        if m is None:
            try:
                m = await self.client.get_file(uuid)
            except NotFound:
                raise NoEntry(f"file {uuid} is gone from the account") from None
            self.cache.put(m)
        return m

    def _dir_attr(self, ino: int, key: Key = ("dir", "")) -> Attr:
        t = self._started_ns
        perm = 0o700 if len(key) > 1 and key[1] == "gtrash" else 0o755  # GIO wants its trash private
        return Attr(ino, True, 0, perm, 2, t, t, t)

    def _local_attr(self, ino: int, lf: LocalFile) -> Attr:
        t = self._local_mtime.get(ino) or lf.mtime_ns or self._started_ns
        return Attr(ino, False, lf.size, 0o644, 1, t, t, t)

    def _model_attr(self, ino: int, m: FileModel) -> Attr:
        lf = self._local.get(ino)
        if lf is not None and lf.loaded:
            return self._local_attr(ino, lf)
        # the same model (models are immutable, replaced on change) and the same kept mtime give the same
        # attributes: a warm `ls -l` of thousands of files reuses them instead of building each again
        kept = self.cache.index.mtimes.get(m.uuid)
        memo = self._attr_memo.get(ino)
        if lf is None and memo is not None and memo[0] is m and memo[1] is kept:
            return memo[2]
        mt, ct = self.cache.index.mtime_ns(m), _ns(m.created_at)
        a = Attr(ino, False, lf.size if lf else m.size, 0o444 if m.is_trashed else 0o644, 1, mt, ct, mt)
        if lf is None:  # a file being written changes size under the same model: never kept
            if len(self._attr_memo) >= MEMO_MAX:
                self._attr_memo.clear()  # bounded: a folder larger than this simply rebuilds them
            self._attr_memo[ino] = (m, kept, a)
        return a

    def _attr_now(self, ino: int, key: Key, now: float | None = None) -> Attr | None:
        """The attributes when they can be had without a request (``now``: see FileIndex.fresh_model)."""
        kind = key[0]
        if kind in FILE_KINDS:  # first: files are what a listing walks by the thousand
            m = self.cache.model(str(key[1]), now)
            if m is not None:
                return self._model_attr(ino, m)
            lf = self._local.get(ino)
            return self._local_attr(ino, lf) if lf and lf.loaded else None
        if views.is_dir_key(key):
            return self._dir_attr(ino, key)
        if key == STATUS:
            return Attr(ino, False, 0, 0o444, 1, self._started_ns, self._started_ns, time.time_ns())
        if kind == "new":
            lf = self._local.get(ino)
            return self._local_attr(ino, lf) if lf else None
        if kind == "version":
            v = self.ctx.versions.get(str(key[1]))
            if v is not None:
                t = _ns(v.created_at)
                return Attr(ino, False, v.size, 0o444, 1, t, t, t)
        return None

    async def _attr(self, ino: int, key: Key) -> Attr:
        a = self._attr_now(ino, key)
        if a is not None:
            return a
        if key[0] in FILE_KINDS:
            return self._model_attr(ino, await self._model(str(key[1])))
        raise NoEntry()

    async def getattr(self, ino: int) -> Attr:
        return await self._attr(ino, self._key(ino))

    async def setattr(
        self, ino: int, *, size: int | None = None, fh: int | None = None, mtime_ns: int | None = None
    ) -> Attr:
        """Truncate when ``size`` is given; keep an mtime set through the mount (the account has no such
        field: amofs remembers it for that version, so ``rsync -a`` sees its own times); mode and owner
        are accepted and not kept."""
        if size is not None:
            h = self._handles.get(fh) if fh is not None else None
            lf = h.local if h is not None and h.local is not None else await self._open_local(ino)
            self.uploader.check_size(size)
            if size != 0:
                await lf.ensure_loaded(lambda fd: self._fetch_into(ino, fd))
            lf.truncate(size)
            if h is None:  # truncate(2) by path: no handle will flush it
                lf.handles += 1
                try:
                    await self._flush_local(ino, lf)
                finally:
                    lf.handles -= 1
                    self._drop_local_if_idle(ino)
        if mtime_ns is not None:
            key = self._key(ino)
            if ino in self._local and self._local[ino].dirty:
                self._local_mtime[ino] = mtime_ns  # kept with the version its upload will make
            elif key[0] == "sfile":
                raise ReadOnly("search results are read-only")
            elif key[0] == "version":
                raise ReadOnly("versions are read-only")
            elif key[0] == "file":
                m = await self._model(str(key[1]))
                self.cache.index.set_mtime(m.uuid, m.version_uuid, mtime_ns)
        return await self.getattr(ino)

    # --- names --------------------------------------------------------------------------------------------
    async def _resolve(self, parent: Key, name: str) -> Key | None:
        """A child's key: the local overlay first, then the folder's listing, then dynamic names."""
        ino = self._overlay.get(parent, {}).get(name)
        if ino is not None:
            return self._key(ino)
        virtual = self._virtual_listing(parent)
        if virtual is not None:
            return virtual.get(name)
        if parent not in (views.VERSIONS, views.SEARCH, *views.ENTITY_ROOTS.values()):
            # a cached listing is the whole truth about its folder: no negative entries needed
            return (await views.listing(self.ctx, parent)).names.get(name)
        # names that exist without a listing (versions/UUID, leads/ID) cost a request: remember misses
        if self.cache.is_missing(parent, name):
            return None
        key = await views.lookup_dynamic(self.ctx, parent, name)
        if key is None:
            self.cache.set_missing(parent, name)
        return key

    def _virtual_listing(self, key: Key) -> dict[str, Key] | None:
        """Folders that live in the mount only: the root, .amofs/, GIO's .Trash-UID/ and its files/, info/."""
        if key == views.ROOT:
            out = dict(views.ROOT_NAMES)
            out[".amofs"] = CONTROL
            out.update({f".Trash-{uid}": ("dir", "gtrash", uid) for uid in self._gtrash})
            return out
        if key == CONTROL:
            return {"status": STATUS}
        if len(key) == 3 and key[1] == "gtrash":
            return {"files": (*key, "files"), "info": (*key, "info")}
        if len(key) == 4 and key[1] == "gtrash":
            return {}  # files sent there are in the account's trash/; info/ holds GIO's local notes
        return None

    async def lookup(self, parent: int, name: str) -> Attr:
        pkey = self._dir_key(parent)
        if name == "." or name == "..":
            raise NoEntry()  # the kernel answers these itself
        key = await self._resolve(pkey, name)
        if key is None:
            raise NoEntry()
        ino = self.inodes.ino(key)
        attr = await self._attr(ino, key)
        self.inodes.lookup(ino)
        return attr

    def incref(self, ino: int) -> None:
        self.inodes.lookup(ino)

    def forget(self, items: Sequence[tuple[int, int]]) -> None:
        for ino, n in items:
            self.inodes.forget(ino, n)

    # --- folders ------------------------------------------------------------------------------------------
    async def opendir(self, ino: int) -> int:
        pkey = self._dir_key(ino)
        virtual = self._virtual_listing(pkey)
        if virtual is not None:
            entries = [(n, k) for n, k in virtual.items() if n != ".amofs"]  # the control folder stays hidden
        else:
            entries = list((await views.listing(self.ctx, pkey)).names.items())
        overlay = self._overlay.get(pkey, {})
        if overlay:
            # a local file shadows an account file of the same name, as lookup does: one name, one entry
            entries = [(n, k) for n, k in entries if n not in overlay]
            remote = {k: n for n, k in entries}
            for name, lino in overlay.items():
                lkey = self._key(lino)
                if lkey not in remote:
                    entries.append((name, lkey))
        return self._new_handle(Handle(ino, False, entries=entries))

    async def readdir(self, fh: int, start_id: int) -> Sequence[DirEntry]:
        h = self._handle(fh)
        if h.entries is None:
            raise NotADirectory()
        out: list[DirEntry] = []
        # the kernel takes a few hundred entries per call: answer a bounded batch, never the whole rest.
        # Per entry this is the warm `ls -l` cost, so the folder's state and the clock are read once a batch.
        pkey = self._key(h.ino)
        overlay = self._overlay.get(pkey, {})
        idx = self.cache.index
        lst = idx.files if pkey == views.FILES else idx.trash if pkey == views.TRASH else self.cache.listings.get(pkey)
        names = lst.names if lst is not None else None
        now = trio.current_time()
        entries, still_listed, ino_of, attr_now = h.entries, self._still_listed, self.inodes.ino, self._attr_now
        for i in range(start_id, min(len(entries), start_id + READDIR_BATCH)):
            name, key = entries[i]
            if not still_listed(overlay, names, name, key):
                continue  # renamed or removed through the mount since opendir: the kernel would cache it
            ino = ino_of(key)
            try:
                attr = attr_now(ino, key, now) or await self._attr(ino, key)
            except NoEntry:
                continue  # gone since the listing was taken
            out.append(DirEntry(name, attr, i + 1))
        return out

    def _still_listed(self, overlay: dict[str, int], names: dict[str, Key] | None, name: str, key: Key) -> bool:
        """Whether an entry of a folder's opendir snapshot still stands, as far as memory tells (no request):
        ``overlay`` is the folder's local files, ``names`` its listing when one is held. Every entry readdir
        gives becomes a name the kernel caches (READDIRPLUS), so a name renamed or removed meanwhile must not
        be given out again."""
        lino = overlay.get(name)
        if lino is not None:
            return self.inodes.key(lino) == key
        if key[0] == "new":
            return False  # a local file that left the overlay: uploaded (its inode has its uuid now) or gone
        return names is None or names.get(name) == key

    async def releasedir(self, fh: int) -> None:
        self._handles.pop(fh, None)

    async def mkdir(self, parent: int, name: str) -> Attr:
        pkey = self._dir_key(parent)
        if await self._resolve(pkey, name) is not None:
            raise Exists()
        m = _GTRASH.match(name)
        if pkey == views.ROOT and m:
            self._gtrash.add(m.group(1))
            return await self.lookup(parent, name)
        raise NotPermitted("the account has no folders; files live flat in files/")

    async def rmdir(self, parent: int, name: str) -> None:
        pkey = self._dir_key(parent)
        key = await self._resolve(pkey, name)
        if key is None:
            raise NoEntry()
        if not views.is_dir_key(key):
            raise NotADirectory()
        raise NotPermitted("the mount's folders are fixed by the account's structure")

    async def symlink(self, parent: int, name: str, target: str) -> Attr:
        self._dir_key(parent)
        raise NotPermitted("the account cannot hold symbolic links")

    # --- handles ------------------------------------------------------------------------------------------
    def _new_handle(self, h: Handle) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = h
        return fh

    def _handle(self, fh: int) -> Handle:
        h = self._handles.get(fh)
        if h is None:
            raise BadHandle()
        return h

    async def _open_local(self, ino: int) -> LocalFile:
        """The LocalFile of an inode, made for an existing account file on its first write."""
        lf = self._local.get(ino)
        if lf is not None:
            return lf
        key = self._key(ino)
        if key[0] == "version":
            raise ReadOnly("versions are read-only; mv one onto its file to make it active")
        if key[0] == "sfile":
            raise ReadOnly("search results are read-only; write the file through files/")
        if key[0] != "file":
            raise IsADirectory() if views.is_dir_key(key) else NoEntry()
        m = await self._model(str(key[1]))
        if m.is_trashed:
            raise NotPermitted("a file in the trash cannot be written; restore it first")
        lf = LocalFile(
            self.dirs.new_spool(),
            name=names.join(m.name, m.extension),
            parent=views.FILES,
            target_uuid=m.uuid,
            size=m.size,
            loaded=m.size == 0,
        )
        lf.mtime_ns = _ns(m.updated_at)
        self._local[ino] = lf
        return lf

    async def open(self, ino: int, flags: int) -> Opened:
        key = self._key(ino)
        if views.is_dir_key(key):
            raise IsADirectory()
        writable = (flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
        failed = self._failed_new.pop(ino, None)
        if failed is not None and writable and ino not in self._local and await self._resolve(*failed) is None:
            # a new file whose upload failed: the kernel still knows its name, so a retry's open(O_CREAT) comes
            # here instead of to create: the name gets a new, empty file again (it never held account bytes)
            self._new_local(ino, *failed)
        if writable or ino in self._local:
            lf = await self._open_local(ino) if writable else self._local[ino]
            if writable and flags & os.O_TRUNC:
                lf.truncate(0)
            lf.handles += 1
            self._kernel_version.pop(ino, None)
            return Opened(self._new_handle(Handle(ino, writable, local=lf)), direct_io=_write_only(flags))
        if key == STATUS:
            return Opened(self._new_handle(Handle(ino, False, snapshot=self.status_json())), direct_io=True)
        if key[0] in FILE_KINDS:
            m = await self._model(str(key[1]))
            url = functools.partial(self._download_url, m)
            reader = RemoteReader(self.client, self.dirs, url=url, size=m.size, version_uuid=m.version_uuid)
            version = m.version_uuid
        elif key[0] == "version":
            v = self.ctx.versions.get(str(key[1]))
            if v is None or not v.download_url:
                raise NoEntry()
            link = v.download_url

            async def vurl() -> str:
                return link

            reader = RemoteReader(self.client, self.dirs, url=vurl, size=v.size, version_uuid=v.uuid)
            version = v.uuid
        else:
            raise NoEntry()
        keep = self._kernel_version.get(ino) == version
        self._kernel_version[ino] = version
        return Opened(self._new_handle(Handle(ino, False, reader=reader)), keep_cache=keep)

    async def create(self, parent: int, name: str, flags: int) -> tuple[Opened, Attr]:
        pkey = self._dir_key(parent)
        names.check_component(name)
        existing = await self._resolve(pkey, name)
        if existing is not None:  # a stale kernel cache: open the existing file, truncated
            if flags & os.O_EXCL:
                raise Exists()
            ino = self.inodes.ino(existing)
            opened = await self.open(ino, (flags & ~os.O_ACCMODE) | os.O_RDWR | os.O_TRUNC)
            self.inodes.lookup(ino)
            return opened, await self.getattr(ino)
        self._check_creatable(pkey)
        key: Key = ("new", self._next_new)
        self._next_new += 1
        ino = self.inodes.ino(key)
        lf = self._new_local(ino, pkey, name)
        lf.handles += 1
        self.inodes.lookup(ino)
        fh = self._new_handle(Handle(ino, True, local=lf))
        return Opened(fh, direct_io=_write_only(flags)), self._local_attr(ino, lf)

    def _new_local(self, ino: int, pkey: Key, name: str) -> LocalFile:
        """A new, empty file under ``name`` in ``pkey``, not in the account until its upload."""
        local_only = names.is_local_only(name, self.local_patterns) or self._is_gtrash_info(pkey)
        lf = LocalFile(
            self.dirs.new_spool(),
            name=names.unescape(name),
            parent=pkey,
            target_uuid=None,
            local_only=local_only,
        )
        lf.touch()
        self._local[ino] = lf
        self._overlay.setdefault(pkey, {})[name] = ino
        return lf

    def _check_creatable(self, pkey: Key) -> None:
        if pkey == views.FILES or views.entity_of(pkey) is not None or self._is_gtrash_info(pkey):
            return
        if pkey == views.VERSIONS or pkey[1] in ("versions", "search"):
            raise ReadOnly("this folder is read-only")
        raise NotPermitted("files can be created in files/ and in entity folders only")

    @staticmethod
    def _is_gtrash_files(key: Key) -> bool:
        return len(key) == 4 and key[1] == "gtrash" and key[3] == "files"

    @staticmethod
    def _is_gtrash_info(key: Key) -> bool:
        return len(key) == 4 and key[1] == "gtrash" and key[3] == "info"

    async def _fetch_into(self, ino: int, fd: int) -> int:
        """Copy an account file's current bytes into ``fd`` (before a partial overwrite); return the size."""
        key = self._key(ino)
        m = await self._model(str(key[1]))
        reader = RemoteReader(
            self.client,
            self.dirs,
            url=functools.partial(self._download_url, m),
            size=m.size,
            version_uuid=m.version_uuid,
        )
        try:
            off = 0
            while off < m.size:
                chunk = await reader.read(off, 1 << 20)
                if not chunk:
                    break
                os.pwrite(fd, chunk, off)
                off += len(chunk)
        finally:
            await reader.close()
        return m.size

    async def _download_url(self, m: FileModel) -> str:
        """The link to the bytes of ``m``'s version, for a reader opened on it: the version's own link, so a
        new version made elsewhere meanwhile never mixes into a reader's resumed or ranged requests (the file's
        link serves whatever version is active when asked). Without that link, the file's link while it still
        serves that version."""
        if m.download_version_url:
            return m.download_version_url
        cur = await self._model(m.uuid)
        if cur.version_uuid != m.version_uuid:
            raise ProtocolError(f"file {m.uuid} got a new version while it was read; open it again")
        if not cur.download_url:
            raise ProtocolError(f"file {m.uuid} has no download link")
        return cur.download_url

    async def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        """A memoryview is a slice of a reader's buffer or of a cached content's mapping (no copy made)."""
        h = self._handle(fh)
        if h.snapshot is not None:
            return h.snapshot[offset : offset + size]
        lf = h.local or self._local.get(h.ino)
        if lf is not None:
            await lf.ensure_loaded(lambda fd: self._fetch_into(h.ino, fd))
            return lf.read(offset, size)
        assert h.reader is not None
        return await h.reader.read(offset, size)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        h = self._handle(fh)
        if not h.writable or h.local is None:
            raise BadHandle("not open for writing")
        self.uploader.check_size(offset + len(data))
        lf = h.local
        if not lf.loaded:
            await lf.ensure_loaded(lambda fd: self._fetch_into(h.ino, fd))
        self._local_mtime.pop(h.ino, None)  # written after a utimens: the time is now again
        return lf.write(offset, data)

    async def flush(self, fh: int) -> None:
        h = self._handle(fh)
        if h.writable and h.local is not None:
            await self._flush_local(h.ino, h.local)

    async def fsync(self, fh: int) -> None:
        h = self._handle(fh)
        if h.local is not None and h.local.dirty:
            self._pending.pop(h.ino, None)
            await self.uploader.upload(h.local)

    async def _flush_local(self, ino: int, lf: LocalFile) -> None:
        if not lf.dirty or lf.unlinked:
            return
        shown = self._shown_local(ino)
        if lf.target_uuid is None and shown is not None and names.is_rename_temp(shown):
            # rsync, GIO and editors write a temp file and rename it over the target: wait for the rename
            self._pending[ino] = trio.current_time() + PENDING_GRACE
            return
        self._pending.pop(ino, None)
        await self.uploader.upload(lf)

    def _shown_local(self, ino: int) -> str | None:
        lf = self._local.get(ino)
        if lf is None:
            return None
        for name, i in self._overlay.get(lf.parent, {}).items():
            if i == ino:
                return name
        return None

    async def release(self, fh: int) -> None:
        h = self._handles.pop(fh, None)
        if h is None:
            return
        if h.reader is not None:
            await h.reader.close()
        if h.local is not None:
            h.local.handles -= 1
            if h.ino in self._pending:
                self._pending[h.ino] = trio.current_time() + PENDING_GRACE
            else:
                self._drop_local_if_idle(h.ino)

    def _drop_local_if_idle(self, ino: int) -> None:
        """Forget a LocalFile nobody writes: uploaded, failed (bytes kept under failed/), or unlinked."""
        lf = self._local.get(ino)
        if lf is None or lf.handles > 0 or ino in self._pending or (lf.local_only and not lf.unlinked):
            return
        if lf.dirty and not lf.unlinked and lf.failed_path is None:
            return  # never drop bytes that are in no other place
        del self._local[ino]
        lf.close()
        key = self.inodes.key(ino)
        if key is not None and key[0] == "new":
            if not lf.unlinked:  # its upload failed: the kernel may still open the name it knows (see open)
                for folder, here in self._overlay.items():
                    for name in [n for n, i in here.items() if i == ino]:
                        self._failed_new[ino] = (folder, name)
            self._remove_overlay(ino)

    def _remove_overlay(self, ino: int) -> None:
        for folder in self._overlay.values():
            for name, i in list(folder.items()):
                if i == ino:
                    del folder[name]

    async def _on_uploaded(self, lf: LocalFile, model: FileModel) -> None:
        """An upload landed: the file leaves the overlay and joins the cached listings at once."""
        self.cache.put(model)
        if self._stats_cache is not None and self._stats_cache[1] is not None:  # df follows without a request
            t, st = self._stats_cache
            self._stats_cache = (t, dataclasses.replace(st, used=st.used + model.size))
        ino = None
        for i, other in self._local.items():
            if other is lf:
                ino = i
                break
        key = file_key(model.uuid)
        if ino is not None and ino in self._local_mtime:
            self.cache.index.set_mtime(model.uuid, model.version_uuid, self._local_mtime.pop(ino))
        if ino is not None and self.inodes.key(ino) != key:
            self._remove_overlay(ino)
            self.inodes.rekey(ino, key)
        ent = views.entity_of(lf.parent)
        if ent is not None:
            await self.client.link_files(ent[0], ent[1], [model.uuid])
            self._list_add(lf.parent, model)
        self.cache.drop_listing(views.VERSIONS)
        self.cache.drop_listing(("dir", "versions", model.uuid))

    def _list_add(self, folder: Key, model: FileModel) -> None:
        self.cache.values.pop(("links", model.uuid), None)
        lst = self.cache.listings.get(folder)
        if lst is not None:
            lst.place(model)

    def _list_remove(self, folder: Key, uuid: str) -> None:
        self.cache.values.pop(("links", uuid), None)
        lst = self.cache.listings.get(folder)
        if lst is not None:
            lst.remove(file_key(uuid))

    # --- namespace operations -----------------------------------------------------------------------------
    async def unlink(self, parent: int, name: str) -> None:
        pkey = self._dir_key(parent)
        lino = self._overlay.get(pkey, {}).get(name)
        if lino is not None:
            self._discard_local(lino)
            return
        key = await self._resolve(pkey, name)
        if key is None:
            raise NoEntry()
        if views.is_dir_key(key):
            raise IsADirectory()
        ent = views.entity_of(pkey)
        if pkey == views.FILES:
            uuid = str(key[1])
            await self._delete(uuid)
        elif ent is not None:
            uuid = str(key[1])
            await self.client.unlink_files(ent[0], ent[1], [uuid])
            self._list_remove(pkey, uuid)
        elif pkey == views.TRASH:
            raise NotPermitted("the account has no permanent delete; files leave the trash after 30 days")
        elif pkey[1] in ("versions", "search"):
            raise ReadOnly("this folder is read-only")
        else:
            raise NotPermitted()

    async def _delete(self, uuid: str) -> None:
        await self.client.delete_files([uuid])
        m = self.cache.index.models.get(uuid)
        self.cache.drop_listing(views.VERSIONS)
        if m is not None:  # it leaves files/ and shows in trash/ at once
            self.cache.put(dataclasses.replace(m, is_trashed=True, deleted_at=int(time.time())))
        for folder in [k for k in self.cache.listings if views.entity_of(k)]:
            self._list_remove(folder, uuid)  # entity folders hide trashed files (their links are kept)
        ino = self.inodes.find(file_key(uuid))
        if ino is not None and ino in self._local:
            self._local[ino].unlinked = True
            self._drop_local_if_idle(ino)

    def _discard_local(self, ino: int) -> None:
        lf = self._local.get(ino)
        self._local_mtime.pop(ino, None)
        self._remove_overlay(ino)
        self._pending.pop(ino, None)
        if lf is not None:
            lf.unlinked = True
            self._drop_local_if_idle(ino)

    async def link(self, ino: int, new_parent: int, new_name: str) -> Attr:
        pkey = self._dir_key(new_parent)
        key = self._key(ino)
        ent = views.entity_of(pkey)
        if key[0] != "file" or ent is None:
            raise NotPermitted("only a file of files/ can be linked, and only into an entity folder")
        m = await self._model(str(key[1]))
        await self.client.link_files(ent[0], ent[1], [m.uuid])
        self._list_add(pkey, m)
        self.inodes.lookup(ino)
        return await self.getattr(ino)

    async def rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str, flags: int) -> None:
        # a closed rename-temp file waits for exactly this rename: it must not be uploaded under its temp name
        # while the rename awaits the service (a listing to sync, a slow or throttled answer)
        lino = self._overlay.get(self._dir_key(old_parent), {}).get(old_name)
        if lino is None or lino not in self._pending:
            return await self._rename(old_parent, old_name, new_parent, new_name, flags)
        self._renaming.add(lino)
        try:
            await self._rename(old_parent, old_name, new_parent, new_name, flags)
        finally:
            self._renaming.discard(lino)
            if lino in self._pending:  # the rename failed: the temp waits a while again, as after its close
                self._pending[lino] = max(self._pending[lino], trio.current_time() + PENDING_GRACE)

    async def _rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str, flags: int) -> None:
        src_dir, dst_dir = self._dir_key(old_parent), self._dir_key(new_parent)
        if flags & RENAME_EXCHANGE:
            raise NotSupported("exchanging two names is not supported")
        names.check_component(new_name)
        src = await self._resolve(src_dir, old_name)
        if src is None:
            raise NoEntry()
        lf = self._local.get(self.inodes.ino(src)) if src[0] == "new" else None
        if lf is not None and lf.lock.locked():
            # its upload under this name is under way (a temp file whose grace ran out): wait for the outcome,
            # then rename what it made — else that upload would carry the bytes off under the old name
            async with lf.lock:
                pass
            src = await self._resolve(src_dir, old_name)
            if src is None:
                raise NoEntry()
        if views.is_dir_key(src):
            raise NotPermitted("the mount's folders cannot be moved")
        dst = await self._resolve(dst_dir, new_name)
        if dst is not None and views.is_dir_key(dst):
            raise IsADirectory()
        if dst is not None and flags & RENAME_NOREPLACE:
            raise Exists()
        if dst == src and src_dir == dst_dir:
            return
        src_ino = self.inodes.ino(src)
        if src_ino in self._local and src[0] == "new":
            await self._rename_local(src_ino, src_dir, old_name, dst_dir, new_name, dst)
            return
        ent_src, ent_dst = views.entity_of(src_dir), views.entity_of(dst_dir)
        if src[0] == "version":
            if dst_dir != views.FILES:
                raise InvalidName("a version can only be moved onto its own file's name in files/")
            await self._promote(src, dst)
        elif src[0] != "file":
            raise NotPermitted()
        elif src_dir == views.TRASH and dst_dir == views.FILES:
            await self._restore(str(src[1]), new_name, dst)
        elif src_dir == views.FILES and dst_dir == views.FILES:
            await self._rename_file(str(src[1]), new_name, dst)
        elif src_dir == views.FILES and (dst_dir == views.TRASH or self._is_gtrash_files(dst_dir)):
            await self._delete(str(src[1]))  # rm, or a file manager's "Move to Trash"
        elif ent_src is not None and self._is_gtrash_files(dst_dir):
            await self.client.unlink_files(ent_src[0], ent_src[1], [str(src[1])])  # as rm there does
            self._list_remove(src_dir, str(src[1]))
        elif ent_src is not None and ent_src == ent_dst:
            # within one entity folder: the file has one name everywhere, so this renames the file itself
            # (`sed -i` there renames its temp file onto the one it edits)
            uuid = str(src[1])
            self._list_remove(src_dir, uuid)
            try:
                await self._rename_file(uuid, new_name, dst)
            finally:
                m = self.cache.index.models.get(uuid)
                if m is not None and not m.is_trashed:
                    self._list_add(src_dir, m)
        elif ent_dst is not None and (src_dir == views.FILES or ent_src is not None):
            m = await self._model(str(src[1]))
            await self.client.link_files(ent_dst[0], ent_dst[1], [m.uuid])
            self._list_add(dst_dir, m)
            if ent_src is not None and ent_src != ent_dst:
                await self.client.unlink_files(ent_src[0], ent_src[1], [m.uuid])
                self._list_remove(src_dir, m.uuid)
        elif ent_src is not None and dst_dir == views.FILES:
            m = await self._model(str(src[1]))
            await self.client.unlink_files(ent_src[0], ent_src[1], [m.uuid])
            self._list_remove(src_dir, m.uuid)
            await self._rename_file(m.uuid, new_name, dst)
        elif dst_dir[1] in ("versions", "search"):
            raise ReadOnly("this folder is read-only")
        else:
            raise NotPermitted("the account has no such move")
        if (dst is not None and dst != src) or src[0] == "version":
            # the kernel now believes src's inode sits at the new name; here the name still belongs to the
            # target's file (mv over a file, a restore beside a live one) or to the promoted version's file
            same_entity = ent_src is not None and ent_src == ent_dst
            if (
                dst is not None
                and dst[0] == "file"
                and (dst_dir == views.FILES or same_entity)
                and src_dir != views.TRASH
            ):
                # that file now holds the moved bytes: the inode the kernel holds there stands for it at once
                # (the invalidation below is asynchronous and may wait behind a slow request)
                self.inodes.rekey(src_ino, dst)
            self.invalidate_entry(new_parent, new_name)

    async def _rename_local(
        self, ino: int, src_dir: Key, old_name: str, dst_dir: Key, new_name: str, dst: Key | None
    ) -> None:
        """A file not in the account yet (just written, or a rename-temp) takes its final name."""
        if dst_dir != src_dir:
            self._check_creatable(dst_dir)
        lf = self._local[ino]
        before = (lf.name, lf.parent, lf.target_uuid, lf.local_only)
        self._overlay.get(src_dir, {}).pop(old_name, None)
        if dst is not None:
            dst_ino = self.inodes.ino(dst)
            if dst[0] == "new":
                self._discard_local(dst_ino)
            elif dst[0] == "file":
                lf.target_uuid = str(dst[1])  # the new bytes become a new version of the target
        lf.name = names.unescape(new_name)
        lf.parent = dst_dir
        lf.local_only = names.is_local_only(new_name, self.local_patterns) or self._is_gtrash_info(dst_dir)
        self._overlay.setdefault(dst_dir, {})[new_name] = ino
        if lf.handles == 0 and not lf.local_only:
            pending = self._pending.pop(ino, None)
            try:
                await self.uploader.upload(lf)
            except AmoError:
                # the rename failed, so both names stay as they were (the bytes are also kept under failed/):
                # the target keeps its old bytes, the file keeps its old name, and waits as before
                self._overlay.get(dst_dir, {}).pop(new_name, None)
                lf.name, lf.parent, lf.target_uuid, lf.local_only = before
                self._overlay.setdefault(src_dir, {})[old_name] = ino
                if pending is not None:
                    self._pending[ino] = pending
                raise
            self._drop_local_if_idle(ino)

    async def _rename_file(self, uuid: str, new_name: str, dst: Key | None) -> None:
        m = await self._model(uuid)
        full = names.unescape(new_name)
        if dst == file_key(uuid):
            return  # already its name (reached from an entity folder): nothing to rename
        if dst is not None and dst[0] == "file":
            # mv a b over an existing b: b gets a's bytes as a new version (history and links kept), a goes
            await self._copy_as_version(m, str(dst[1]), full)
            await self._delete(uuid)
            return
        if dst is not None and dst[0] == "new":
            self._discard_local(self.inodes.ino(dst))
        base, ext = names.split(full)
        if ext == m.extension or (not m.extension and full == base):
            new = await self.client.rename_file(uuid, base if m.extension else full)
        else:
            # the API's PATCH renames but keeps the extension: a new version carrying the new name changes it
            new = await self._copy_as_version(m, uuid, full)
        self._renamed(m, new)

    def _renamed(self, old: FileModel, new: FileModel) -> None:
        self.cache.put(new)
        for folder in [k for k in self.cache.listings if views.entity_of(k)]:
            lst = self.cache.listings.get(folder)
            if lst is not None and file_key(old.uuid) in lst.by_key:
                lst.place(new)

    async def _copy_as_version(self, src: FileModel, target_uuid: str, full_name: str) -> FileModel:
        spool = self.dirs.new_spool()
        lf = LocalFile(spool, name=full_name, parent=views.FILES, target_uuid=target_uuid, size=src.size, loaded=False)
        try:
            src_ino = self.inodes.ino(file_key(src.uuid))
            await lf.ensure_loaded(lambda fd: self._fetch_into(src_ino, fd))
            lf.touch()
            model = await self.uploader.upload(lf)
        finally:
            lf.close()
        assert model is not None
        return model

    async def _restore(self, uuid: str, new_name: str, dst: Key | None) -> None:
        restored = await self.client.restore_files([uuid])
        m = next((r for r in restored if r.uuid == uuid), None) or await self.client.get_file(uuid)
        self.cache.put(m)
        self.cache.drop_listing(views.VERSIONS)
        for folder in [k for k in self.cache.listings if views.entity_of(k)]:
            self.cache.drop_listing(folder)  # its kept links show it in entity folders again
        shown_name: str | None = None  # the name it must take in the account, when not its own
        if dst is None and new_name != names.shown(m.name, m.extension):
            shown_name = new_name
        elif dst is not None and dst[0] == "file" and dst != file_key(uuid):
            # a name taken by a live file is never overwritten: the restored file takes its collision name, in
            # the account too, so every later listing (a remount, the web interface) shows the same two names
            plain = names.fit(names.shown(m.name, m.extension), m.extension, m.uuid)
            shown_name = names.with_suffix(plain, m.extension, m.uuid)
        if shown_name is not None:
            full = names.unescape(shown_name)
            m = await self.client.rename_file(uuid, names.split(full)[0] if m.extension else full)
            self.cache.put(m)

    async def _promote(self, src: Key, dst: Key | None) -> None:
        v = self.ctx.versions.get(str(src[1]))
        if v is None:
            raise NoEntry()
        if dst is None or dst[0] != "file" or str(dst[1]) != v.file_uuid:
            raise InvalidName("a version can only be moved onto its own file's name in files/")
        old = await self._model(v.file_uuid)
        m = await self.client.set_active_version(v.file_uuid, v.uuid)
        self._renamed(old, m)
        self.cache.drop_listing(("dir", "versions", v.file_uuid))

    # --- extended attributes and the filesystem -----------------------------------------------------------
    async def getxattr(self, ino: int, name: str) -> bytes:
        if not name.startswith("user."):
            # security.*, system.* (ACLs), trusted.*: namespaces this filesystem does not have. ENOTSUP, not
            # ENODATA: `ls -l` asks every file for security.selinux and system.posix_acl_access, and coreutils
            # stops asking for the whole device after one ENOTSUP -- 2 FUSE round trips for a folder, not 2N.
            raise NotSupported(f"no {name.partition('.')[0]}.* attributes here")
        if not name.startswith("user.amo."):
            raise NoAttribute()
        key = self._key(ino)
        if key[0] in FILE_KINDS:
            m = await self._model(str(key[1]))
            if name == "user.amo.uuid":
                return m.uuid.encode()
            if name == "user.amo.version_uuid":
                return m.version_uuid.encode()
            if name == "user.amo.links":
                return await self._links_xattr(m.uuid)
        elif key[0] == "version":
            v = self.ctx.versions.get(str(key[1]))
            if v is not None and name == "user.amo.version_uuid":
                return v.uuid.encode()
            if v is not None and name == "user.amo.file_uuid":
                return v.file_uuid.encode()
        raise NoAttribute()

    async def _links_xattr(self, uuid: str) -> bytes:
        """``leads/123 contacts/45``: one request per TTL (getfattr asks twice: for the size, then the value);
        links made or removed through the mount drop it."""
        key = ("links", uuid)
        value = self.cache.values.get(key)
        if value is None:
            links = await self.client.file_links(uuid)
            value = " ".join(f"{e.entity_type}/{e.id}" for e in links).encode()
            self.cache.values[key] = value
        return bytes(value)

    async def listxattr(self, ino: int) -> list[str]:
        key = self._key(ino)
        if key[0] in FILE_KINDS:
            return list(XATTRS_FILE)
        if key[0] == "version":
            return list(XATTRS_VERSION)
        return []

    async def setxattr(self, ino: int, name: str, value: bytes) -> None:
        self._key(ino)
        raise NotSupported("extended attributes are read-only")

    async def removexattr(self, ino: int, name: str) -> None:
        self._key(ino)
        raise NotSupported("extended attributes are read-only")

    async def _fetch_stats(self) -> None:
        try:
            stats = await self.client.drive_stats()
        except AmoError:
            stats = None
        self._stats_cache = (trio.current_time(), stats)

    async def statfs(self) -> StatFs:
        """The quota, from a cache the background task keeps (fetched at start and every STATS_TTL), so
        ``df`` and ``find`` (which asks statfs of every folder it walks) cost no request of their own."""
        bs = 4096
        if self._stats_cache is None:
            await self._fetch_stats()
        assert self._stats_cache is not None
        stats = self._stats_cache[1]
        if stats is not None and stats.limit > 0:
            total, free = stats.limit, max(stats.limit - stats.used, 0)
        else:
            total = free = 1 << 50  # no quota known: a large free space (GIO hides sizes on a full disk)
        return StatFs(bs, total // bs, free // bs, 1 << 32, 1 << 31)

    # --- status -------------------------------------------------------------------------------------------
    def status_json(self) -> bytes:
        return (json.dumps(self.status(), ensure_ascii=False, indent=2) + "\n").encode()

    def status(self) -> dict[str, Any]:
        st = self.client.stats
        return {
            **self.info,
            "account": self.client.account_url,
            "requests": st.requests,
            "throttled": st.throttled,
            "retries": st.retries,
            "uploads_in_flight": [
                {"name": n, "sent": s, "total": t, "started_at": round(st, 3)}
                for (n, s, t, st) in self.uploader.in_flight.values()
            ],
            "part_size": self.client.max_part_size,
            "uploads_waiting": len(self._pending),
            "uploaded": self.uploader.uploaded,
            "upload_failures": self.uploader.failed,
            "failed_files": [str(p) for p in self.dirs.failed_files()],
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "content_cache_bytes": self.dirs.content_bytes,
            "inodes": len(self.inodes),
            "open_handles": len(self._handles),
        }


__all__ = ["ROOT_INODE", "AmoFS", "Attr", "DirEntry", "Listing", "Opened", "StatFs"]
