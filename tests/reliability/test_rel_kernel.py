"""Hostile input from the kernel side, on a real mount: names too long or not UTF-8, writes past the account's
size limit, O_APPEND, two writers on one file, rename/unlink of an open file, and a file changed or deleted
elsewhere while it is being read. Each case ends with a clear errno or the documented outcome, never a wrong
file, and the mount keeps serving."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mounthelpers import Mount, sh
from relhelpers import by_name, data, names

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

pytestmark = pytest.mark.mount


@pytest.fixture
def m(emulator: Emulator, mnt: Path, mount_factory: Any) -> Mount:
    return mount_factory(emulator, mnt, "--cache-ttl", "1")


def oserror(fn: Any, *args: Any) -> int:
    """The errno ``fn(*args)`` fails with (0 when it succeeds)."""
    try:
        fn(*args)
    except OSError as e:
        return e.errno or -1
    return 0


def create(path: Path | bytes, body: bytes = b"x") -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, body)
    finally:
        os.close(fd)


def alive(m: Mount) -> None:
    """The mount still answers (and its process still runs)."""
    assert m.proc.poll() is None, m.log()
    assert "files" in os.listdir(m.path)


# --- names ---------------------------------------------------------------------------------------------------


def test_names_over_255_bytes_are_enametoolong(emulator: Emulator, m: Mount) -> None:
    files = m.p("files")
    longest = "a" * 251 + ".txt"  # 255 bytes: fine
    create(files / longest, b"at the limit")
    assert emulator.content(by_name(emulator, longest)["uuid"]) == b"at the limit"

    for name in ("b" * 252 + ".txt", "я" * 126 + ".txt", "c" * 1000):  # 256, 256 and 1000 bytes
        assert oserror(create, files / name) == errno.ENAMETOOLONG, name
        assert oserror(os.rename, files / longest, files / name) == errno.ENAMETOOLONG, name
    # lookups of such names find nothing, whatever the kernel's own limit says
    assert oserror(os.stat, files / ("d" * 300)) in (errno.ENOENT, errno.ENAMETOOLONG)
    assert names(emulator, trashed=None) == [longest]
    alive(m)


def test_names_that_are_not_utf8_are_einval(emulator: Emulator, m: Mount) -> None:
    files = os.fsencode(m.p("files"))
    create(m.p("files", "good.txt"), b"g")
    for bad in (b"\xff\xfe.txt", b"caf\xe9.txt", b"\xc3(.txt", b"\xed\xa0\x80.txt"):  # latin-1, bad, surrogate
        assert oserror(create, files + b"/" + bad) == errno.EINVAL, bad
        assert oserror(os.rename, files + b"/good.txt", files + b"/" + bad) == errno.EINVAL, bad
        assert oserror(os.stat, files + b"/" + bad) == errno.ENOENT
    assert names(emulator, trashed=None) == ["good.txt"]
    alive(m)


# --- sizes ---------------------------------------------------------------------------------------------------


def test_writes_past_max_file_size_are_efbig_at_once(emulator: Emulator, m: Mount) -> None:
    emulator.options.max_file_size = 1_000_000
    create(m.p("files", "small.bin"), b"teaches the mount the account's limit")
    path = m.p("files", "big.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.pwrite(fd, b"fits", 0)
        assert oserror(os.pwrite, fd, b"x", 1_000_000) == errno.EFBIG  # byte 1,000,001: one too many
        assert oserror(os.pwrite, fd, b"x", 1 << 62) == errno.EFBIG
        assert oserror(os.ftruncate, fd, 2_000_000) == errno.EFBIG
        os.pwrite(fd, b"!", 999_999)  # the last byte allowed
    finally:
        os.close(fd)
    body = emulator.content(by_name(emulator, "big.bin")["uuid"])
    assert len(body) == 1_000_000 and body[:4] == b"fits" and body[-1:] == b"!"
    assert oserror(os.truncate, path, 5_000_000) == errno.EFBIG
    alive(m)


def test_a_file_over_the_limit_fails_close_with_efbig_and_leaves_nothing(emulator: Emulator, m: Mount) -> None:
    """Before any upload told the mount the limit, the write is accepted and close() says EFBIG."""
    emulator.options.max_file_size = 50_000
    fd = os.open(m.p("files", "huge.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data(60_000))
    assert oserror(os.close, fd) == errno.EFBIG
    assert names(emulator, trashed=None) == []
    alive(m)


# --- append and concurrent writers ----------------------------------------------------------------------------


def test_o_append_always_writes_at_the_end(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("journal.txt", b"0\n")
    path = m.p("files", "journal.txt")
    a = os.open(path, os.O_WRONLY | os.O_APPEND)
    b = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(a, b"a1\n")
        os.write(b, b"b1\n")
        os.lseek(a, 0, os.SEEK_SET)  # O_APPEND ignores the position
        os.write(a, b"a2\n")
        os.write(b, b"b2\n")
    finally:
        os.close(a)
        os.close(b)
    assert emulator.content(uuid) == b"0\na1\nb1\na2\nb2\n"
    assert path.read_bytes() == b"0\na1\nb1\na2\nb2\n"


def test_two_writers_on_one_file_share_its_bytes(emulator: Emulator, m: Mount) -> None:
    """Documented outcome: the handles share one copy of the file (last write to a byte wins, as on a local
    disk); each close uploads what changed since the last upload; the account ends with the merged bytes and
    every version it holds is a whole state of the file, never a torn one."""
    path = m.p("files", "shared.bin")
    one = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    two = os.open(path, os.O_RDWR)
    try:
        os.pwrite(one, b"A" * 100_000, 0)
        os.pwrite(two, b"B" * 50_000, 50_000)
        os.pwrite(one, b"C" * 10, 0)
        assert os.pread(two, 20, 0) == b"C" * 10 + b"A" * 10  # each sees the other's writes
    finally:
        os.close(one)  # uploads the merged state
        os.close(two)  # nothing changed since: no second upload
    expected = b"C" * 10 + b"A" * 49_990 + b"B" * 50_000
    f = by_name(emulator, "shared.bin")
    assert emulator.content(f["uuid"]) == expected
    assert len(emulator.versions(f["uuid"])) == 1
    assert path.read_bytes() == expected


def test_two_processes_writing_one_file_end_with_one_of_their_states(
    emulator: Emulator, m: Mount, tmp_path: Path
) -> None:
    """Two ``cp`` of different files onto one new name at once. GNU cp creates with O_EXCL, so one of them may
    fail with EEXIST, as on a local disk; when both get in, they share one copy of the file. Either way the
    account ends with what the mount shows, made only of blocks the two wrote: nothing torn or short."""
    import subprocess

    bodies = [data(300_000, seed=1), data(200_000, seed=2)]
    for i, body in enumerate(bodies):
        (tmp_path / f"src{i}").write_bytes(body)
    procs = [
        subprocess.Popen(["cp", str(tmp_path / f"src{i}"), str(m.p("files", "race.bin"))], stderr=subprocess.PIPE)
        for i in range(2)
    ]
    errs = [p.communicate(timeout=60)[1] for p in procs]
    codes = [p.returncode for p in procs]
    for code, err in zip(codes, errs, strict=True):
        assert code == 0 or b"File exists" in err, err
    assert 0 in codes
    final = emulator.content(by_name(emulator, "race.bin")["uuid"])
    assert final == m.p("files", "race.bin").read_bytes()
    if codes.count(0) == 1:
        assert final == bodies[codes.index(0)]
    else:
        assert len(final) in (len(bodies[0]), len(bodies[1]))
        for off in range(0, len(final), 4096):
            block = final[off : off + 4096]
            assert block in (bodies[0][off : off + 4096], bodies[1][off : off + 4096]), off
    alive(m)


# --- open files renamed or removed ----------------------------------------------------------------------------


def test_open_reader_keeps_reading_across_rename_and_unlink(emulator: Emulator, m: Mount) -> None:
    body = data(6 << 20, seed=7)
    uuid = emulator.seed_file("moving.bin", body)
    with open(m.p("files", "moving.bin"), "rb", buffering=0) as f:
        head = f.read(128 * 1024)
        os.rename(m.p("files", "moving.bin"), m.p("files", "moved.bin"))
        middle = f.read(2 << 20)
        os.unlink(m.p("files", "moved.bin"))
        assert emulator.file(uuid)["is_trashed"] is True
        rest = f.read()
    assert head + middle + rest == body


def test_file_open_for_writing_keeps_its_bytes_across_rename(emulator: Emulator, m: Mount) -> None:
    fd = os.open(m.p("files", "draft.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"first half, ")
        os.rename(m.p("files", "draft.txt"), m.p("files", "final.txt"))
        os.write(fd, b"second half")
    finally:
        os.close(fd)
    assert names(emulator, trashed=None) == ["final.txt"]
    assert emulator.content(by_name(emulator, "final.txt")["uuid"]) == b"first half, second half"


def test_new_file_unlinked_while_open_is_never_uploaded(emulator: Emulator, m: Mount) -> None:
    fd = os.open(m.p("files", "scratch.txt"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"never mind")
        os.unlink(m.p("files", "scratch.txt"))
        assert os.pread(fd, 100, 0) == b"never mind"  # the open handle still has its bytes
        os.write(fd, b" at all")
    finally:
        os.close(fd)
    assert names(emulator, trashed=None) == []
    alive(m)


# --- changed or deleted elsewhere while open -------------------------------------------------------------------


def _delete_elsewhere(emu: Emulator, uuid: str) -> None:
    r = httpx.request(
        "DELETE",
        f"{emu.drive_url}/v1.0/files",
        json=[{"uuid": uuid}],
        headers={"Authorization": f"Bearer {emu.token}"},
        timeout=10,
    )
    assert r.status_code == 204


def test_reading_a_file_trashed_elsewhere_keeps_its_bytes(emulator: Emulator, m: Mount) -> None:
    """The account keeps a deleted file's bytes in its trash: an open reader goes on reading them."""
    body = data(6 << 20, seed=8)
    uuid = emulator.seed_file("gone.bin", body)
    with open(m.p("files", "gone.bin"), "rb", buffering=0) as f:
        head = f.read(128 * 1024)
        _delete_elsewhere(emulator, uuid)
        time.sleep(1.2)  # past the mount's cache TTL
        f.seek(5 << 20)  # far ahead: a new request
        tail = f.read()
        f.seek(len(head))
        middle = f.read((5 << 20) - len(head))
    assert head + middle + tail == body


def test_reading_a_file_whose_download_vanished_is_enoent(emulator: Emulator, m: Mount) -> None:
    body = data(12 << 20, seed=9)
    emulator.seed_file("vanishing.bin", body)
    with open(m.p("files", "vanishing.bin"), "rb", buffering=0) as f:
        assert f.read(64 * 1024) == body[: 64 * 1024]
        emulator.options.fail_requests_match = "^/download/"
        emulator.options.fail_requests_status = 404
        emulator.options.fail_requests = 1000
        try:
            f.seek(10 << 20)  # far ahead: a new request
            with pytest.raises(OSError) as exc:
                f.read(64 * 1024)
        finally:
            emulator.options.fail_requests = 0
        assert exc.value.errno == errno.ENOENT
    alive(m)


def test_a_new_version_made_elsewhere_never_mixes_into_an_open_reader(emulator: Emulator, m: Mount) -> None:
    """A handle opened on version 1 reads version 1 to the end (or fails); never part of version 2."""
    old, new = data(12 << 20, seed=10), data(12 << 20, seed=11)
    uuid = emulator.seed_file("contract.bin", old)
    with open(m.p("files", "contract.bin"), "rb", buffering=0) as f:
        head = f.read(128 * 1024)
        emulator.add_version(uuid, "contract.bin", new)
        time.sleep(1.2)  # past the mount's cache TTL: the mount will learn of version 2
        os.listdir(m.p("files"))
        f.seek(10 << 20)  # far ahead: a new request
        tail = f.read()
        f.seek(len(head))
        middle = f.read((10 << 20) - len(head))
    got = head + middle + tail
    assert len(got) == len(old)
    assert got == old, "an open reader mixed bytes of two versions"
    # a new open reads the new version
    time.sleep(1.2)
    assert m.p("files", "contract.bin").read_bytes() == new


def test_kernel_abuse_never_ends_the_mount(emulator: Emulator, m: Mount) -> None:
    """A burst of nonsense requests: every one gets an errno, the mount stays up."""
    files = m.p("files")
    for args in (
        ("mkdir", files / "dir"),
        ("rmdir", m.p("files")),
        ("ln", "-s", "/etc/passwd", files / "sym"),
        ("mknod", files / "fifo", "p"),
        ("touch", m.p("versions", "x")),
        ("touch", m.p("trash", "x")),
        ("touch", m.p("x")),
        ("rm", "-f", m.p("trash")),
        ("mv", m.p("files"), m.p("gone")),
        ("setfattr", "-n", "user.amo.uuid", "-v", "x", m.p("files")),
        ("cat", m.p("leads", "not-a-number")),
        ("ls", m.p("leads", "999999999999999999999999")),
        ("ls", m.p("versions", "00000000-0000-0000-0000-000000000000")),
    ):
        res = sh(*args, timeout=30)
        assert res.returncode != 0, args
    alive(m)


# --- renames the kernel sees differently from the account (its dentry cache) ------------------------------------


def test_after_mv_over_an_existing_file_the_name_is_writable(emulator: Emulator, m: Mount) -> None:
    """mv a b (b exists): the account keeps b's file with a's bytes and trashes a; the kernel believes a's inode
    now sits at b. Writing b afterwards must write b's file, not fail on the trashed a (EPERM)."""
    a = emulator.seed_file("a.txt", b"bytes of a")
    b = emulator.seed_file("b.txt", b"bytes of b")
    os.listdir(m.p("files"))
    os.rename(m.p("files", "a.txt"), m.p("files", "b.txt"))
    assert emulator.file(a)["is_trashed"] and emulator.content(b) == b"bytes of a"
    assert m.p("files", "b.txt").read_bytes() == b"bytes of a"
    create(m.p("files", "b.txt"), b"written after the mv")
    assert emulator.content(b) == b"written after the mv"
    assert os.listdir(m.p("files")) == ["b.txt"]
    assert os.getxattr(m.p("files", "b.txt"), "user.amo.uuid").decode() == b


def test_after_promoting_a_version_the_file_is_writable(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("x.txt", b"one")
    emulator.add_version(uuid, "x.txt", b"two")
    old = sorted(n for n in os.listdir(m.p("versions", uuid)) if n.startswith("v"))[0]
    os.rename(m.p("versions", uuid, old), m.p("files", "x.txt"))
    assert emulator.content(uuid) == b"one"
    assert m.p("files", "x.txt").read_bytes() == b"one"
    create(m.p("files", "x.txt"), b"three")  # the kernel holds the version's inode at files/x.txt
    assert emulator.content(uuid) == b"three"


def test_restore_onto_a_live_name_keeps_showing_the_live_file(emulator: Emulator, m: Mount) -> None:
    old = emulator.seed_file("doc.txt", b"the deleted one", trashed=True)
    live = emulator.seed_file("doc.txt", b"the live one")
    os.listdir(m.p("files"))
    os.rename(m.p("trash", "doc.txt"), m.p("files", "doc.txt"))
    assert not emulator.file(old)["is_trashed"]
    assert m.p("files", "doc.txt").read_bytes() == b"the live one"  # never overwritten
    assert os.getxattr(m.p("files", "doc.txt"), "user.amo.uuid").decode() == live
    assert len(os.listdir(m.p("files"))) == 2


def test_after_mv_over_an_existing_file_the_old_name_is_gone(emulator: Emulator, m: Mount) -> None:
    emulator.seed_file("a.txt", b"bytes of a")
    emulator.seed_file("b.txt", b"bytes of b")
    assert m.p("files", "a.txt").read_bytes() == b"bytes of a"  # the kernel knows both names now
    assert m.p("files", "b.txt").read_bytes() == b"bytes of b"
    os.rename(m.p("files", "a.txt"), m.p("files", "b.txt"))
    assert not m.p("files", "a.txt").exists()
    assert oserror(os.open, m.p("files", "a.txt"), os.O_RDONLY) == errno.ENOENT
    assert m.p("files", "b.txt").read_bytes() == b"bytes of a"
