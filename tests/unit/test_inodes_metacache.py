"""The inode table and the TTL metadata cache (time moved with trio's MockClock, no sleeps)."""

from __future__ import annotations

import pytest
import trio

from amofs.inodes import ROOT_INODE, InodeTable
from amofs.metacache import Listing, MetaCache


def test_inodes_are_stable_and_never_reused() -> None:
    t = InodeTable()
    a = t.ino(("file", "a"))
    assert t.ino(("file", "a")) == a
    t.lookup(a)
    t.forget(a, 1)
    assert t.ino(("file", "a")) == a  # forgotten by the kernel, the number stays
    b = t.ino(("file", "b"))
    assert len({ROOT_INODE, a, b}) == 3


def test_rekey_moves_an_inode_to_its_uuid() -> None:
    t = InodeTable()
    n = t.ino(("new", 1))
    t.rekey(n, ("file", "u"))
    assert t.find(("file", "u")) == n
    assert t.find(("new", 1)) is None
    assert t.key(n) == ("file", "u")


def test_rekey_over_an_existing_key_keeps_the_old_inode_standing_for_it() -> None:
    t = InodeTable()
    old = t.ino(("file", "u"))
    new = t.ino(("new", 7))
    t.rekey(new, ("file", "u"))
    assert t.find(("file", "u")) == new
    assert t.key(old) == ("file", "u")  # the kernel may still hold it elsewhere (an entity folder, a handle)


async def test_listing_expires_after_ttl(autojump_clock: trio.testing.MockClock) -> None:
    c = MetaCache(ttl=10)
    c.listings[("dir", "files")] = Listing.of({"a": ("file", "a")})
    await trio.sleep(9)
    assert c.listing(("dir", "files")) is not None
    await trio.sleep(2)
    assert c.listing(("dir", "files")) is None


async def test_single_flight_shares_one_fetch(autojump_clock: trio.testing.MockClock) -> None:
    c = MetaCache(ttl=60)
    calls = 0

    async def fetch() -> Listing:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        return Listing.of({"x": ("file", "x")})

    results: list[Listing] = []

    async def ask() -> None:
        results.append(await c.single_flight(("dir", "files"), fetch))

    async with trio.open_nursery() as n:
        for _ in range(5):
            n.start_soon(ask)
    assert calls == 1
    assert len(results) == 5 and all(r is results[0] for r in results)


async def test_single_flight_failure_lets_the_next_caller_try(autojump_clock: trio.testing.MockClock) -> None:
    c = MetaCache(ttl=60)

    async def boom() -> Listing:
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        await c.single_flight(("dir", "x"), boom)
    got = await c.single_flight(("dir", "x"), lambda: _const(Listing()))
    assert got.names == {}


async def _const(v: Listing) -> Listing:
    return v


def test_listing_add_and_remove_keep_both_maps() -> None:
    lst = Listing.of({"a": ("file", "1")})
    lst.add("b", ("file", "1"))  # renamed
    assert lst.names == {"b": ("file", "1")}
    lst.add("b", ("file", "2"))  # displaced
    assert lst.by_key == {("file", "2"): "b"}
    lst.remove(("file", "2"))
    assert lst.names == {} and lst.by_key == {}
