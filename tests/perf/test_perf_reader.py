"""RemoteReader's streaming behaviour against the emulator: one GET per pass, the window for out-of-order
reads, Range only when a read leaves it, the tee into the content cache, and resuming a dropped stream.
Request counts are read from the emulator's log (behaviour, not timing)."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from amofs import reader as reader_mod
from amofs.api.client import AmoClient
from amofs.localfiles import CacheDir
from amofs.reader import CHUNK, WINDOW, RemoteReader

MiB = 1 << 20
SIZE = 12 * MiB


@pytest.fixture(scope="module")
def data() -> bytes:
    return random.Random(5).randbytes(SIZE)


@pytest.fixture
async def client(emulator: Any) -> AsyncIterator[AmoClient]:
    async with AmoClient(emulator.account_url, token=emulator.token, drive_url=emulator.drive_url, rate=0) as c:
        yield c


@pytest.fixture
def cache(tmp_path: Path) -> CacheDir:
    c = CacheDir(tmp_path / "cache", 1 << 30)
    c.prepare()
    return c


async def open_reader(emulator: Any, client: AmoClient, cache: CacheDir, data: bytes) -> RemoteReader:
    uuid = emulator.seed_file("big.bin", data)
    f = await client.get_file(uuid)
    link = f.download_url
    assert link is not None

    async def url() -> str:
        return link

    emulator.reset_log()
    return RemoteReader(client, cache, url=url, size=len(data), version_uuid=f.version_uuid)


def downloads(emulator: Any) -> list[str]:
    """The download GETs the emulator answered (the drive host's 302s, not the storage hops)."""
    return [r.path for r in emulator.log if r.host == "drive" and r.path.startswith("/download/")]


def ranged(emulator: Any) -> int:
    return sum(1 for r in emulator.log if r.host == "storage" and r.status == 206)


async def test_out_of_order_reads_within_the_window_do_not_reopen(
    emulator: Any, client: AmoClient, cache: CacheDir, data: bytes
) -> None:
    r = await open_reader(emulator, client, cache, data)
    # the kernel's read-ahead: a read runs ahead, then the one just behind it arrives
    order = [0, 2 * MiB, 1 * MiB, 4 * MiB, 3 * MiB, 3 * MiB + 4096, 5 * MiB, 6 * MiB]
    for off in order:
        assert bytes(await r.read(off, MiB)) == data[off : off + MiB]
    await r.close()
    assert r.opens == 1
    assert len(downloads(emulator)) == 1 and ranged(emulator) == 0
    assert r.window_hits >= 3


async def test_concurrent_reads_share_one_stream(
    emulator: Any, client: AmoClient, cache: CacheDir, data: bytes
) -> None:
    r = await open_reader(emulator, client, cache, data)
    got: dict[int, bytes] = {}

    async def read(off: int) -> None:
        got[off] = bytes(await r.read(off, 256 * 1024))

    offsets = list(range(0, 12 * MiB, 256 * 1024))
    rng = random.Random(1)
    for batch in range(0, len(offsets), 16):  # 4 MiB in flight at a time, in any order (trio may reverse it)
        part = offsets[batch : batch + 16]
        rng.shuffle(part)
        async with trio.open_nursery() as n:
            for off in part:
                n.start_soon(read, off)
    await r.close()
    assert all(got[o] == data[o : o + 256 * 1024] for o in offsets)
    assert r.opens == 1 and len(downloads(emulator)) == 1


async def test_a_read_behind_the_window_reopens_with_range(
    emulator: Any, client: AmoClient, cache: CacheDir, data: bytes
) -> None:
    r = await open_reader(emulator, client, cache, data)
    far = WINDOW + 3 * CHUNK
    for off in range(0, far + MiB, MiB):
        await r.read(off, MiB)
    assert r.opens == 1
    assert bytes(await r.read(4096, 8192)) == data[4096 : 4096 + 8192]  # long gone from the window
    assert r.opens == 2 and ranged(emulator) == 1
    await r.close()


async def test_a_far_jump_ahead_reopens_a_short_one_reads_through(
    emulator: Any, client: AmoClient, cache: CacheDir, data: bytes
) -> None:
    r = await open_reader(emulator, client, cache, data)
    assert bytes(await r.read(0, 4096)) == data[:4096]
    assert bytes(await r.read(reader_mod.SKIP_MAX // 2, 4096)) == data[reader_mod.SKIP_MAX // 2 :][:4096]
    assert r.opens == 1
    off = SIZE - 8192
    assert bytes(await r.read(off, 8192)) == data[off:]
    assert r.opens == 2
    await r.close()


async def test_a_whole_pass_lands_in_the_content_cache_and_is_read_from_it(
    emulator: Any, client: AmoClient, cache: CacheDir, data: bytes
) -> None:
    r = await open_reader(emulator, client, cache, data)
    out = bytearray()
    while len(out) < SIZE:
        out += await r.read(len(out), 128 * 1024)
    await r.close()
    assert out == data
    version = r._version
    path = cache.cached(version, SIZE)
    assert path is not None and path.read_bytes() == data
    emulator.reset_log()

    async def no_url() -> str:
        raise AssertionError("a cached content needs no link")

    again = RemoteReader(client, cache, url=no_url, size=SIZE, version_uuid=version)
    assert again.from_cache
    assert bytes(await again.read(5 * MiB, MiB)) == data[5 * MiB : 6 * MiB]
    assert bytes(await again.read(SIZE - 10, 100)) == data[-10:]
    await again.close()
    assert emulator.log == []


async def test_a_dropped_stream_resumes_where_it_stopped_and_still_fills_the_cache(
    emulator: Any, client: AmoClient, cache: CacheDir, data: bytes
) -> None:
    r = await open_reader(emulator, client, cache, data)
    emulator.options.drop_download_after = 5 * MiB + 12345  # mid-buffer, in the direct-read phase
    out = bytearray()
    while len(out) < SIZE:
        out += await r.read(len(out), MiB)
    await r.close()
    assert out == data
    assert r.opens == 2 and ranged(emulator) == 1
    assert cache.cached(r._version, SIZE) is not None  # resumed contiguously: the tee went on


async def test_reads_past_the_end_and_empty_files(emulator: Any, client: AmoClient, cache: CacheDir) -> None:
    r = await open_reader(emulator, client, cache, b"")
    assert await r.read(0, 4096) == b""
    await r.close()
    small = os.urandom(1000)
    r = await open_reader(emulator, client, cache, small)
    assert bytes(await r.read(990, 4096)) == small[990:]
    assert await r.read(1000, 10) == b""
    assert bytes(await r.read(0, 4096)) == small
    await r.close()
    assert r.opens == 1


async def test_buffers_are_reused_only_when_no_view_of_them_is_left(
    emulator: Any, client: AmoClient, cache: CacheDir, data: bytes
) -> None:
    r = await open_reader(emulator, client, cache, data)
    held = await r.read(0, MiB)  # a slice still referenced (as pyfuse3 holds one while replying)
    first = bytes(held)
    for off in range(MiB, SIZE, MiB):  # the first buffer leaves the window and waits in the pool
        assert bytes(await r.read(off, MiB)) == data[off : off + MiB]
    assert bytes(held) == first == data[:MiB]  # never overwritten while viewed
    await r.close()


async def test_without_range_support_reads_skip_forward_and_still_fill_the_cache(
    emulator_factory: Any, tmp_path: Path, data: bytes
) -> None:
    emu = emulator_factory(range_support=False)
    cache = CacheDir(tmp_path / "c2", 1 << 30)
    cache.prepare()
    async with AmoClient(emu.account_url, token=emu.token, drive_url=emu.drive_url, rate=0) as client:
        r = await open_reader(emu, client, cache, data)
        off = SIZE - 3 * MiB  # far ahead: the server answers 200 from byte 0, the reader reads through
        assert bytes(await r.read(off, MiB)) == data[off : off + MiB]
        assert bytes(await r.read(off - MiB, 4096)) == data[off - MiB :][:4096]  # behind, in the window
        pos = off + MiB
        while pos < SIZE:
            pos += len(await r.read(pos, MiB))
        await r.close()
        assert r.opens == 1 and ranged(emu) == 0
        assert cache.cached(r._version, SIZE) is not None


async def test_a_content_larger_than_the_cache_is_not_teed(emulator: Any, client: AmoClient, tmp_path: Path) -> None:
    small = CacheDir(tmp_path / "small", 4 * MiB)
    small.prepare()
    data = os.urandom(5 * MiB)
    r = await open_reader(emulator, client, small, data)
    out = bytearray()
    while len(out) < len(data):
        out += await r.read(len(out), MiB)
    assert r._tee is None  # no disk writes for bytes the cache could not keep
    await r.close()
    assert out == data and list(small.content.iterdir()) == []
