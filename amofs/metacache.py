"""The metadata cache: what the service said about files and folders, and for how long it is believed.

Owns:
    FileIndex   every file the mount knows (live and trashed) by uuid, with the files/ and trash/ listings
                derived from it and kept in step on every ``put``. It is believed for ``ttl`` seconds after a
                sync; then the next use syncs again — incrementally once files/ was listed whole: the live
                files changed since the last sync (``filter[date][type]=updated_at``, usually one request) plus
                the trash (usually one request; a DELETE need not touch ``updated_at``, so deletions made
                elsewhere are seen as new trash entries). Persisted in SQLite (``meta.sqlite`` in the cache
                dir), so a remount answers ``ls`` after one incremental sync instead of a full listing.
    MetaCache   the index, plus ``cachetools.TTLCache``s (timer ``trio.current_time``, so tests move time with
                a MockClock) of the other folders' listings (entity folders, versions/UUID, search/TERM) and of
                names looked up and not found in folders that have no listing; ``once`` makes concurrent
                fetches of one thing share one request sequence.

Every mutation made through the mount updates the index at once (``put``), so a file just copied in is listed
at once and the next ``ls`` makes no request.

Must not: await between the steps of one update (each ``put`` is synchronous); SQLite runs in a worker
thread, one operation at a time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio
from cachetools import TTLCache

from amofs import names
from amofs.api.models import FileModel

log = logging.getLogger(__name__)

Key = tuple[Hashable, ...]
T = TypeVar("T")

SCHEMA = 2  # the layout of the persisted rows; another value means start empty
SAVE_CHUNK = 2000


def file_key(uuid: str) -> Key:
    return ("file", uuid)


@dataclass
class Listing:
    """One folder's children: shown name → child key, and back."""

    names: dict[str, Key] = field(default_factory=dict)
    by_key: dict[Key, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # folder-specific data (e.g. version models)

    @classmethod
    def of(cls, names: dict[str, Key]) -> Listing:
        return cls(names=names, by_key={k: n for n, k in names.items()})

    @classmethod
    def of_files(cls, models: Iterable[FileModel]) -> Listing:
        return cls.of({n: file_key(u) for n, u in names.assign(models).items()})

    def add(self, name: str, key: Key) -> None:
        old = self.by_key.pop(key, None)
        if old is not None:
            self.names.pop(old, None)
        displaced = self.names.get(name)
        if displaced is not None:
            self.by_key.pop(displaced, None)
        self.names[name] = key
        self.by_key[key] = name

    def remove(self, key: Key) -> None:
        name = self.by_key.pop(key, None)
        if name is not None:
            self.names.pop(name, None)

    def place(self, model: FileModel) -> str:
        """Add (or move) a file under the name the collision rule gives it here; return the name."""
        key = file_key(model.uuid)
        plain = names.fit(names.shown(model.name, model.extension), model.extension, model.uuid)
        if self.by_key.get(key) in (plain, names.with_suffix(plain, model.extension, model.uuid)):
            return self.by_key[key]  # unchanged: keep a suffixed name suffixed
        holder = self.names.get(plain)
        name = plain if holder is None or holder == key else names.with_suffix(plain, model.extension, model.uuid)
        self.add(name, key)
        return name


def _differs(a: FileModel, b: FileModel) -> bool:
    """Whether what the kernel may hold of a file (its name, size, bytes, place) differs between two models."""
    return (a.version_uuid, a.size, a.name, a.extension, a.is_trashed) != (
        b.version_uuid,
        b.size,
        b.name,
        b.extension,
        b.is_trashed,
    )


class FileIndex:
    def __init__(self, ttl: float, db: Path | None = None, account: str = "") -> None:
        self.ttl = ttl
        self.models: dict[str, FileModel] = {}
        self.files: Listing | None = None  # files/ when the live set is known whole
        self.trash: Listing | None = None  # trash/ likewise
        self.synced_wall: int | None = None  # server-clock second the last whole/incremental sync started
        self.drive_url: str | None = None  # the drive host the index was made from (a remount skips discovery)
        self.checked = float("-inf")  # trio time of the last sync
        # files answered one by one (an entity folder's, a search's, a GET): believed for ttl from then
        self._seen: dict[str, float] = {}
        self._db_path = db
        self._account = account
        self._dirty: set[str] = set()
        # mtimes set through the mount (utimens: cp -p, rsync -a), which the account cannot store:
        # uuid → (the version they belong to, mtime in ns); a new version made elsewhere voids one
        self.mtimes: dict[str, tuple[str, int]] = {}
        self._mtimes_dirty: set[str] = set()
        self._db_lock = trio.Lock()
        self._db_reset = False
        # files whose name, size, bytes or place changed since the mount last looked → their name in files/
        # before, so that it can make the kernel forget what it holds of them (AmoFS._forget_changed)
        self.changed: dict[str, str | None] = {}
        # a sync changed the index: trio time of the first change not saved yet; the background task saves it
        # (AmoFS.run). None: nothing to save.
        self.save_wanted_at: float | None = None

    @property
    def save_wanted(self) -> bool:
        return self.save_wanted_at is not None

    def want_save(self) -> None:
        """Ask for a save soon, off the path of whoever is waiting for the sync."""
        if self.save_wanted_at is None:
            self.save_wanted_at = trio.current_time()

    def fresh(self, now: float | None = None) -> bool:
        return (trio.current_time() if now is None else now) - self.checked < self.ttl

    def fresh_model(self, uuid: str, now: float | None = None) -> FileModel | None:
        """The file's model while it is believed: since the last sync, or since it was answered on its own.
        ``now`` (trio's clock) lets a caller asking for thousands of files read the clock once."""
        m = self.models.get(uuid)
        if m is None:
            return None
        if now is None:
            now = trio.current_time()
        if self.fresh(now):
            return m
        seen = self._seen.get(uuid)
        return m if seen is not None and now - seen < self.ttl else None

    def mark_synced(self, wall: int) -> None:
        self.synced_wall = wall
        self.checked = trio.current_time()
        self._seen.clear()  # everything is believed from now on; keep the map small

    # --- updates ------------------------------------------------------------------------------------------
    def put(self, m: FileModel) -> None:
        """Believe ``m``: it joins (or moves between) files/ and trash/ at once."""
        old = self.models.get(m.uuid)
        if old is not None and _differs(old, m):
            self._record(m.uuid)
        self.models[m.uuid] = m
        self._dirty.add(m.uuid)
        self._seen[m.uuid] = trio.current_time()
        key = file_key(m.uuid)
        here, there = (self.trash, self.files) if m.is_trashed else (self.files, self.trash)
        if there is not None:
            there.remove(key)
        if here is not None:
            here.place(m)

    def _record(self, uuid: str) -> None:
        """Note a changed file with the name it had in files/ (see ``changed``). Changes made through the mount
        are noted too: forgetting them costs the kernel one more getattr, and telling them apart would not."""
        if uuid not in self.changed:
            self.changed[uuid] = self.files.by_key.get(file_key(uuid)) if self.files is not None else None

    def set_mtime(self, uuid: str, version_uuid: str, mtime_ns: int) -> None:
        self.mtimes[uuid] = (version_uuid, mtime_ns)
        self._mtimes_dirty.add(uuid)

    def mtime_ns(self, m: FileModel) -> int:
        """The file's mtime: the one set through the mount for this version, else ``updated_at``."""
        kept = self.mtimes.get(m.uuid)
        if kept is not None and kept[0] == m.version_uuid:
            return kept[1]
        return m.updated_at * 1_000_000_000

    def drop(self, uuid: str) -> None:
        """Forget a file the service no longer has."""
        self.models.pop(uuid, None)
        self._dirty.add(uuid)
        for lst in (self.files, self.trash):
            if lst is not None:
                lst.remove(file_key(uuid))

    def set_whole(self, trashed: bool, models: list[FileModel]) -> None:
        """A complete listing of files/ (trashed False) or trash/: replace what was believed about it."""
        seen = {m.uuid for m in models}
        for m in models:
            self.models[m.uuid] = m
            self._dirty.add(m.uuid)
        for uuid, old in list(self.models.items()):
            if old.is_trashed == trashed and uuid not in seen:
                self.drop(uuid)  # gone from that set; a later answer says where it went
        lst = Listing.of_files(models)
        if trashed:
            self.trash = lst
            if self.files is not None:
                for m in models:
                    if file_key(m.uuid) in self.files.by_key:
                        self._record(m.uuid)  # deleted elsewhere
                    self.files.remove(file_key(m.uuid))
        else:
            self.files = lst
            if self.trash is not None:
                for m in models:
                    self.trash.remove(file_key(m.uuid))

    # --- persistence --------------------------------------------------------------------------------------
    async def load(self) -> None:
        """Read the persisted index (nothing if absent, damaged, or of another account)."""
        if self._db_path is None:
            return
        async with self._db_lock:
            got = await trio.to_thread.run_sync(self._load_sync)
        if got is None:
            return
        models, meta, self.mtimes = got
        self.models = {m.uuid: m for m in models}
        if meta.get("files_complete"):
            self.files = Listing.of_files(m for m in models if not m.is_trashed)
        if meta.get("trash_complete"):
            self.trash = Listing.of_files(m for m in models if m.is_trashed)
        wall = meta.get("synced_wall")
        self.synced_wall = int(wall) if isinstance(wall, int) else None
        drive = meta.get("drive_url")
        self.drive_url = drive if isinstance(drive, str) and drive else None
        log.info("metadata cache: %d files from %s", len(models), self._db_path)

    @staticmethod
    def peek(db: Path, account: str) -> dict[str, Any] | None:
        """The persisted index's meta (``files_complete``, ``drive_url`` …) without loading it, when it is of
        this account; None otherwise. Quick: one small table."""
        if not db.exists():
            return None
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
            finally:
                con.close()
        except (sqlite3.Error, ValueError):
            return None
        if meta.get("schema") != SCHEMA or meta.get("account") != account:
            return None
        return meta

    def _connect(self) -> sqlite3.Connection:
        assert self._db_path is not None
        if not self._db_path.exists():  # the index names every file of the account: private, like the tokens
            os.close(os.open(self._db_path, os.O_WRONLY | os.O_CREAT, 0o600))
        con = sqlite3.connect(self._db_path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute("CREATE TABLE IF NOT EXISTS files (uuid TEXT PRIMARY KEY, data TEXT NOT NULL)")
        con.execute(
            "CREATE TABLE IF NOT EXISTS mtimes (uuid TEXT PRIMARY KEY, version_uuid TEXT NOT NULL, mtime_ns INTEGER)"
        )
        return con

    def _load_sync(self) -> tuple[list[FileModel], dict[str, Any], dict[str, tuple[str, int]]] | None:
        assert self._db_path is not None
        if not self._db_path.exists():
            return None
        try:
            con = self._connect()
            try:
                meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
                if meta.get("schema") != SCHEMA or meta.get("account") != self._account:
                    self._db_reset = True
                    return None
                models = [_load(d) for (d,) in con.execute("SELECT data FROM files")]
                mtimes = {u: (v, int(t)) for u, v, t in con.execute("SELECT uuid, version_uuid, mtime_ns FROM mtimes")}
                return models, meta, mtimes
            finally:
                con.close()
        except (sqlite3.Error, ValueError, TypeError) as e:
            log.warning("metadata cache %s unreadable (%s); starting empty", self._db_path, e)
            self._db_reset = True
            return None

    async def save(self) -> None:
        """Write what changed since the last save (in a worker thread, a chunk of rows at a time, so a
        100,000-file account never has all its rows serialised in memory at once)."""
        if self._db_path is None:
            return
        async with self._db_lock:
            self.save_wanted_at = None
            dirty = list(self.models) if self._db_reset else list(self._dirty)
            self._dirty = set()
            # models are immutable: the thread may serialise these references while the loop goes on
            snapshot = [(u, self.models.get(u)) for u in dirty]
            mtimes = [(u, self.mtimes.get(u)) for u in self._mtimes_dirty]
            self._mtimes_dirty = set()
            meta = {
                "schema": SCHEMA,
                "account": self._account,
                "synced_wall": self.synced_wall,
                "files_complete": self.files is not None,
                "trash_complete": self.trash is not None,
                "drive_url": self.drive_url,
            }
            try:
                await trio.to_thread.run_sync(self._save_sync, snapshot, mtimes, meta)
            except sqlite3.Error as e:
                log.warning("could not save the metadata cache to %s: %s", self._db_path, e)

    def _save_sync(
        self,
        snapshot: list[tuple[str, FileModel | None]],
        mtimes: list[tuple[str, tuple[str, int] | None]],
        meta: dict[str, Any],
    ) -> None:
        con = self._connect()
        try:
            with con:
                if self._db_reset:
                    con.execute("DELETE FROM files")
                    self._db_reset = False
                for i in range(0, len(snapshot), SAVE_CHUNK):
                    chunk = snapshot[i : i + SAVE_CHUNK]
                    con.executemany(
                        "INSERT INTO files (uuid, data) VALUES (?, ?) "
                        "ON CONFLICT(uuid) DO UPDATE SET data=excluded.data",
                        [(u, _dump(m)) for u, m in chunk if m is not None],
                    )
                    con.executemany("DELETE FROM files WHERE uuid=?", [(u,) for u, m in chunk if m is None])
                con.executemany(
                    "INSERT INTO mtimes (uuid, version_uuid, mtime_ns) VALUES (?, ?, ?) ON CONFLICT(uuid) "
                    "DO UPDATE SET version_uuid=excluded.version_uuid, mtime_ns=excluded.mtime_ns",
                    [(u, kept[0], kept[1]) for u, kept in mtimes if kept is not None],
                )
                con.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    [(k, json.dumps(v)) for k, v in meta.items()],
                )
        finally:
            con.close()


_FIELDS = [f.name for f in dataclasses.fields(FileModel)]


def _dump(m: FileModel) -> str:
    return json.dumps([getattr(m, f) for f in _FIELDS], ensure_ascii=False)


def _load(data: str) -> FileModel:
    values = json.loads(data)
    if not isinstance(values, list) or len(values) != len(_FIELDS):
        raise ValueError("a stored file of another layout")
    return FileModel(**dict(zip(_FIELDS, values, strict=True)))


class MetaCache:
    def __init__(
        self,
        ttl: float,
        *,
        db: Path | None = None,
        account: str = "",
        max_dirs: int = 100_000,
    ) -> None:
        self.ttl = ttl
        t = max(ttl, 1e-9)  # TTLCache needs a positive ttl; this tiny one makes everything expire at once
        self.index = FileIndex(ttl, db, account)
        self.listings: TTLCache[Key, Listing] = TTLCache(max_dirs, t, timer=trio.current_time)
        self.missing: TTLCache[tuple[Key, str], bool] = TTLCache(max_dirs, t, timer=trio.current_time)
        self.values: TTLCache[Key, Any] = TTLCache(max_dirs, t, timer=trio.current_time)  # e.g. a file's links
        self._flights: dict[Key, trio.Event] = {}
        self.hits = 0
        self.misses = 0

    # --- file models --------------------------------------------------------------------------------------
    def model(self, uuid: str, now: float | None = None) -> FileModel | None:
        """The file's model while it is believed (see FileIndex.fresh_model)."""
        m = self.index.fresh_model(uuid, now)
        if m is None:
            self.misses += 1
        else:
            self.hits += 1
        return m

    def put(self, model: FileModel) -> None:
        self.index.put(model)

    # --- folder listings ----------------------------------------------------------------------------------
    def listing(self, key: Key) -> Listing | None:
        lst = self.listings.get(key)
        if lst is None:
            self.misses += 1
        else:
            self.hits += 1
        return lst

    def drop_listing(self, key: Key) -> None:
        self.listings.pop(key, None)

    @property
    def fetching(self) -> bool:
        """Whether any listing or sync is under way (a lookup may be waiting for it)."""
        return bool(self._flights)

    async def once(self, key: Key, fetch: Callable[[], Awaitable[T]], done: Callable[[], T | None]) -> T:
        """``done()`` if it has an answer, else one ``fetch()`` shared by every concurrent caller."""
        while True:
            got = done()
            if got is not None:
                return got
            ev = self._flights.get(key)
            if ev is None:
                break
            await ev.wait()  # then look again; if the shared fetch failed, this caller tries itself
        ev = trio.Event()
        self._flights[key] = ev
        try:
            return await fetch()
        finally:
            del self._flights[key]
            ev.set()

    async def single_flight(self, key: Key, fetch: Callable[[], Awaitable[Listing]]) -> Listing:
        """The folder's cached listing, or one fetch shared by every concurrent caller."""

        async def fetch_and_keep() -> Listing:
            lst = await fetch()
            self.listings[key] = lst
            return lst

        return await self.once(key, fetch_and_keep, lambda: self.listing(key))

    # --- negative entries ---------------------------------------------------------------------------------
    def is_missing(self, parent: Key, name: str) -> bool:
        return (parent, name) in self.missing

    def set_missing(self, parent: Key, name: str) -> None:
        self.missing[(parent, name)] = True
