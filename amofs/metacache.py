"""The metadata cache: what the service said about files and folders, kept for ``ttl`` seconds.

Owns two ``cachetools.TTLCache``s with ``timer=trio.current_time`` (so tests move time with a MockClock):
    models    file uuid → FileModel (live or trashed), filled by every listing and every answer
    listings  folder key → Listing (shown name ↔ child key, plus whatever the folder keeps, e.g. versions)
and a negative cache of names looked up and not found (so a shell's repeated probes cost nothing).

Every mutation made through the mount updates these at once (``put``/``forget_file``/``Listing.add`` …)
instead of dropping them, so a file just copied in is listed at once and the next ``ls`` makes no request.
``single_flight`` makes concurrent fetches of one folder share one request sequence.

Must not: await while holding no lock over a partly updated Listing (each update is synchronous).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import trio
from cachetools import TTLCache

from amofs.api.models import FileModel

Key = tuple[Hashable, ...]


@dataclass
class Listing:
    """One folder's children: shown name → child key, and back."""

    names: dict[str, Key] = field(default_factory=dict)
    by_key: dict[Key, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # folder-specific data (e.g. version models)

    @classmethod
    def of(cls, names: dict[str, Key]) -> Listing:
        return cls(names=names, by_key={k: n for n, k in names.items()})

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


class MetaCache:
    def __init__(self, ttl: float, *, max_files: int = 1_000_000, max_dirs: int = 100_000) -> None:
        self.ttl = ttl
        # TTLCache refuses ttl 0 at lookups in a useful way (everything expires at once); keep it tiny instead
        t = max(ttl, 1e-9)
        self.models: TTLCache[str, FileModel] = TTLCache(max_files, t, timer=trio.current_time)
        self.listings: TTLCache[Key, Listing] = TTLCache(max_dirs, t, timer=trio.current_time)
        self.missing: TTLCache[tuple[Key, str], bool] = TTLCache(max_dirs, t, timer=trio.current_time)
        self._flights: dict[Key, trio.Event] = {}
        self.hits = 0
        self.misses = 0

    # --- file models --------------------------------------------------------------------------------------
    def model(self, uuid: str) -> FileModel | None:
        m = self.models.get(uuid)
        if m is None:
            self.misses += 1
        else:
            self.hits += 1
        return m

    def put(self, model: FileModel) -> None:
        self.models[model.uuid] = model

    def forget_file(self, uuid: str) -> None:
        self.models.pop(uuid, None)

    # --- folder listings ----------------------------------------------------------------------------------
    def listing(self, key: Key) -> Listing | None:
        lst = self.listings.get(key)
        if lst is None:
            self.misses += 1
        else:
            self.hits += 1
        return lst

    def set_listing(self, key: Key, listing: Listing) -> None:
        self.listings[key] = listing

    def drop_listing(self, key: Key) -> None:
        self.listings.pop(key, None)

    async def single_flight(self, key: Key, fetch: Callable[[], Awaitable[Listing]]) -> Listing:
        """The folder's cached listing, or one fetch shared by every concurrent caller."""
        while True:
            lst = self.listing(key)
            if lst is not None:
                return lst
            ev = self._flights.get(key)
            if ev is None:
                break
            await ev.wait()
            lst = self.listings.get(key)
            if lst is not None:
                return lst
            # the shared fetch failed; try ourselves
        ev = trio.Event()
        self._flights[key] = ev
        try:
            lst = await fetch()
            self.set_listing(key, lst)
            return lst
        finally:
            del self._flights[key]
            ev.set()

    # --- negative entries ---------------------------------------------------------------------------------
    def is_missing(self, parent: Key, name: str) -> bool:
        return (parent, name) in self.missing

    def set_missing(self, parent: Key, name: str) -> None:
        self.missing[(parent, name)] = True

    def clear_missing(self, parent: Key, name: str) -> None:
        self.missing.pop((parent, name), None)

    def clear(self) -> None:
        self.models.clear()
        self.listings.clear()
        self.missing.clear()
