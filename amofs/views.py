"""The tree as folder views: each folder of the mount knows how to list itself and look a name up.

    /                      Root          static: files trash versions leads contacts companies customers search
    files/                 FilesDir      every live file            GET /v1.0/files (all pages)
    trash/                 TrashDir      trashed files              GET /v1.0/files?filter[deleted]
    versions/              VersionsRoot  files with several versions (from files/'s listing, no request);
                                         any file uuid can be looked up (GET /v1.0/files/UUID)
    versions/UUID/         VersionsDir   vNNN-NAME.EXT oldest first, and current-NAME.EXT
                                                                    GET /v1.0/files/UUID/versions
    leads/ … customers/    EntityRoot    the entities this mount has visited; any id can be looked up
    leads/ID/              EntityDir     files linked to the entity GET /api/v4/leads/ID/files (+ models)
    search/                SearchRoot    the terms searched in this mount; any term can be looked up
    search/TERM/           SearchDir     GET /v1.0/files?filter[term]=TERM

Owns the listing fetchers and the folder keys; every listing goes through ``MetaCache.single_flight`` so it
is cached for the TTL and shared by concurrent callers. Which operations each folder allows, and what they
do to the account, is the facade's (filesystem.py) rename/unlink/create table.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

import trio

from amofs import names
from amofs.api.client import AmoClient, FileFilter
from amofs.api.models import ENTITY_KINDS, FileModel, VersionModel
from amofs.errors import NotFound
from amofs.metacache import Listing, MetaCache

Key = tuple[Hashable, ...]

ROOT: Key = ("dir", "")
FILES: Key = ("dir", "files")
TRASH: Key = ("dir", "trash")
VERSIONS: Key = ("dir", "versions")
SEARCH: Key = ("dir", "search")
ENTITY_ROOTS: dict[str, Key] = {k: ("dir", k) for k in ENTITY_KINDS}
ROOT_NAMES: dict[str, Key] = {
    "files": FILES,
    "trash": TRASH,
    "versions": VERSIONS,
    **ENTITY_ROOTS,
    "search": SEARCH,
}

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
UUID_BATCH = 50  # uuids per filter[uuid] request when an entity folder needs models
SYNC_SKEW = 120  # seconds of overlap between incremental syncs, for clock skew and same-second updates


def version_key(version_uuid: str) -> Key:
    return ("version", version_uuid)


def is_dir_key(key: Key) -> bool:
    return key[0] == "dir"


def entity_of(key: Key) -> tuple[str, int] | None:
    """(kind, id) when the key is an entity folder."""
    if len(key) == 3 and key[0] == "dir" and key[1] in ENTITY_KINDS:
        return str(key[1]), int(key[2])  # type: ignore[call-overload]
    return None


@dataclass
class Ctx:
    """What the views need: the client, the cache, and what this mount has visited."""

    client: AmoClient
    cache: MetaCache
    versions: dict[str, VersionModel] = field(default_factory=dict)
    entities: dict[str, set[int]] = field(default_factory=lambda: {k: set() for k in ENTITY_KINDS})
    searches: set[str] = field(default_factory=set)


def files_listing(ctx: Ctx, models: list[FileModel]) -> Listing:
    for m in models:
        ctx.cache.put(m)
    return Listing.of_files(models)


async def listing(ctx: Ctx, key: Key) -> Listing:
    """The listing of a folder (cached, single flight)."""
    if key in (FILES, TRASH):
        return await _index_listing(ctx, key == TRASH)
    return await ctx.cache.single_flight(key, lambda: _fetch(ctx, key))


async def _index_listing(ctx: Ctx, trashed: bool) -> Listing:
    idx = ctx.cache.index

    def ready() -> Listing | None:
        return (idx.trash if trashed else idx.files) if idx.fresh() else None

    async def fetch() -> Listing:
        await sync(ctx, trashed)
        lst = idx.trash if trashed else idx.files
        assert lst is not None
        return lst

    return await ctx.cache.once(("sync", trashed), fetch, ready)


async def refresh(ctx: Ctx, *, force: bool = False) -> None:
    """Bring the file index up to date (an incremental sync when files/ is known whole): when it is no longer
    fresh, or now with ``force`` (the background poll)."""
    idx = ctx.cache.index
    if force:
        await sync(ctx, False)
        return
    await ctx.cache.once(("sync", False), lambda: sync(ctx, False), lambda: True if idx.fresh() else None)


async def sync(ctx: Ctx, trashed: bool) -> bool:
    """Make the index believable again: incrementally when files/ is known whole, else by listing the folder
    asked for in full (⌈N / page⌉ requests). Incremental: the live files updated since the last sync (less a
    margin for clock skew), and the whole trash — a DELETE need not change ``updated_at``, so deletions made
    elsewhere show as trash entries. The index is saved soon after, off the path of the ``ls`` that waits
    (AmoFS.run; AmoFS.close saves whatever is left)."""
    idx = ctx.cache.index
    c = ctx.client
    started = int(time.time())
    if idx.files is not None and idx.synced_wall is not None:
        since = idx.synced_wall - SYNC_SKEW
        known = {u for u, m in idx.models.items() if m.is_trashed}
        changed, trash = await _settled(c, FileFilter(date_type="updated_at", date_from=since), started, known)
        for m in changed:
            idx.put(m)
        idx.set_whole(True, trash if trash is not None else await c.list_files(FileFilter(deleted=True)))
        idx.mark_synced(started)
    elif trashed:
        idx.set_whole(True, await c.list_files(FileFilter(deleted=True)))
        if idx.files is None:
            idx.checked = trio.current_time()
        else:
            idx.mark_synced(started)
    else:
        files, trash = await _settled(c, None, started, None)
        idx.set_whole(False, files)
        if trash is not None:
            idx.set_whole(True, trash)
        idx.mark_synced(started)
    idx.want_save()
    return True


SETTLE_PASSES = 3


async def _pages(c: AmoClient, flt: FileFilter | None) -> tuple[list[FileModel], int]:
    out: list[FileModel] = []
    n = 0
    async for page in c.iter_files(flt):
        out.extend(page)
        n += 1
    return out, n


async def _settled(
    c: AmoClient, flt: FileFilter | None, started: int, known_trash: set[str] | None
) -> tuple[list[FileModel], list[FileModel] | None]:
    """The live files matching ``flt`` listed whole, and the trash when it had to be read (else None).

    The service pages by offset through a list ordered newest first: a file deleted while we page shifts the
    later pages back by one, and the file that moves onto a page already read is missed — for good, since an
    unchanged file never shows in an incremental sync. A single page cannot shift; over several, only a
    deletion can, and every deletion lands in the trash. So after a listing of several pages the trash is read
    (an incremental sync reads it anyway): a file trashed since the listing began (not in ``known_trash``, and
    ``deleted_at`` within SYNC_SKEW of ``started``, as clocks differ) means the list is read again, at most
    ``SETTLE_PASSES`` times, each pass checked against the trash read before it."""
    files, pages = await _pages(c, flt)
    if pages < 2:
        return files, None
    trash = await c.list_files(FileFilter(deleted=True))
    uuids = {m.uuid for m in trash}
    new = {
        m.uuid
        for m in trash
        if (known_trash is None or m.uuid not in known_trash) and (m.deleted_at or started) >= started - SYNC_SKEW
    }
    for _ in range(1, SETTLE_PASSES):
        if not new:
            return files, trash
        log.warning("%d file(s) were deleted while the file list was read; reading it again", len(new))
        files, _ = await _pages(c, flt)
        trash = await c.list_files(FileFilter(deleted=True))
        new = {m.uuid for m in trash} - uuids
        uuids |= new
    if new:
        log.warning("the file list kept changing while it was read; a file may show only after a later listing")
    return files, trash


async def _fetch(ctx: Ctx, key: Key) -> Listing:
    c = ctx.client
    if key == ROOT:
        return Listing.of(dict(ROOT_NAMES))
    if key == VERSIONS:
        files = await listing(ctx, FILES)
        out: dict[str, Key] = {}
        for k in files.names.values():
            m = ctx.cache.index.models.get(str(k[1]))
            if m is not None and m.has_multiple_versions:
                out[m.uuid] = ("dir", "versions", m.uuid)
        return Listing.of(out)
    if key == SEARCH:
        return Listing.of({t: ("dir", "search", t) for t in sorted(ctx.searches)})
    if key in ENTITY_ROOTS.values():
        kind = str(key[1])
        return Listing.of({str(i): ("dir", kind, i) for i in sorted(ctx.entities[kind])})
    if len(key) == 3 and key[1] == "versions":
        return await _fetch_versions(ctx, str(key[2]))
    if len(key) == 3 and key[1] == "search":
        # search results are nodes of their own, so that a write through search/ can be refused
        found = files_listing(ctx, await c.list_files(FileFilter(term=names.unescape(str(key[2])))))
        return Listing.of({n: ("sfile", k[1]) for n, k in found.names.items()})
    ent = entity_of(key)
    if ent is not None:
        return await _fetch_entity(ctx, *ent)
    raise NotFound(f"no such folder {key!r}")


async def _fetch_versions(ctx: Ctx, file_uuid: str) -> Listing:
    # oldest first; the service lists newest first, so its order breaks ties within one second
    versions = sorted(reversed(await ctx.client.versions(file_uuid)), key=lambda v: v.created_at)
    width = max(3, len(str(len(versions))))
    lst = Listing()
    for i, v in enumerate(versions, 1):
        ctx.versions[v.uuid] = v
        shown = names.escape(names.join(v.name, v.extension))
        lst.add(names.fit(f"v{i:0{width}d}-{shown}", v.extension, v.uuid), version_key(v.uuid))
    for v in versions:
        if v.is_main:
            # a second name for the active version: same node, so it is the same inode
            shown = names.escape(names.join(v.name, v.extension))
            lst.names[names.fit(f"current-{shown}", v.extension, v.uuid)] = version_key(v.uuid)
    lst.extra["file_uuid"] = file_uuid
    return lst


async def _fetch_entity(ctx: Ctx, kind: str, entity_id: int) -> Listing:
    links = await ctx.client.entity_files(kind, entity_id)
    uuids = [link.file_uuid for link in links]
    models: list[FileModel] = []
    missing: list[str] = []
    for u in uuids:
        m = ctx.cache.index.models.get(u)
        if m is None:
            missing.append(u)
        elif not m.is_trashed:
            models.append(m)
    for i in range(0, len(missing), UUID_BATCH):
        got = await ctx.client.list_files(FileFilter(uuids=missing[i : i + UUID_BATCH]))
        for m in got:
            ctx.cache.put(m)
        models.extend(got)
    ctx.entities[kind].add(entity_id)
    lst = Listing.of_files(models)
    lst.extra["links"] = set(uuids)
    return lst


async def lookup_dynamic(ctx: Ctx, parent: Key, name: str) -> Key | None:
    """Names that need no listing to exist: versions/UUID, leads/ID, search/TERM."""
    if parent == VERSIONS:
        if not _UUID.match(name):
            return None
        key: Key = ("dir", "versions", name.lower())
        if ctx.cache.listing(key) is None:
            try:
                await listing(ctx, key)
            except NotFound:
                return None
        return key
    if parent in ENTITY_ROOTS.values():
        if not name.isdigit() or len(name) > 18 or (len(name) > 1 and name[0] == "0"):
            return None
        kind = str(parent[1])
        key = ("dir", kind, int(name))
        known = int(name) in ctx.entities[kind]
        try:
            await listing(ctx, key)
        except NotFound:
            return None
        if not known:
            ctx.cache.drop_listing(parent)  # `ls leads/` shows the entities visited, this one now too
        return key
    if parent == SEARCH:
        ctx.searches.add(name)
        ctx.cache.drop_listing(SEARCH)
        return ("dir", "search", name)
    return None
