"""The file index: changes made elsewhere show up after the TTL through an incremental sync, and a remount
with the persisted index answers ls after that sync alone (request counts at the emulator)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio
from fshelpers import P

from amofs.api.client import AmoClient
from amofs.emulator.store import SeedItem
from amofs.filesystem import AmoFS


async def _mount(emulator: Any, cache: Path, ttl: float = 60, **kw: Any) -> tuple[AmoClient, AmoFS]:
    client = AmoClient(emulator.account_url, token=emulator.token, drive_url=emulator.drive_url, rate=10_000)
    await client.__aenter__()
    fs = AmoFS(client, cache_dir=cache, cache_ttl=ttl, **kw)
    await fs.start()
    return client, fs


async def _unmount(client: AmoClient, fs: AmoFS) -> None:
    await fs.close()
    await client.aclose()


async def test_remount_answers_ls_after_one_incremental_sync(emulator: Any, tmp_path: Path) -> None:
    hour_ago = int(time.time()) - 3600  # older than the sync's skew margin
    emulator.seed_many([SeedItem(f"f{i:04d}.txt", b"x", created_at=hour_ago) for i in range(600)])
    client, fs = await _mount(emulator, tmp_path / "c")
    assert len(await P(fs).ls("files")) == 600
    assert emulator.count(path_prefix="/v1.0/files") == 3 + 1  # ⌈600 / 250⌉, then the trash (views._settled)
    await _unmount(client, fs)

    emulator.reset_log()
    client, fs = await _mount(emulator, tmp_path / "c")
    assert len(await P(fs).ls("files")) == 600
    assert emulator.count() == 2  # live changes since the last sync + the trash
    await _unmount(client, fs)


async def test_changes_made_elsewhere_show_after_the_ttl(emulator: Any, tmp_path: Path) -> None:
    import httpx

    a = emulator.seed_file("a.txt", b"a")
    emulator.seed_file("b.txt", b"b")
    client, fs = await _mount(emulator, tmp_path / "c", ttl=5)
    p = P(fs)
    assert await p.ls("files") == ["a.txt", "b.txt"]
    # elsewhere (the amoCRM web interface): a new file, a rename, a deletion
    emulator.seed_file("new.txt", b"n")
    h = {"Authorization": f"Bearer {emulator.token}"}
    with httpx.Client(timeout=10) as web:
        web.patch(f"{emulator.drive_url}/v1.0/files/{a}", json={"name": "renamed"}, headers=h).raise_for_status()
        b = next(f["uuid"] for f in emulator.files() if f["name"] == "b")
        web.request("DELETE", f"{emulator.drive_url}/v1.0/files", json=[{"uuid": b}], headers=h).raise_for_status()
    assert await p.ls("files") == ["a.txt", "b.txt"]  # within the TTL: the cache answers
    await trio.sleep(5.5)
    emulator.reset_log()
    assert await p.ls("files") == ["new.txt", "renamed.txt"]
    assert emulator.count() == 2
    assert await p.ls("trash") == ["b.txt"]
    await _unmount(client, fs)


async def test_poll_interval_refreshes_in_the_background(emulator: Any, tmp_path: Path) -> None:
    emulator.seed_file("a.txt", b"a")
    client, fs = await _mount(emulator, tmp_path / "c", ttl=3600, poll_interval=1)
    p = P(fs)
    async with trio.open_nursery() as n:
        await n.start(fs.run)
        assert await p.ls("files") == ["a.txt"]
        emulator.seed_file("later.txt", b"l")
        await trio.sleep(2.5)
        emulator.reset_log()
        assert await p.ls("files") == ["a.txt", "later.txt"]
        assert emulator.count() == 0  # the background poll already brought it
        await _unmount(client, fs)


async def test_index_of_another_account_is_not_used(emulator_factory: Any, tmp_path: Path) -> None:
    one = emulator_factory()
    one.seed_file("one.txt", b"1")
    client, fs = await _mount(one, tmp_path / "c")
    assert await P(fs).ls("files") == ["one.txt"]
    await _unmount(client, fs)
    two = emulator_factory()
    two.seed_file("two.txt", b"2")
    client, fs = await _mount(two, tmp_path / "c")
    assert await P(fs).ls("files") == ["two.txt"]
    await _unmount(client, fs)


async def test_the_persisted_index_is_private(emulator: Any, tmp_path: Path) -> None:
    import os
    import stat

    emulator.seed_file("secret plan.pdf", b"x")
    client, fs = await _mount(emulator, tmp_path / "c")
    await P(fs).ls("files")
    await _unmount(client, fs)
    for f in (tmp_path / "c").glob("meta.sqlite*"):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f


async def test_a_listing_is_saved_in_the_background_soon_after(emulator: Any, tmp_path: Path) -> None:
    """The ls that waits for a listing does not also wait for the index to be written (0.14 s of a 10,000-file
    cold ls); the mount's background task writes it SAVE_DELAY later, and a mount killed after that finds it."""
    from amofs.metacache import FileIndex

    emulator.seed_many([SeedItem(f"f{i:04d}.txt", b"x") for i in range(300)])
    client, fs = await _mount(emulator, tmp_path / "c")
    async with trio.open_nursery() as n:
        await n.start(fs.run)
        assert len(await P(fs).ls("files")) == 300
        assert fs.cache.index.save_wanted  # not written yet: the ls did not wait for it
        with trio.fail_after(10):
            while True:  # read while the mount still runs: as a mount killed now would leave it
                saved = FileIndex(60, tmp_path / "c" / "meta.sqlite", fs.cache.index._account)
                await saved.load()
                if len(saved.models) == 300 and saved.files is not None:
                    break
                await trio.sleep(0.05)
        await _unmount(client, fs)
