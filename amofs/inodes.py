"""InodeTable: one stable inode number per node for the life of the mount, and the kernel's lookup counts.

Owns: the map node key ↔ inode and the per-inode lookup count the kernel keeps (``lookup`` adds one,
``forget`` takes some away). A node key is a hashable tuple naming what the inode stands for:
``("dir", "files")``, ``("file", UUID)`` (the same file in files/, trash/, leads/ID/ … is one inode),
``("version", VERSION_UUID)``, ``("new", N)`` for a file created through the mount before the service gave it a
uuid. ``rekey`` moves an inode to a new key (a new file's upload gave it a uuid; the kernel holds it where
another file's name was, after a rename over that file) so open handles and cached names keep working.

Inode numbers are never reused and never change within a mount: a key keeps its number even after the kernel
forgets it (about 200 bytes a node, so 100,000 files cost ~20 MB), which makes ``stat``'s st_ino stable for
``find``, ``rsync`` and hard-link detection. All operations are O(1).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

ROOT_INODE = 1

Key = tuple[Hashable, ...]


@dataclass(slots=True)
class _Slot:
    key: Key
    lookups: int = 0


class InodeTable:
    def __init__(self) -> None:
        self._by_key: dict[Key, int] = {("dir", ""): ROOT_INODE}
        self._slots: dict[int, _Slot] = {ROOT_INODE: _Slot(("dir", ""), lookups=1)}
        self._next = ROOT_INODE + 1

    def __len__(self) -> int:
        return len(self._slots)

    def ino(self, key: Key) -> int:
        """The inode of a node, made on first use."""
        ino = self._by_key.get(key)
        if ino is None:
            ino = self._next
            self._next += 1
            self._by_key[key] = ino
            self._slots[ino] = _Slot(key)
        return ino

    def key(self, ino: int) -> Key | None:
        slot = self._slots.get(ino)
        return slot.key if slot else None

    def find(self, key: Key) -> int | None:
        return self._by_key.get(key)

    def lookup(self, ino: int) -> None:
        slot = self._slots.get(ino)
        if slot is not None:
            slot.lookups += 1

    def forget(self, ino: int, n: int) -> None:
        slot = self._slots.get(ino)
        if slot is None:
            return
        slot.lookups = max(0, slot.lookups - n)

    def lookups(self, ino: int) -> int:
        slot = self._slots.get(ino)
        return slot.lookups if slot else 0

    def rekey(self, ino: int, new_key: Key) -> None:
        """Let ``ino`` stand for ``new_key`` from now on (``ino(new_key)`` answers it). An inode that had that
        key keeps standing for it too: the kernel may still hold it under other names (an entity folder, an
        open file), and it must go on meaning the same file there."""
        slot = self._slots[ino]
        if self._by_key.get(slot.key) == ino:
            del self._by_key[slot.key]
        slot.key = new_key
        self._by_key[new_key] = ino
