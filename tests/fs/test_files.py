"""files/: listing, stat, read, write, overwrite, rename, unlink — outcomes checked in the emulator's storage."""

from __future__ import annotations

import errno
import json
import os
from typing import Any

import pytest
from fshelpers import P, by_name

from amofs import views
from amofs.errors import AmoError, Exists, FileTooBig, NoEntry, NotPermitted, errno_of
from amofs.filesystem import AmoFS


async def test_listing_shows_names_with_extension_and_escapes(emulator: Any, p: P) -> None:
    emulator.seed_file("Договор поставки.pdf", b"%PDF-1.4 x")
    emulator.seed_file("Акт 01/2024.pdf", b"act")
    emulator.seed_file("README", b"no extension")
    assert await p.ls("files") == ["README", "Акт 01／2024.pdf", "Договор поставки.pdf"]
    assert await p.read("files/Акт 01／2024.pdf") == b"act"


async def test_duplicate_names_both_appear_with_stable_names(emulator: Any, p: P) -> None:
    a = emulator.seed_file("Счёт.pdf", b"first", created_at=1000)
    b = emulator.seed_file("Счёт.pdf", b"second", created_at=2000)
    listed = await p.ls("files")
    assert "Счёт.pdf" in listed
    assert f"Счёт ({b.replace('-', '')[:8]}).pdf" in listed
    assert await p.read("files/Счёт.pdf") == b"first"
    assert a != b


async def test_stat_fields_come_from_the_model(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("a.txt", b"12345")
    model = next(f for f in emulator.files() if f["uuid"] == uuid)
    st = await p.stat("files/a.txt")
    assert st.size == 5
    assert st.mtime_ns == model["updated_at"] * 10**9
    assert st.ctime_ns == model["created_at"] * 10**9
    assert not st.is_dir and st.perm == 0o644


async def test_second_listing_and_stats_make_no_request(emulator: Any, p: P) -> None:
    for i in range(30):
        emulator.seed_file(f"f{i}.txt", b"x" * i)
    await p.ls("files")
    emulator.reset_log()
    await p.ls("files")
    for i in range(30):
        await p.stat(f"files/f{i}.txt")
    assert emulator.count() == 0


async def test_read_is_one_download_and_second_read_is_local(emulator: Any, p: P) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    emulator.seed_file("big.bin", data)
    await p.ls("files")
    emulator.reset_log()
    assert await p.read("files/big.bin") == data
    assert emulator.count(method="GET", path_prefix="/download") == 1
    emulator.reset_log()
    assert await p.read("files/big.bin") == data  # from the content cache
    assert emulator.count() == 0


async def test_random_read_uses_range(emulator: Any, fs: AmoFS, p: P) -> None:
    data = os.urandom(8 * 1024 * 1024)
    emulator.seed_file("r.bin", data)
    opened = await fs.open(await p.ino("files/r.bin"), os.O_RDONLY)
    assert await fs.read(opened.fh, 7 * 1024 * 1024, 100) == data[7 * 1024 * 1024 : 7 * 1024 * 1024 + 100]
    assert await fs.read(opened.fh, 10, 10) == data[10:20]
    await fs.release(opened.fh)


@pytest.mark.parametrize("size", [0, 1, 524288, 524289, 5 * 1024 * 1024])
async def test_cp_in_arrives_byte_for_byte(emulator: Any, p: P, size: int) -> None:
    data = os.urandom(size)
    emulator.reset_log()
    await p.write("files/new.bin", data)
    f = by_name(emulator, "new.bin")
    assert emulator.content(f["uuid"]) == data
    parts = max(1, -(-size // 524288))
    assert emulator.count(method="POST", path_prefix="/v1.0/sessions") == 1 + parts  # session + parts
    # listed at once, with no listing request
    emulator.reset_log()
    assert "new.bin" in await p.ls("files")
    assert (await p.stat("files/new.bin")).size == size
    assert emulator.count(path_prefix="/v1.0/files") == 0


async def test_overwrite_makes_a_new_version_of_the_same_file(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("doc.txt", b"old")
    await p.ls("files")
    await p.write("files/doc.txt", b"new content")
    f = by_name(emulator, "doc.txt")
    assert f["uuid"] == uuid
    assert emulator.content(uuid) == b"new content"
    assert len(emulator.versions(uuid)) == 2
    assert await p.read("files/doc.txt") == b"new content"


async def test_partial_overwrite_keeps_the_other_bytes(emulator: Any, fs: AmoFS, p: P) -> None:
    uuid = emulator.seed_file("part.bin", b"A" * 1000)
    opened = await fs.open(await p.ino("files/part.bin"), os.O_WRONLY)
    await fs.write(opened.fh, 500, b"BBBB")
    await fs.flush(opened.fh)
    await fs.release(opened.fh)
    assert emulator.content(uuid) == b"A" * 500 + b"BBBB" + b"A" * 496


async def test_stat_shows_local_size_while_writing(fs: AmoFS, p: P) -> None:
    opened, _ = await fs.create(await p.ino("files"), "w.txt", os.O_WRONLY | os.O_CREAT)
    await fs.write(opened.fh, 0, b"x" * 1234)
    assert (await p.stat("files/w.txt")).size == 1234
    await fs.flush(opened.fh)
    await fs.release(opened.fh)


async def test_truncate_and_append(emulator: Any, fs: AmoFS, p: P) -> None:
    uuid = emulator.seed_file("t.txt", b"0123456789")
    ino = await p.ino("files/t.txt")
    await fs.setattr(ino, size=4)
    assert emulator.content(uuid) == b"0123"
    opened = await fs.open(ino, os.O_WRONLY | os.O_APPEND)
    size = (await fs.getattr(ino)).size
    await fs.write(opened.fh, size, b"xyz")
    await fs.flush(opened.fh)
    await fs.release(opened.fh)
    assert emulator.content(uuid) == b"0123xyz"


async def test_two_handles_share_one_file(emulator: Any, fs: AmoFS, p: P) -> None:
    uuid = emulator.seed_file("two.txt", b"..........")
    ino = await p.ino("files/two.txt")
    a = await fs.open(ino, os.O_RDWR)
    b = await fs.open(ino, os.O_RDWR)
    await fs.write(a.fh, 0, b"AA")
    await fs.write(b.fh, 8, b"BB")
    assert await fs.read(b.fh, 0, 10) == b"AA......BB"
    await fs.flush(a.fh)
    await fs.release(a.fh)
    await fs.flush(b.fh)
    await fs.release(b.fh)
    assert emulator.content(uuid) == b"AA......BB"
    assert len(emulator.versions(uuid)) == 2  # the second flush found nothing new to send


async def test_write_past_max_file_size_is_efbig(emulator: Any, fs: AmoFS, p: P) -> None:
    opened, _ = await fs.create(await p.ino("files"), "huge.bin", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(FileTooBig) as e:
        await fs.write(opened.fh, 314572800, b"x")
    assert errno_of(e.value) == errno.EFBIG
    await fs.release(opened.fh)


async def test_failed_upload_reports_keeps_bytes_and_leaves_no_file(emulator: Any, fs: AmoFS, p: P) -> None:
    emulator.options.fail_parts = 100  # every part answers 500
    data = os.urandom(600_000)
    opened, _ = await fs.create(await p.ino("files"), "lost.bin", os.O_WRONLY | os.O_CREAT)
    await fs.write(opened.fh, 0, data)
    with pytest.raises(AmoError) as e:
        await fs.flush(opened.fh)
    assert errno_of(e.value) == errno.EIO
    await fs.release(opened.fh)
    emulator.options.fail_parts = 0
    assert not [f for f in emulator.files() if f["name"] == "lost"]
    kept = fs.dirs.failed_files()
    assert len(kept) == 1 and kept[0].read_bytes() == data


async def test_rename_patches_the_name(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("old name.pdf", b"x")
    await p.ls("files")
    emulator.reset_log()
    await p.mv("files/old name.pdf", "files/new name.pdf")
    assert emulator.count(method="PATCH") == 1
    assert by_name(emulator, "new name.pdf")["uuid"] == uuid
    assert await p.ls("files") == ["new name.pdf"]
    # the new name resolves at once (rename probed it as missing just before)
    await p.rm("files/new name.pdf")
    assert by_name(emulator, "new name.pdf", trashed=True)["uuid"] == uuid


async def test_rename_changing_the_extension(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("notes.txt", b"text")
    await p.mv("files/notes.txt", "files/notes.md")
    f = by_name(emulator, "notes.md")
    assert f["uuid"] == uuid and emulator.content(uuid) == b"text"


async def test_rename_over_existing_makes_a_version_of_the_target(emulator: Any, p: P) -> None:
    a = emulator.seed_file("a.txt", b"from a")
    b = emulator.seed_file("b.txt", b"old b")
    await p.mv("files/a.txt", "files/b.txt")
    assert by_name(emulator, "b.txt")["uuid"] == b
    assert emulator.content(b) == b"from a"
    assert a in {f["uuid"] for f in emulator.files(trashed=True)}
    assert await p.ls("files") == ["b.txt"]


async def test_rename_noreplace(emulator: Any, p: P) -> None:
    emulator.seed_file("a.txt", b"a")
    emulator.seed_file("b.txt", b"b")
    with pytest.raises(Exists):
        await p.mv("files/a.txt", "files/b.txt", flags=1)


async def test_rsync_style_temp_then_rename_uploads_once_as_a_version(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("report.pdf", b"v1")
    await p.ls("files")
    emulator.reset_log()
    await p.write("files/.report.pdf.Xy12Ab", b"v2 bytes")
    assert emulator.count(method="POST") == 0  # held back until the rename
    await p.mv("files/.report.pdf.Xy12Ab", "files/report.pdf")
    assert emulator.content(uuid) == b"v2 bytes"
    assert not [f for f in emulator.files(trashed=None) if f["name"].startswith(".report")]
    assert await p.ls("files") == ["report.pdf"]


async def test_temp_file_never_renamed_is_uploaded_at_close_of_the_mount(emulator: Any, fs: AmoFS, p: P) -> None:
    await p.write("files/download.part", b"partial")
    assert not emulator.files()
    await fs.close()
    assert emulator.content(by_name(emulator, "download.part")["uuid"]) == b"partial"


async def test_editor_lock_files_stay_local(emulator: Any, p: P) -> None:
    await p.write("files/.~lock.Договор.odt#", b"lock")
    assert ".~lock.Договор.odt#" in await p.ls("files")
    assert await p.read("files/.~lock.Договор.odt#") == b"lock"
    await p.rm("files/.~lock.Договор.odt#")
    assert emulator.count(method="POST") == 0
    assert not emulator.files()


async def test_unlink_moves_to_trash_and_trash_lists_it_at_once(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("gone.txt", b"x")
    await p.ls("files")
    await p.ls("trash")
    await p.rm("files/gone.txt")
    assert await p.ls("files") == []
    assert await p.ls("trash") == ["gone.txt"]
    assert [f["uuid"] for f in emulator.files(trashed=True)] == [uuid]


async def test_rm_without_files_delete_scope_is_eacces(emulator: Any, tmp_path: Any) -> None:
    from amofs.api.client import AmoClient

    emulator.add_token("weak", {"files"})
    emulator.seed_file("keep.txt", b"x")
    async with AmoClient(emulator.account_url, token="weak", drive_url=emulator.drive_url) as client:
        fs = AmoFS(client, cache_dir=tmp_path / "c")
        await fs.start()
        p = P(fs)
        with pytest.raises(AmoError) as e:
            await p.rm("files/keep.txt")
        assert errno_of(e.value) == errno.EACCES
    assert [f["name"] for f in emulator.files()] == ["keep"]


async def test_folders_and_symlinks_are_refused(p: P, fs: AmoFS) -> None:
    files = await p.ino("files")
    with pytest.raises(NotPermitted):
        await fs.mkdir(files, "sub")
    with pytest.raises(NotPermitted):
        await fs.symlink(files, "ln", "target")


async def test_missing_name_is_enoent(p: P) -> None:
    with pytest.raises(NoEntry):
        await p.stat("files/nothing.txt")


async def test_xattrs(emulator: Any, fs: AmoFS, p: P) -> None:
    emulator.add_entity("leads", 1001, "Сделка #1001")
    uuid = emulator.seed_file("x.txt", b"x", linked=(("leads", 1001),))
    ino = await p.ino("files/x.txt")
    model = next(f for f in emulator.files() if f["uuid"] == uuid)
    assert await fs.getxattr(ino, "user.amo.uuid") == uuid.encode()
    assert await fs.getxattr(ino, "user.amo.version_uuid") == model["version_uuid"].encode()
    assert await fs.getxattr(ino, "user.amo.links") == b"leads/1001"
    assert set(await fs.listxattr(ino)) == {"user.amo.uuid", "user.amo.version_uuid", "user.amo.links"}


async def test_statfs_is_never_full(fs: AmoFS) -> None:
    st = await fs.statfs()
    assert st.free_blocks > 0 and st.total_blocks >= st.free_blocks


async def test_readdir_answers_in_bounded_batches_and_continues(emulator: Any, fs: AmoFS, p: P) -> None:
    emulator.seed_many([(f"n{i:04d}.txt", b"x") for i in range(700)])
    fh = await fs.opendir(await p.ino("files"))
    seen: list[str] = []
    start = 0
    while batch := await fs.readdir(fh, start):
        assert len(batch) <= 256
        seen += [e.name for e in batch]
        start = batch[-1].next_id
    await fs.releasedir(fh)
    assert sorted(seen) == [f"n{i:04d}.txt" for i in range(700)]


async def test_mtime_set_through_the_mount_is_kept_for_that_version(emulator: Any, fs: AmoFS, p: P) -> None:
    uuid = emulator.seed_file("t.txt", b"x")
    # rsync -a: write a temp file, set its mtime, rename it over the target; the next run compares times
    await p.write("files/.sync.txt.Ab12Cd", b"v1")
    await fs.setattr(await p.ino("files/.sync.txt.Ab12Cd"), mtime_ns=1_600_000_000_000_000_000)
    await p.mv("files/.sync.txt.Ab12Cd", "files/sync.txt")
    assert (await p.stat("files/sync.txt")).mtime_ns == 1_600_000_000_000_000_000
    # set on an account file directly (touch -d)
    await fs.setattr(await p.ino("files/t.txt"), mtime_ns=1_500_000_000_000_000_000)
    assert (await p.stat("files/t.txt")).mtime_ns == 1_500_000_000_000_000_000
    # a new version made elsewhere voids it
    emulator.add_version(uuid, "t.txt", b"changed elsewhere")
    await fs.close()
    fresh = AmoFS(fs.client, cache_dir=fs.dirs.root, cache_ttl=60)
    await fresh.start()
    assert (await P(fresh).stat("files/sync.txt")).mtime_ns == 1_600_000_000_000_000_000  # persisted
    assert (await P(fresh).stat("files/t.txt")).mtime_ns != 1_500_000_000_000_000_000
    await fresh.close()


async def test_bytes_a_killed_run_left_in_the_spool_are_kept(fs: AmoFS, tmp_path: Any) -> None:
    # a rename-temp file waits for its rename after close(); a SIGKILL then leaves it only in the spool
    killed = AmoFS(fs.client, cache_dir=tmp_path / "killed")
    await killed.start()
    await P(killed).write("files/.doc.txt.Zz99Yy", b"never sent")
    assert [f.read_bytes() for f in killed.dirs.spool.iterdir()] == [b"never sent"]
    # ... killed here: no close(); the kernel drops a dead process's lock on the cache dir. The next mount:
    killed.dirs.release()
    survivor = AmoFS(fs.client, cache_dir=tmp_path / "killed")
    await survivor.start()
    assert [f.read_bytes() for f in survivor.recovered] == [b"never sent"]
    assert survivor.recovered[0].parent == survivor.dirs.failed
    assert json.loads(survivor.status_json())["failed_files"] == [str(survivor.recovered[0])]
    await survivor.close()


async def test_attributes_are_reused_until_the_file_or_its_kept_mtime_changes(emulator: Any, fs: AmoFS, p: P) -> None:
    """A warm `ls -l` reuses each file's attributes (no rebuilding per entry); a new version made elsewhere
    (seen at the next sync) or an mtime set through the mount shows at once."""
    uuid = emulator.seed_file("a.txt", b"one")
    ino = await p.ino("files/a.txt")
    first = await fs.getattr(ino)
    assert await fs.getattr(ino) is first
    emulator.add_version(uuid, "a.txt", b"three")
    await views.refresh(fs.ctx, force=True)
    changed = await fs.getattr(ino)
    assert changed.size == 5 and changed is not first
    await fs.setattr(ino, mtime_ns=1_234_000_000_000)
    touched = await fs.getattr(ino)
    assert touched.mtime_ns == 1_234_000_000_000 and touched.size == 5


async def test_write_only_handles_bypass_the_kernel_page_cache(emulator: Any, fs: AmoFS, p: P) -> None:
    """cp, rsync and gio open for writing only: their bytes go straight to the spool (direct_io), never
    through a page cache nobody reads (measured: the write phase of a 256 MiB cp 0.6-1.3 s -> 0.15-0.36 s).
    Handles that can read keep the page cache (and mmap)."""
    emulator.seed_file("a.txt", b"one")
    created, _ = await fs.create(await p.ino("files"), "new.txt", os.O_WRONLY | os.O_CREAT)
    assert created.direct_io
    rdwr, _ = await fs.create(await p.ino("files"), "rw.txt", os.O_RDWR | os.O_CREAT)
    assert not rdwr.direct_io
    ino = await p.ino("files/a.txt")
    assert (await fs.open(ino, os.O_WRONLY)).direct_io
    assert not (await fs.open(ino, os.O_RDWR)).direct_io
    assert not (await fs.open(ino, os.O_RDONLY)).direct_io
    for o in (created, rdwr):
        await fs.release(o.fh)


async def test_a_second_mount_on_a_cache_dir_in_use_is_refused_and_steals_nothing(fs: AmoFS, tmp_path: Any) -> None:
    """Two mounts of one profile share its default cache dir. The second must not take the first one's
    spool files for a killed run's leftovers (moving bytes still being written to failed/), nor overwrite
    its index: it is refused with a line that says what to do."""
    from amofs.config import UsageError

    first = AmoFS(fs.client, cache_dir=tmp_path / "shared")
    await first.start()
    await P(first).write("files/.doc.txt.Zz99Yy", b"still being written")  # waits in the spool
    second = AmoFS(fs.client, cache_dir=tmp_path / "shared")
    with pytest.raises(UsageError, match=rf"in use by another amofs mount \(pid {os.getpid()}\).*--cache-dir"):
        await second.start()
    assert [f.read_bytes() for f in first.dirs.spool.iterdir()] == [b"still being written"]
    assert not list(first.dirs.failed.iterdir())
    await first.close()
    third = AmoFS(fs.client, cache_dir=tmp_path / "shared")  # after an unmount the dir is free again
    await third.start()
    await third.close()
