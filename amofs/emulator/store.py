"""Store: the emulated account's durable state — SQLite metadata plus content blobs on disk.

Owns, under ``DATA_DIR``:
  ``state.sqlite3``  files, versions, entities, entity↔file links, upload sessions, tokens, OAuth
                     clients/codes/refresh tokens and a few meta values (account uuid, signing secret,
                     main token);
  ``blobs/XX/KEY``   one file per content blob (key = version uuid for uploads, sha256 for seeded
                     content, so seeding 100,000 identical files writes one blob);
  ``spool/ID``       the bytes received so far by upload session ID.

Everything survives a restart (a new Store on the same directory). One connection, guarded by one lock,
WAL journal; every method is a short transaction. Content is never read here: the HTTP layer streams blob
and spool files itself, outside the lock. Rows come out as frozen dataclasses; JSON rendering is
amofs.emulator.render's.

Users are ints, as in the API's ``filter[created_by][]``: -1 client, 0 robot, >0 an internal user id.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import time
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from amofs.emulator.filenames import guess_mime, split_name

__all__ = [
    "ENTITY_KINDS",
    "EntityRow",
    "FileFilter",
    "FileRow",
    "LinkRow",
    "SeedItem",
    "SessionRow",
    "Store",
    "StoreError",
    "TokenInfo",
    "VersionRow",
]

ENTITY_KINDS = ("leads", "contacts", "companies", "customers")
_SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    extension TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    version_uuid TEXT NOT NULL,
    nversions INTEGER NOT NULL DEFAULT 1,
    source_id INTEGER,
    created_at INTEGER NOT NULL,
    created_by INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by INTEGER NOT NULL,
    deleted_at INTEGER,
    deleted_by INTEGER,
    trashed INTEGER NOT NULL DEFAULT 0,
    inserted REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_trashed ON files (trashed, id);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    file_uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    extension TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    blob TEXT NOT NULL,
    source_id INTEGER,
    created_at INTEGER NOT NULL,
    created_by INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_file ON versions (file_uuid, id);
CREATE TABLE IF NOT EXISTS entities (
    kind TEXT NOT NULL, id INTEGER NOT NULL, name TEXT NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, entity_id INTEGER NOT NULL, file_uuid TEXT NOT NULL,
    UNIQUE (kind, entity_id, file_uuid)
);
CREATE INDEX IF NOT EXISTS links_file ON links (file_uuid);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_name TEXT NOT NULL, file_size INTEGER NOT NULL, content_type TEXT, file_uuid TEXT,
    with_preview INTEGER NOT NULL, user_id INTEGER NOT NULL,
    next_part INTEGER NOT NULL DEFAULT 1, received INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL, completed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, scopes TEXT NOT NULL, user_id INTEGER NOT NULL, expires_at REAL
);
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id TEXT PRIMARY KEY, secret TEXT NOT NULL, redirect_uri TEXT NOT NULL, scopes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_grants (
    value TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL, expires_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
"""

# First ids, so that ids look like the real service's rather than 1, 2, 3.
_FIRST_IDS = {"links": 2140000, "sessions": 26136000}

_FILE_COLUMNS = (
    "id, uuid, name, extension, mime_type, size, version_uuid, nversions, source_id, created_at, created_by, "
    "updated_at, updated_by, deleted_at, deleted_by, trashed"
)
_VERSION_COLUMNS = (
    "id, uuid, file_uuid, name, extension, mime_type, size, blob, source_id, created_at, created_by, "
    "updated_at, updated_by"
)
_SESSION_COLUMNS = (
    "id, file_name, file_size, content_type, file_uuid, with_preview, user_id, next_part, received, "
    "expires_at, completed"
)


class StoreError(Exception):
    """A request the state cannot satisfy; ``kind`` says which HTTP-level error it is."""

    def __init__(self, kind: Literal["not_found", "invalid"], message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class FileRow:
    id: int
    uuid: str
    name: str
    extension: str
    mime_type: str
    size: int
    version_uuid: str
    nversions: int
    source_id: int | None
    created_at: int
    created_by: int
    updated_at: int
    updated_by: int
    deleted_at: int | None
    deleted_by: int | None
    trashed: bool


@dataclass(frozen=True)
class VersionRow:
    id: int
    uuid: str
    file_uuid: str
    name: str
    extension: str
    mime_type: str
    size: int
    blob: str
    source_id: int | None
    created_at: int
    created_by: int
    updated_at: int
    updated_by: int


@dataclass(frozen=True)
class SessionRow:
    id: int
    file_name: str
    file_size: int
    content_type: str | None
    file_uuid: str | None
    with_preview: bool
    user_id: int
    next_part: int
    received: int
    expires_at: float
    completed: bool


@dataclass(frozen=True)
class EntityRow:
    kind: str
    id: int
    name: str
    created_at: int


@dataclass(frozen=True)
class LinkRow:
    id: int
    kind: str
    entity_id: int
    file_uuid: str


@dataclass(frozen=True)
class TokenInfo:
    scopes: frozenset[str]
    user_id: int
    expires_at: float | None


@dataclass
class FileFilter:
    """``GET /v1.0/files`` filters, already parsed and validated (None = not given)."""

    deleted: bool = False
    uuids: list[str] | None = None
    name: str | None = None
    extensions: list[str] | None = None
    term: str | None = None
    term_visible_before: float | None = None  # search_delay: only files inserted before this wall time
    source_id: int | None = None
    size_from: int | None = None
    size_to: int | None = None
    date_field: Literal["created_at", "updated_at"] = "created_at"
    date_from: int | None = None
    date_to: int | None = None
    created_by: list[int] | None = None
    updated_by: list[int] | None = None


@dataclass
class SeedItem:
    """One file for ``Store.seed``: stored as if uploaded, without HTTP."""

    name_with_ext: str
    data: bytes
    linked: Sequence[tuple[str, int]] = (("leads", 1),)
    trashed: bool = False
    created_at: int | None = None
    created_by: int | None = None
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))


def _fold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def _file(row: Sequence[Any]) -> FileRow:
    r = list(row)
    r[15] = bool(r[15])
    return FileRow(*r)


def _version(row: Sequence[Any]) -> VersionRow:
    return VersionRow(*row)


def _session(row: Sequence[Any]) -> SessionRow:
    r = list(row)
    r[5] = bool(r[5])
    r[10] = bool(r[10])
    return SessionRow(*r)


class Store:
    """All state of one emulated account; thread-safe."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.blob_dir = data_dir / "blobs"
        self.spool_dir = data_dir / "spool"
        for d in (data_dir, self.blob_dir, self.spool_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._writes = 0  # committed write transactions: what the ordered ids below were taken at
        self._order: dict[int, tuple[int, list[int]]] = {}  # trashed → (writes, ids newest first)
        self._db = sqlite3.connect(
            data_dir / "state.sqlite3", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.create_function("fold", 1, _fold, deterministic=True)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._db.executescript(_SCHEMA)
        with self._tx() as db:
            if db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
                for table, first in _FIRST_IDS.items():
                    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, first))
        self._sweep_spool()

    def _sweep_spool(self) -> None:
        """Remove spool files of sessions that completed or expired (e.g. while the emulator was down)."""
        rows = self._all("SELECT id FROM sessions WHERE completed=0 AND expires_at > ?", (time.time(),))
        live = {str(r[0]) for r in rows}
        for path in self.spool_dir.iterdir():
            if path.name not in live:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._writes += 1

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- meta ------------------------------------------------------------------------------------------------

    def meta(self, key: str, make: str | None = None) -> str | None:
        """The stored value for ``key``; when absent and ``make`` is given, store ``make`` and return it."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            if row is not None:
                return str(row[0])
            if make is not None:
                db.execute("INSERT INTO meta VALUES (?, ?)", (key, make))
            return make

    # -- blobs -----------------------------------------------------------------------------------------------

    def blob_path(self, key: str) -> Path:
        return self.blob_dir / key[:2] / key

    def spool_path(self, session_id: int) -> Path:
        return self.spool_dir / str(session_id)

    def _write_blob(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        path = self.blob_path(key)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f"{key}.{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return key

    def adopt_blob(self, src: Path, key: str) -> None:
        """Move a complete spool file into the blob store (atomic rename within DATA_DIR)."""
        dst = self.blob_path(key)
        dst.parent.mkdir(exist_ok=True)
        os.replace(src, dst)

    # -- tokens and OAuth ------------------------------------------------------------------------------------

    def add_token(self, token: str, scopes: Iterable[str], user_id: int, expires_at: float | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)",
                (token, " ".join(sorted(scopes)), user_id, expires_at),
            )

    def token_info(self, token: str) -> TokenInfo | None:
        row = self._one("SELECT scopes, user_id, expires_at FROM tokens WHERE token=?", (token,))
        if row is None:
            return None
        return TokenInfo(frozenset(row[0].split()), row[1], row[2])

    def revoke_token(self, token: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM tokens WHERE token=?", (token,))

    def add_oauth_client(self, client_id: str, secret: str, redirect_uri: str, scopes: Iterable[str]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO oauth_clients VALUES (?, ?, ?, ?)",
                (client_id, secret, redirect_uri, " ".join(sorted(scopes))),
            )

    def oauth_client(self, client_id: str) -> tuple[str, str, frozenset[str]] | None:
        row = self._one("SELECT secret, redirect_uri, scopes FROM oauth_clients WHERE client_id=?", (client_id,))
        return None if row is None else (row[0], row[1], frozenset(row[2].split()))

    def add_grant(self, value: str, kind: Literal["code", "refresh"], client_id: str, expires_at: float) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO oauth_grants VALUES (?, ?, ?, ?, 0)", (value, kind, client_id, expires_at))

    def consume_grant(
        self, value: str, kind: Literal["code", "refresh"], client_id: str
    ) -> Literal["ok", "unknown", "used", "expired"]:
        """Use an authorization code or refresh token once."""
        with self._tx() as db:
            row = db.execute(
                "SELECT expires_at, used FROM oauth_grants WHERE value=? AND kind=? AND client_id=?",
                (value, kind, client_id),
            ).fetchone()
            if row is None:
                return "unknown"
            if row[1]:
                return "used"
            if row[0] < time.time():
                return "expired"
            db.execute("UPDATE oauth_grants SET used=1 WHERE value=?", (value,))
            return "ok"

    # -- entities and links ----------------------------------------------------------------------------------

    def add_entity(self, kind: str, entity_id: int, name: str, created_at: int | None = None) -> None:
        if kind not in ENTITY_KINDS:
            raise ValueError(f"entity kind must be one of {ENTITY_KINDS}")
        with self._tx() as db:
            db.execute(
                "INSERT INTO entities VALUES (?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET name=excluded.name",
                (kind, entity_id, name, created_at or int(time.time())),
            )

    def entity(self, kind: str, entity_id: int) -> EntityRow | None:
        row = self._one("SELECT kind, id, name, created_at FROM entities WHERE kind=? AND id=?", (kind, entity_id))
        return None if row is None else EntityRow(*row)

    def entity_links(self, kind: str, entity_id: int, limit: int, before_id: int | None) -> list[LinkRow]:
        """Links of live (not trashed) files, highest link id first, ids below ``before_id``."""
        rows = self._all(
            "SELECT l.id, l.kind, l.entity_id, l.file_uuid FROM links l JOIN files f ON f.uuid = l.file_uuid "
            "WHERE l.kind=? AND l.entity_id=? AND f.trashed=0 AND l.id < ? ORDER BY l.id DESC LIMIT ?",
            (kind, entity_id, before_id if before_id is not None else 2**62, limit),
        )
        return [LinkRow(*r) for r in rows]

    def all_links(self, kind: str, entity_id: int) -> list[str]:
        rows = self._all("SELECT file_uuid FROM links WHERE kind=? AND entity_id=? ORDER BY id", (kind, entity_id))
        return [r[0] for r in rows]

    def link(self, kind: str, entity_id: int, file_uuids: Sequence[str]) -> None:
        """Link files to an entity (idempotent: an existing link keeps its id); all uuids must exist."""
        with self._tx() as db:
            self._require_files(db, file_uuids)
            db.executemany(
                "INSERT OR IGNORE INTO links (kind, entity_id, file_uuid) VALUES (?, ?, ?)",
                [(kind, entity_id, u) for u in file_uuids],
            )

    def unlink(self, kind: str, entity_id: int, file_uuids: Sequence[str]) -> None:
        with self._tx() as db:
            self._require_files(db, file_uuids)
            db.executemany(
                "DELETE FROM links WHERE kind=? AND entity_id=? AND file_uuid=?",
                [(kind, entity_id, u) for u in file_uuids],
            )

    def links_of_file(self, file_uuid: str) -> list[tuple[LinkRow, EntityRow]]:
        rows = self._all(
            "SELECT l.id, l.kind, l.entity_id, l.file_uuid, e.kind, e.id, e.name, e.created_at "
            "FROM links l JOIN entities e ON e.kind = l.kind AND e.id = l.entity_id "
            "WHERE l.file_uuid=? ORDER BY l.id",
            (file_uuid,),
        )
        return [(LinkRow(*r[:4]), EntityRow(*r[4:])) for r in rows]

    # -- files -----------------------------------------------------------------------------------------------

    @staticmethod
    def _require_files(db: sqlite3.Connection, uuids: Sequence[str]) -> None:
        for u in uuids:
            if db.execute("SELECT 1 FROM files WHERE uuid=?", (u,)).fetchone() is None:
                raise StoreError("invalid", f"file {u} not found")

    def get_file(self, file_uuid: str) -> FileRow | None:
        row = self._one(f"SELECT {_FILE_COLUMNS} FROM files WHERE uuid=?", (file_uuid,))
        return None if row is None else _file(row)

    def all_files(self, trashed: bool | None = None) -> list[FileRow]:
        where = "" if trashed is None else f"WHERE trashed={int(trashed)}"
        return [_file(r) for r in self._all(f"SELECT {_FILE_COLUMNS} FROM files {where} ORDER BY id")]

    def list_files(self, flt: FileFilter, limit: int, offset: int) -> list[FileRow]:
        """One page of files matching ``flt``, newest (highest internal id) first."""
        where = ["trashed=?"]
        args: list[Any] = [int(flt.deleted)]

        def one_of(column: str, values: Sequence[Any]) -> None:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)

        if flt.uuids is not None:
            one_of("uuid", flt.uuids)
        if flt.name is not None:
            where.append("(name=? OR name || '.' || extension=?)")
            args += [flt.name, flt.name]
        if flt.extensions is not None:
            one_of("lower(extension)", [e.lower() for e in flt.extensions])
        if flt.term is not None:
            where.append(
                "(instr(fold(CASE extension WHEN '' THEN name ELSE name || '.' || extension END), ?) > 0 "
                "OR EXISTS (SELECT 1 FROM links l JOIN entities e ON e.kind = l.kind AND e.id = l.entity_id "
                "WHERE l.file_uuid = files.uuid AND instr(fold(e.name), ?) > 0))"
            )
            args += [flt.term.casefold()] * 2
            if flt.term_visible_before is not None:
                where.append("inserted <= ?")
                args.append(flt.term_visible_before)
        if flt.source_id is not None:
            where.append("source_id=?")
            args.append(flt.source_id)
        if flt.size_from is not None:
            where.append("size >= ?")
            args.append(flt.size_from)
        if flt.size_to is not None:
            where.append("size <= ?")
            args.append(flt.size_to)
        if flt.date_from is not None:
            where.append(f"{flt.date_field} >= ?")
            args.append(flt.date_from)
        if flt.date_to is not None:
            where.append(f"{flt.date_field} <= ?")
            args.append(flt.date_to)
        if flt.created_by is not None:
            one_of("created_by", flt.created_by)
        if flt.updated_by is not None:
            one_of("updated_by", flt.updated_by)
        if flt == FileFilter(deleted=flt.deleted):
            return self._plain_page(int(flt.deleted), limit, offset)
        sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ? OFFSET ?"
        return [_file(r) for r in self._all(sql, [*args, limit, offset])]

    def _plain_page(self, trashed: int, limit: int, offset: int) -> list[FileRow]:
        """A page of the unfiltered list: the same rows as ``LIMIT ? OFFSET ?``, from the ids in order, kept
        until the next write. SQLite steps over every skipped row, which made the last pages of a
        100,000-file account 2.5x slower than the first: the emulator, not the client, set the pace."""
        with self._lock:
            kept = self._order.get(trashed)
            if kept is None or kept[0] != self._writes:
                ids = [
                    r[0] for r in self._db.execute("SELECT id FROM files WHERE trashed=? ORDER BY id DESC", (trashed,))
                ]
                kept = self._order[trashed] = (self._writes, ids)
            page = kept[1][offset : offset + limit]
            if not page:
                return []
            sql = f"SELECT {_FILE_COLUMNS} FROM files WHERE id IN ({','.join('?' * len(page))}) ORDER BY id DESC"
            return [_file(r) for r in self._db.execute(sql, page).fetchall()]

    def seed(self, items: Sequence[SeedItem], user_id: int) -> list[str]:
        """Insert files directly (one transaction); missing linked entities are created."""
        now = int(time.time())
        blobs: dict[bytes, str] = {}
        files: list[tuple[Any, ...]] = []
        versions: list[tuple[Any, ...]] = []
        links: list[tuple[str, int, str]] = []
        for item in items:
            key = blobs.get(item.data)
            if key is None:
                key = blobs[item.data] = self._write_blob(item.data)
            name, ext = split_name(item.name_with_ext)
            mime = guess_mime(ext)
            at = item.created_at if item.created_at is not None else now
            by = item.created_by if item.created_by is not None else user_id
            vuuid = str(uuidlib.uuid4())
            files.append(
                (item.uuid, name, ext, mime, len(item.data), vuuid, at, by, at, by)
                + ((at, by, 1) if item.trashed else (None, None, 0))
                + (time.time(),)
            )
            versions.append((vuuid, item.uuid, name, ext, mime, len(item.data), key, at, by, at, by))
            links += [(kind, eid, item.uuid) for kind, eid in item.linked]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO files (uuid, name, extension, mime_type, size, version_uuid, created_at, "
                "created_by, updated_at, updated_by, deleted_at, deleted_by, trashed, inserted) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                files,
            )
            db.executemany(
                "INSERT INTO versions (uuid, file_uuid, name, extension, mime_type, size, blob, created_at, "
                "created_by, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                versions,
            )
            for kind, eid in sorted({(k, e) for k, e, _ in links}):
                if kind not in ENTITY_KINDS:
                    raise ValueError(f"entity kind must be one of {ENTITY_KINDS}")
                db.execute(
                    "INSERT OR IGNORE INTO entities VALUES (?, ?, ?, ?)",
                    (kind, eid, _entity_name(kind, eid), now),
                )
            db.executemany("INSERT OR IGNORE INTO links (kind, entity_id, file_uuid) VALUES (?, ?, ?)", links)
        return [item.uuid for item in items]

    def _put_version(
        self,
        db: sqlite3.Connection,
        file_uuid: str | None,
        file_name: str,
        blob: str,
        size: int,
        user_id: int,
        content_type: str | None,
        version_uuid: str,
        now: int | None = None,
    ) -> str:
        """Insert a version, as a new file (``file_uuid`` None) or as the new active version of a file."""
        name, ext = split_name(file_name)
        mime = content_type or guess_mime(ext)
        now = int(time.time()) if now is None else now
        if file_uuid is None:
            file_uuid = str(uuidlib.uuid4())
            db.execute(
                "INSERT INTO files (uuid, name, extension, mime_type, size, version_uuid, created_at, "
                "created_by, updated_at, updated_by, inserted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (file_uuid, name, ext, mime, size, version_uuid, now, user_id, now, user_id, time.time()),
            )
        else:
            cur = db.execute(
                "UPDATE files SET name=?, extension=?, mime_type=?, size=?, version_uuid=?, "
                "nversions=nversions+1, updated_at=?, updated_by=? WHERE uuid=?",
                (name, ext, mime, size, version_uuid, now, user_id, file_uuid),
            )
            if cur.rowcount == 0:
                raise StoreError("not_found", f"file {file_uuid} not found")
        db.execute(
            "INSERT INTO versions (uuid, file_uuid, name, extension, mime_type, size, blob, created_at, "
            "created_by, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (version_uuid, file_uuid, name, ext, mime, size, blob, now, user_id, now, user_id),
        )
        return file_uuid

    def add_version(
        self, file_uuid: str, file_name: str, data: bytes, user_id: int, created_at: int | None = None
    ) -> str:
        """Store ``data`` as the new active version of a file (no HTTP); returns the version uuid."""
        vuuid = str(uuidlib.uuid4())
        blob = self._write_blob(data)
        with self._tx() as db:
            self._put_version(db, file_uuid, file_name, blob, len(data), user_id, None, vuuid, created_at)
        return vuuid

    def finish_upload(self, session: SessionRow) -> FileRow:
        """Make a completely received upload visible, atomically: the spool file is renamed into the blob
        store, then one transaction adds the file (or new version) and closes the session."""
        vuuid = str(uuidlib.uuid4())
        self.adopt_blob(self.spool_path(session.id), vuuid)
        with self._tx() as db:
            file_uuid = self._put_version(
                db,
                session.file_uuid,
                session.file_name,
                vuuid,
                session.file_size,
                session.user_id,
                session.content_type,
                vuuid,
            )
            db.execute(
                "UPDATE sessions SET completed=1, next_part=next_part+1, received=file_size WHERE id=?",
                (session.id,),
            )
        row = self.get_file(file_uuid)
        assert row is not None
        return row

    def rename(self, file_uuid: str, name: str, user_id: int) -> FileRow:
        """New name (without extension) for the file and its active version; the extension stays."""
        now = int(time.time())
        with self._tx() as db:
            row = db.execute("SELECT version_uuid FROM files WHERE uuid=?", (file_uuid,)).fetchone()
            if row is None:
                raise StoreError("not_found", f"file {file_uuid} not found")
            db.execute(
                "UPDATE files SET name=?, updated_at=?, updated_by=? WHERE uuid=?",
                (name, now, user_id, file_uuid),
            )
            db.execute(
                "UPDATE versions SET name=?, updated_at=?, updated_by=? WHERE uuid=?",
                (name, now, user_id, row[0]),
            )
        out = self.get_file(file_uuid)
        assert out is not None
        return out

    def activate_version(self, file_uuid: str, version_uuid: str, user_id: int) -> FileRow:
        now = int(time.time())
        with self._tx() as db:
            if db.execute("SELECT 1 FROM files WHERE uuid=?", (file_uuid,)).fetchone() is None:
                raise StoreError("not_found", f"file {file_uuid} not found")
            v = db.execute(
                "SELECT name, extension, mime_type, size FROM versions WHERE uuid=? AND file_uuid=?",
                (version_uuid, file_uuid),
            ).fetchone()
            if v is None:
                raise StoreError("invalid", f"version {version_uuid} is not a version of file {file_uuid}")
            db.execute(
                "UPDATE files SET name=?, extension=?, mime_type=?, size=?, version_uuid=?, updated_at=?, "
                "updated_by=? WHERE uuid=?",
                (*v, version_uuid, now, user_id, file_uuid),
            )
        out = self.get_file(file_uuid)
        assert out is not None
        return out

    def trash(self, file_uuids: Sequence[str], user_id: int) -> None:
        """Move files to the trash (all or none; already trashed ones are left as they are)."""
        now = int(time.time())
        with self._tx() as db:
            self._require_files(db, file_uuids)
            db.executemany(
                "UPDATE files SET trashed=1, deleted_at=?, deleted_by=? WHERE uuid=? AND trashed=0",
                [(now, user_id, u) for u in file_uuids],
            )

    def restore(self, file_uuids: Sequence[str], user_id: int) -> list[FileRow]:
        now = int(time.time())
        with self._tx() as db:
            self._require_files(db, file_uuids)
            db.executemany(
                "UPDATE files SET trashed=0, deleted_at=NULL, deleted_by=NULL, updated_at=?, updated_by=? "
                "WHERE uuid=? AND trashed=1",
                [(now, user_id, u) for u in file_uuids],
            )
        rows = [self.get_file(u) for u in dict.fromkeys(file_uuids)]
        return [r for r in rows if r is not None]

    def versions(self, file_uuid: str) -> list[VersionRow]:
        """Versions of a file, newest first."""
        rows = self._all(f"SELECT {_VERSION_COLUMNS} FROM versions WHERE file_uuid=? ORDER BY id DESC", (file_uuid,))
        return [_version(r) for r in rows]

    def get_version(self, version_uuid: str) -> VersionRow | None:
        row = self._one(f"SELECT {_VERSION_COLUMNS} FROM versions WHERE uuid=?", (version_uuid,))
        return None if row is None else _version(row)

    def used_bytes(self) -> int:
        return int(self._one("SELECT coalesce(sum(size), 0) FROM versions")[0])

    def counts(self) -> dict[str, int]:
        q = {
            "files": "SELECT count(*) FROM files WHERE trashed=0",
            "trashed": "SELECT count(*) FROM files WHERE trashed=1",
            "versions": "SELECT count(*) FROM versions",
            "entities": "SELECT count(*) FROM entities",
            "links": "SELECT count(*) FROM links",
        }
        out = {k: int(self._one(sql)[0]) for k, sql in q.items()}
        out["sessions_open"] = self.sessions_open()
        return out

    # -- upload sessions -------------------------------------------------------------------------------------

    def create_session(
        self,
        file_name: str,
        file_size: int,
        content_type: str | None,
        file_uuid: str | None,
        with_preview: bool,
        user_id: int,
        ttl: float,
    ) -> SessionRow:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO sessions (file_name, file_size, content_type, file_uuid, with_preview, user_id, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    file_name,
                    file_size,
                    content_type,
                    file_uuid,
                    int(with_preview),
                    user_id,
                    time.time() + ttl,
                ),
            )
            session_id = cur.lastrowid
        self.spool_path(int(session_id or 0)).touch()
        out = self.get_session(int(session_id or 0))
        assert out is not None
        return out

    def get_session(self, session_id: int) -> SessionRow | None:
        row = self._one(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id=?", (session_id,))
        return None if row is None else _session(row)

    def advance_session(self, session_id: int, part_num: int, received: int, completed: bool = False) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET next_part=?, received=?, completed=? WHERE id=? AND next_part=?",
                (part_num + 1, received, int(completed), session_id, part_num),
            )

    def sessions_open(self) -> int:
        row = self._one("SELECT count(*) FROM sessions WHERE completed=0 AND expires_at > ?", (time.time(),))
        return int(row[0])


def _entity_name(kind: str, entity_id: int) -> str:
    label = {"leads": "Сделка", "contacts": "Контакт", "companies": "Компания", "customers": "Покупатель"}
    return f"{label.get(kind, kind)} #{entity_id}"


def default_entity_name(kind: str, entity_id: int) -> str:
    """The name given to an entity created implicitly (e.g. "Сделка #1")."""
    return _entity_name(kind, entity_id)
