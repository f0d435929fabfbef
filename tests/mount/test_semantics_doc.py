"""docs/SEMANTICS.md, example by example, on a real mount (like mountpoint-s3's semantics_doc_test.rs).

Each test is named after the section of the doc and the example it checks, and checks the account as the
emulator stored it, not only what the mount shows. Examples already exercised on a mount elsewhere are not
repeated here:

- test_posix.py: `Акт 01/2024.pdf` shown as `Акт 01／2024.pdf`; size/mtime/ctime/owner; `cp` over an existing
  file adds a version; `dd conv=notrunc`; `>>`; empty file; EFBIG; EACCES without `files_delete`; a failed
  upload fails `cp` with EIO; `.~lock.*#` stays local; rsync leaves no temp names; mkdir/symlink EPERM;
  ENODATA; `rm files/X` → trash.
- test_tree.py: trash/, versions/, entity folders, search/, GIO's trash, `user.amo.*` xattrs, the folders'
  errnos (unknown entity/uuid, EROFS in versions/ and search/, EPERM in trash/), cache upkeep after ln/rm.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from mounthelpers import Mount, MountFactory, ok, pyerr, sh, shown, wait_until

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

pytestmark = pytest.mark.mount

MiB = 1 << 20
PiB = 1 << 50


def data(n: int, seed: int = 0) -> bytes:
    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def by_name(emu: Emulator, name: str, *, trashed: bool | None = False) -> dict[str, Any]:
    found = [f for f in emu.files(trashed=trashed) if shown(f) == name]
    assert len(found) == 1, f"{name!r}: {[shown(f) for f in emu.files(trashed=trashed)]}"
    return found[0]


def account_names(emu: Emulator) -> list[str]:
    return sorted(shown(f) for f in emu.files(trashed=None))


def ls(path: Path) -> list[str]:
    return sorted(ok("ls", "-A", path).decode().splitlines())


def stat(path: Path, fmt: str) -> list[str]:
    return ok("stat", "-c", fmt, path).decode().split()


def fails(res: Any, message: str) -> None:
    err = res.stderr.decode(errors="replace")
    assert res.returncode != 0, f"succeeded, expected {message!r}"
    assert message in err, err


def requests(emu: Emulator) -> list[tuple[str, str, str]]:
    return [(r.method, r.host, r.path) for r in emu.log]


def changes(emu: Emulator) -> list[tuple[str, str]]:
    """The requests that can change the account (anything but GET); upload parts as ("POST", "part")."""
    return [(r.method, "part" if "/upload/" in r.path else r.path) for r in emu.log if r.method != "GET"]


def sessions(emu: Emulator) -> int:
    """Upload sessions opened (one per upload)."""
    return sum(1 for r in emu.log if r.method == "POST" and r.path == "/v1.0/sessions")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def m(emulator: Emulator, mnt: Path, mount_factory: MountFactory, cache_dir: Path) -> Mount:
    """The account mounted as a user runs it: cache TTL 60 s (seed before the first look at a folder)."""
    return mount_factory(emulator, mnt, "--cache-ttl", "60", "--cache-dir", str(cache_dir))


# === Three tenets ============================================================================================


def test_tenet_1_rm_is_one_delete_mv_is_one_patch_cp_is_one_session(
    emulator: Emulator, m: Mount, tmp_path: Path
) -> None:
    uuid_a = emulator.seed_file("a.txt", b"a", linked=())
    uuid_b = emulator.seed_file("b.txt", b"b", linked=())
    ls(m.p("files"))
    emulator.reset_log()
    ok("rm", m.p("files", "a.txt"))
    assert changes(emulator) == [("DELETE", "/v1.0/files")]
    assert emulator.file(uuid_a)["is_trashed"] is True
    emulator.reset_log()
    ok("mv", m.p("files", "b.txt"), m.p("files", "c.txt"))
    assert changes(emulator) == [("PATCH", f"/v1.0/files/{uuid_b}")]
    emulator.reset_log()
    body = data(1_100_000)  # three parts of at most 512 KiB
    (tmp_path / "new.bin").write_bytes(body)
    ok("cp", tmp_path / "new.bin", m.p("files", "new.bin"))
    assert changes(emulator) == [("POST", "/v1.0/sessions")] + [("POST", "part")] * 3
    assert emulator.content(by_name(emulator, "new.bin")["uuid"]) == body


def test_tenet_3_a_failed_upload_keeps_the_bytes_under_failed(
    emulator: Emulator, m: Mount, tmp_path: Path, cache_dir: Path
) -> None:
    body = data(20_000, seed=3)
    (tmp_path / "precious.bin").write_bytes(body)
    emulator.options.fail_requests_match = r"^/v1\.0/sessions$"
    emulator.options.fail_requests_status = 403
    emulator.options.fail_requests = 1
    fails(sh("cp", tmp_path / "precious.bin", m.p("files", "precious.bin")), "Permission denied")
    assert account_names(emulator) == []  # no half file
    kept = [p for p in (cache_dir / "failed").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in kept] == [body]
    assert str(kept[0]) in m.log_file.read_text()  # the log names the path
    assert m.proc.poll() is None


# === The tree: names =========================================================================================


def test_names_slash_nul_and_the_escape_character(emulator: Emulator, m: Mount) -> None:
    emulator.seed_file("a/b.txt", b"slash", linked=())
    emulator.seed_file("x\0y.txt", b"nul", linked=())
    emulator.seed_file("already／here.txt", b"fullwidth", linked=())
    emulator.seed_file("‛quoted.txt", b"quote", linked=())
    emulator.seed_file(".", b"dot", linked=())
    emulator.seed_file("..", b"dotdot", linked=())
    assert ls(m.p("files")) == sorted(["a／b.txt", "x␀y.txt", "already‛／here.txt", "‛‛quoted.txt", "．", "．．"])
    assert ok("cat", m.p("files", "a／b.txt")) == b"slash"
    assert ok("cat", m.p("files", "x␀y.txt")) == b"nul"
    assert ok("cat", m.p("files", "already‛／here.txt")) == b"fullwidth"
    assert ok("cat", m.p("files", "‛‛quoted.txt")) == b"quote"
    assert ok("cat", m.p("files", "．")) == b"dot"
    assert ok("cat", m.p("files", "．．")) == b"dotdot"


def test_names_a_typed_name_is_unescaped_before_it_reaches_the_account(
    emulator: Emulator, m: Mount, tmp_path: Path
) -> None:
    (tmp_path / "src.pdf").write_bytes(b"%PDF act")
    ok("cp", tmp_path / "src.pdf", m.p("files", "Акт 02／2024.pdf"))
    f = by_name(emulator, "Акт 02/2024.pdf")
    assert emulator.content(f["uuid"]) == b"%PDF act"
    ok("mv", m.p("files", "Акт 02／2024.pdf"), m.p("files", "Акт ‛／ 03.pdf"))
    assert shown(emulator.file(f["uuid"])) == "Акт ／ 03.pdf"
    assert ls(m.p("files")) == ["Акт ‛／ 03.pdf"]


def test_names_duplicates_the_oldest_keeps_the_plain_name(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory
) -> None:
    old = emulator.seed_file("Счёт.pdf", b"old", created_at=1_600_000_000, linked=())
    new = emulator.seed_file("Счёт.pdf", b"new", created_at=1_700_000_000, linked=())
    mm = mount_factory(emulator, mnt, "--cache-ttl", "1")
    suffixed = f"Счёт ({new.replace('-', '')[:8]}).pdf"
    assert ls(mm.p("files")) == sorted(["Счёт.pdf", suffixed])
    assert ok("cat", mm.p("files", "Счёт.pdf")) == b"old"
    assert ok("cat", mm.p("files", suffixed)) == b"new"
    # a third one moves neither: a suffixed name depends only on the file's own uuid
    third = emulator.seed_file("Счёт.pdf", b"third", linked=())  # uploaded elsewhere, now
    time.sleep(1.2)
    assert ls(mm.p("files")) == sorted(["Счёт.pdf", suffixed, f"Счёт ({third.replace('-', '')[:8]}).pdf"])
    assert ok("cat", mm.p("files", suffixed)) == b"new"
    assert ok("cat", mm.p("files", "Счёт.pdf")) == b"old" and old


def test_names_a_service_name_over_255_bytes_is_cut_and_tagged(emulator: Emulator, m: Mount) -> None:
    long_name = "Договор поставки " * 12 + ".pdf"  # ~380 bytes of UTF-8
    uuid = emulator.seed_file(long_name, b"%PDF long", linked=())
    (name,) = ls(m.p("files"))
    assert len(name.encode()) <= 255
    assert name.endswith(f"({uuid.replace('-', '')[:8]}).pdf")
    assert name.startswith("Договор поставки ")
    assert ok("cat", m.p("files", name)) == b"%PDF long"


def test_names_a_created_name_over_255_bytes_or_not_utf8_is_refused(emulator: Emulator, m: Mount) -> None:
    long_name = "я" * 128 + ".txt"  # 260 bytes
    fails(sh("touch", m.p("files", long_name)), "File name too long")
    code = "os.close(os.open(os.fsencode(sys.argv[2]) + b'/bad\\xff.txt', os.O_CREAT | os.O_WRONLY))"
    assert pyerr(code, m.p("files")) == "EINVAL"
    assert account_names(emulator) == []


# === The tree: attributes ====================================================================================


def test_attributes_size_while_a_file_is_being_written_is_its_local_size(emulator: Emulator, m: Mount) -> None:
    code = (
        "import os, sys\n"
        "p = sys.argv[1]\n"
        "fd = os.open(p, os.O_CREAT | os.O_WRONLY)\n"
        "os.write(fd, b'x' * 70000)\n"
        "print(os.stat(p).st_size, os.fstat(fd).st_size)\n"
        "os.close(fd)\n"
    )
    out = run_py(code, m.p("files", "growing.bin"))
    assert out.split()[:2] == ["70000", "70000"]
    assert len(emulator.content(by_name(emulator, "growing.bin")["uuid"])) == 70000


def test_attributes_modes(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("live.txt", b"l", linked=(("leads", 3),))
    emulator.seed_file("dead.txt", b"d", trashed=True, linked=())
    assert stat(m.p("files", "live.txt"), "%a %F") == ["644", "regular", "file"]
    assert stat(m.p("leads", "3", "live.txt"), "%a") == ["644"]
    assert stat(m.p("trash", "dead.txt"), "%a") == ["444"]
    assert stat(m.p("versions", uuid, "v001-live.txt"), "%a") == ["444"]
    for folder in ("", "files", "trash", "versions", f"versions/{uuid}", "leads", "leads/3", "search"):
        assert stat(m.p(folder), "%a %F") == ["755", "directory"], folder


def test_attributes_owner_and_umask_options(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    uuid = emulator.seed_file("o.txt", b"o", linked=())
    emulator.seed_file("t.txt", b"t", trashed=True, linked=())
    mm = mount_factory(emulator, mnt, "--cache-ttl", "60", "--uid", "1234", "--gid", "2345", "--umask", "027")
    assert stat(mm.p("files", "o.txt"), "%u %g %a") == ["1234", "2345", "640"]
    assert stat(mm.p("trash", "t.txt"), "%a") == ["440"]
    assert stat(mm.p("versions", uuid, "v001-o.txt"), "%a") == ["440"]
    assert stat(mm.p("files"), "%u %g %a") == ["1234", "2345", "750"]


def test_attributes_one_inode_in_files_trash_and_an_entity_folder(emulator: Emulator, m: Mount) -> None:
    emulator.seed_file("same.pdf", b"s", linked=(("contacts", 8),))
    ino = stat(m.p("files", "same.pdf"), "%i")
    assert stat(m.p("contacts", "8", "same.pdf"), "%i") == ino
    assert stat(m.p("files", "same.pdf"), "%i") == ino  # stable
    ok("rm", m.p("files", "same.pdf"))
    assert stat(m.p("trash", "same.pdf"), "%i") == ino


# === The tree: extended attributes ===========================================================================


def test_xattrs_links_costs_one_request(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("x.pdf", b"x", linked=(("leads", 123), ("contacts", 45)))
    ls(m.p("files"))
    emulator.reset_log()
    links = ok("getfattr", "--only-values", "-n", "user.amo.links", m.p("files", "x.pdf")).decode()
    assert sorted(links.split()) == ["contacts/45", "leads/123"]
    assert requests(emulator) == [("GET", "account", f"/api/v4/files/{uuid}/links")]


def test_xattrs_are_read_only_setfattr_answers_enotsup(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("x.pdf", b"x", linked=())
    f = m.p("files", "x.pdf")
    fails(sh("setfattr", "-n", "user.amo.uuid", "-v", "other", f), "Operation not supported")
    fails(sh("setfattr", "-n", "user.note", "-v", "hello", f), "Operation not supported")
    fails(sh("setfattr", "-x", "user.amo.uuid", f), "Operation not supported")
    assert ok("getfattr", "--only-values", "-n", "user.amo.uuid", f).decode() == uuid


# === Operations: open, read ==================================================================================


READS = """
import os, sys, hashlib
fd = os.open(sys.argv[2], os.O_RDONLY)
for off in map(int, sys.argv[3:]):
    print(off, hashlib.sha256(os.pread(fd, 65536, off)).hexdigest())
os.close(fd)
"""


def pread_digests(path: Path, *offsets: int) -> dict[int, str]:
    res = subprocess.run(
        [sys.executable, "-c", READS, "", path, *map(str, offsets)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return {int(a): b for a, b in (line.split() for line in res.stdout.splitlines())}


def expect_digests(body: bytes, *offsets: int) -> dict[int, str]:
    return {o: hashlib.sha256(body[o : o + 65536]).hexdigest() for o in offsets}


def test_read_is_one_get_forward_jumps_read_through_big_or_backward_jumps_use_range(
    emulator: Emulator, m: Mount
) -> None:
    body = data(12 * MiB, seed=5)
    emulator.seed_file("big.bin", body, linked=())
    ls(m.p("files"))
    emulator.reset_log()
    offsets = (0, 1 * MiB, 9 * MiB, 5 * MiB)  # +1 MiB reads through; +8 MiB and back reopen with Range
    assert pread_digests(m.p("files", "big.bin"), *offsets) == expect_digests(body, *offsets)
    assert emulator.count("GET", host="storage", status=200) == 1
    assert emulator.count("GET", host="storage", status=206) == 2


def test_read_sequential_cat_is_one_get(emulator: Emulator, m: Mount) -> None:
    body = data(5 * MiB, seed=6)
    emulator.seed_file("seq.bin", body, linked=())
    ls(m.p("files"))
    emulator.reset_log()
    assert ok("cat", m.p("files", "seq.bin")) == body
    assert emulator.count("GET", "/download") == 1
    assert emulator.count("GET", host="storage") == 1


def test_read_a_server_ignoring_range_is_skipped_to_the_offset(
    emulator_factory: Any, mnt: Path, mount_factory: MountFactory
) -> None:
    emu = emulator_factory(range_support=False)
    body = data(10 * MiB, seed=7)
    emu.seed_file("norange.bin", body, linked=())
    mm = mount_factory(emu, mnt, "--cache-ttl", "60")
    offsets = (8 * MiB, 100)
    assert pread_digests(mm.p("files", "norange.bin"), *offsets) == expect_digests(body, *offsets)


DROP_AND_REREAD = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # forget the kernel's pages: the read reaches the mount
out = b""
while chunk := os.read(fd, 1 << 20):
    out += chunk
os.close(fd)
sys.stdout.buffer.write(out)
"""


def test_read_a_whole_read_is_kept_in_the_content_cache(emulator: Emulator, m: Mount, cache_dir: Path) -> None:
    body = data(2 * MiB, seed=8)
    uuid = emulator.seed_file("cached.bin", body, linked=())
    assert ok("cat", m.p("files", "cached.bin")) == body
    version = emulator.file(uuid)["version_uuid"]
    # kept when the handle is released, which the kernel sends after cat's close() has returned
    wait_until(lambda: (cache_dir / "content" / version).exists(), 10, "the content cache file")
    assert (cache_dir / "content" / version).read_bytes() == body
    emulator.reset_log()
    res = subprocess.run(
        [sys.executable, "-c", DROP_AND_REREAD, m.p("files", "cached.bin")], capture_output=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == body
    assert emulator.count("GET", host="storage") == 0 and emulator.count("GET", "/download") == 0


def test_read_a_new_version_never_serves_old_bytes(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    uuid = emulator.seed_file("v.txt", b"old bytes", linked=())
    mm = mount_factory(emulator, mnt, "--cache-ttl", "1")
    assert ok("cat", mm.p("files", "v.txt")) == b"old bytes"
    emulator.add_version(uuid, "v.txt", b"new bytes, longer")  # made elsewhere
    time.sleep(1.2)
    assert ok("cat", mm.p("files", "v.txt")) == b"new bytes, longer"


def test_read_a_dropped_download_resumes_with_range(
    emulator_factory: Any, mnt: Path, mount_factory: MountFactory
) -> None:
    emu = emulator_factory(drop_download_after=300_000, drop_downloads=2)
    body = data(3 * MiB, seed=9)
    emu.seed_file("flaky.bin", body, linked=())
    mm = mount_factory(emu, mnt, "--cache-ttl", "60")
    assert ok("cat", mm.p("files", "flaky.bin")) == body
    assert emu.count("GET", host="storage", status=206) >= 1


def test_read_a_download_dropping_more_than_three_times_is_eio(
    emulator_factory: Any, mnt: Path, mount_factory: MountFactory
) -> None:
    # every answer is cut before its first byte: no progress, so the fourth drop in a row fails the read
    emu = emulator_factory(drop_download_after=0, drop_downloads=100)
    emu.seed_file("broken.bin", data(3 * MiB, seed=10), linked=())
    mm = mount_factory(emu, mnt, "--cache-ttl", "60")
    fails(sh("cat", mm.p("files", "broken.bin"), timeout=120), "Input/output error")
    assert mm.proc.poll() is None


# === Operations: write and close =============================================================================


def run_py(code: str, *args: str | os.PathLike[str]) -> str:
    cmd = [sys.executable, "-c", code, *[os.fspath(a) for a in args]]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return str(res.stdout)


def test_write_fsync_uploads_before_close(emulator: Emulator, m: Mount) -> None:
    code = (
        "import os, sys\n"
        "fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY)\n"
        "os.write(fd, b'synced bytes')\n"
        "os.fsync(fd)\n"
        "print('synced', flush=True)\n"
        "sys.stdin.readline()\n"
        "os.close(fd)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, m.p("files", "journal.txt")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == b"synced\n"
        f = by_name(emulator, "journal.txt")  # in the account while the file is still open
        assert emulator.content(f["uuid"]) == b"synced bytes"
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert sessions(emulator) == 1  # close found nothing new to upload


def test_write_o_trunc_ftruncate_truncate_and_o_append(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("t.txt", b"0123456789", linked=())
    p = m.p("files", "t.txt")
    ok("truncate", "-s", "4", p)  # by path: uploaded at once
    assert emulator.content(uuid) == b"0123"
    ok("truncate", "-s", "6", p)
    assert emulator.content(uuid) == b"0123\0\0"
    run_py("import os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\nos.ftruncate(fd, 2)\nos.close(fd)\n", p)
    assert emulator.content(uuid) == b"01"
    run_py(
        "import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\nos.write(fd, b'ab')\nos.close(fd)\n", p
    )
    assert emulator.content(uuid) == b"01ab"
    run_py("import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)\nos.write(fd, b'z')\nos.close(fd)\n", p)
    assert emulator.content(uuid) == b"z"
    assert by_name(emulator, "t.txt")["uuid"] == uuid
    assert ok("cat", p) == b"z"


def test_write_two_handles_or_dup_upload_once(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("shared.txt", b"aaaa", linked=())
    ls(m.p("files"))
    emulator.reset_log()
    code = (
        "import os, sys\n"
        "a = os.open(sys.argv[1], os.O_RDWR)\n"
        "b = os.open(sys.argv[1], os.O_RDWR)\n"
        "c = os.dup(a)\n"
        "os.pwrite(a, b'X', 0)\n"
        "os.pwrite(b, b'Y', 3)\n"
        "os.close(c)\n"
        "os.close(a)\n"
        "os.close(b)\n"
    )
    run_py(code, m.p("files", "shared.txt"))
    assert emulator.content(uuid) == b"XaaY"
    assert sessions(emulator) == 1  # the first close uploaded both writes; the others had nothing new
    assert len(emulator.versions(uuid)) == 2


# === Operations: editor lock and temp files ==================================================================


@pytest.mark.parametrize(
    "name", ["~$report.docx", ".notes.txt.swp", "4913", "#draft#", "draft~", ".#draft", ".DS_Store", "Thumbs.db"]
)
def test_editor_local_only_names_never_reach_the_account(emulator: Emulator, m: Mount, name: str) -> None:
    p = m.p("files", name)
    p.write_bytes(b"local only")
    assert p.read_bytes() == b"local only"
    assert name in ls(m.p("files"))
    assert account_names(emulator) == []
    assert emulator.count("POST", "/v1.0/sessions") == 0
    p.unlink()
    assert name not in ls(m.p("files"))


def test_editor_rename_temp_onto_an_existing_file_is_a_new_version(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("report.txt", b"v1", linked=(("leads", 5),))
    ls(m.p("files"))
    tmp = m.p("files", ".report.txt.Ab12Cd")  # rsync's temp name
    tmp.write_bytes(b"v2 from rsync")
    ok("mv", tmp, m.p("files", "report.txt"))
    assert emulator.content(uuid) == b"v2 from rsync"
    assert len(emulator.versions(uuid)) == 2
    assert emulator.links("leads", 5) == [uuid]
    assert account_names(emulator) == ["report.txt"]
    assert sessions(emulator) == 1
    assert ls(m.p("files")) == ["report.txt"]


def test_editor_rename_temp_onto_a_new_name_is_uploaded_under_that_name(emulator: Emulator, m: Mount) -> None:
    tmp = m.p("files", ".goutputstream-XY12AB")  # GIO's temp name
    tmp.write_bytes(b"saved by gedit")
    ok("mv", tmp, m.p("files", "notes.txt"))
    assert account_names(emulator) == ["notes.txt"]
    assert emulator.content(by_name(emulator, "notes.txt")["uuid"]) == b"saved by gedit"


def test_editor_rename_temp_never_renamed_is_uploaded_under_its_own_name(emulator: Emulator, m: Mount) -> None:
    m.p("files", "video.part").write_bytes(b"partial download")
    assert account_names(emulator) == []  # waits for its rename
    wait_until(lambda: account_names(emulator) == ["video.part"], 10, "the temp file to be uploaded as is")
    assert emulator.content(by_name(emulator, "video.part")["uuid"]) == b"partial download"


# === Operations: rename (mv) =================================================================================


def test_rename_changing_the_extension_is_a_new_version_carrying_the_name(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("notes.txt", b"# notes", linked=(("leads", 4),))
    ok("mv", m.p("files", "notes.txt"), m.p("files", "notes.md"))
    f = emulator.file(uuid)
    assert shown(f) == "notes.md"
    assert emulator.content(uuid) == b"# notes"
    assert len(emulator.versions(uuid)) == 2
    assert emulator.links("leads", 4) == [uuid]
    assert account_names(emulator) == ["notes.md"]
    assert ls(m.p("files")) == ["notes.md"]


def test_rename_onto_an_existing_name_makes_a_version_of_the_target(emulator: Emulator, m: Mount) -> None:
    a = emulator.seed_file("a.txt", b"bytes of a", linked=())
    b = emulator.seed_file("b.txt", b"bytes of b", linked=(("leads", 6),))
    ok("mv", m.p("files", "a.txt"), m.p("files", "b.txt"))
    assert emulator.content(b) == b"bytes of a"
    assert len(emulator.versions(b)) == 2
    assert emulator.links("leads", 6) == [b]
    assert emulator.file(a)["is_trashed"] is True
    assert ls(m.p("files")) == ["b.txt"]
    assert ls(m.p("trash")) == ["a.txt"]


def test_rename_into_trash_is_rm(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("junk.txt", b"j", linked=())
    ls(m.p("files"))
    emulator.reset_log()
    ok("mv", m.p("files", "junk.txt"), f"{m.p('trash')}/")
    assert changes(emulator) == [("DELETE", "/v1.0/files")]
    assert emulator.file(uuid)["is_trashed"] is True
    assert ls(m.p("trash")) == ["junk.txt"]


def test_rename_from_a_lead_into_files_unlinks_and_renames(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("deal.pdf", b"deal", linked=(("leads", 11),))
    ok("mv", m.p("leads", "11", "deal.pdf"), m.p("files", "deal 2024.pdf"))
    f = emulator.file(uuid)
    assert emulator.links("leads", 11) == []
    assert f["is_trashed"] is False and shown(f) == "deal 2024.pdf"
    assert ls(m.p("files")) == ["deal 2024.pdf"]
    assert ls(m.p("leads", "11")) == []


def test_rename_from_a_lead_into_files_under_the_same_name_is_the_same_file(emulator: Emulator, m: Mount) -> None:
    """leads/ID/X and files/X are one inode: mv refuses ("are the same file") and rename(2) is the kernel's no-op
    (it never reaches the mount). Nothing changes in the account; `rm leads/ID/X` is how to unlink."""
    uuid = emulator.seed_file("deal.pdf", b"deal", linked=(("leads", 12),))
    fails(sh("mv", m.p("leads", "12", "deal.pdf"), f"{m.p('files')}/"), "are the same file")
    assert (
        pyerr("os.rename(sys.argv[2], sys.argv[3])", m.p("leads", "12", "deal.pdf"), m.p("files", "deal.pdf")) == "OK"
    )
    assert emulator.links("leads", 12) == [uuid]
    f = emulator.file(uuid)
    assert f["is_trashed"] is False and shown(f) == "deal.pdf"
    assert len(emulator.versions(uuid)) == 1 and emulator.content(uuid) == b"deal"
    assert ls(m.p("files")) == ["deal.pdf"]
    assert ls(m.p("leads", "12")) == ["deal.pdf"]


def test_rename_a_version_anywhere_but_its_file_is_einval(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("v.txt", b"one", linked=(("leads", 13),))
    emulator.add_version(uuid, "v.txt", b"two")
    v = m.p("versions", uuid, "v001-v.txt")
    mv = "os.rename(sys.argv[2], sys.argv[3])"
    assert pyerr(mv, v, m.p("files", "other name.txt")) == "EINVAL"
    assert pyerr(mv, v, m.p("leads", "13", "v001-v.txt")) == "EINVAL"
    assert pyerr(mv, v, m.p("trash", "v001-v.txt")) == "EINVAL"
    assert emulator.file(uuid)["version_uuid"] == emulator.versions(uuid)[0]["uuid"]  # still "two"
    assert emulator.content(uuid) == b"two"


def test_rename_anything_else_is_eperm(emulator: Emulator, m: Mount) -> None:
    emulator.seed_file("dead.txt", b"d", trashed=True, linked=())
    emulator.seed_file("live.txt", b"l", linked=(("leads", 14),))
    mv = "os.rename(sys.argv[2], sys.argv[3])"
    assert pyerr(mv, m.p("trash", "dead.txt"), m.p("leads", "14", "dead.txt")) == "EPERM"
    assert pyerr(mv, m.p("files"), m.p("leads", "14", "files")) == "EPERM"
    assert pyerr(mv, m.p("leads", "14", "live.txt"), m.p("trash", "live.txt")) == "EPERM"
    assert emulator.links("leads", 14) == [by_name(emulator, "live.txt")["uuid"]]
    assert by_name(emulator, "dead.txt", trashed=True)


RENAMEAT2 = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), int(sys.argv[3]))
print("OK" if r == 0 else errno.errorcode[ctypes.get_errno()])
"""


def renameat2(src: Path, dst: Path, flags: int) -> str:
    res = subprocess.run(
        [sys.executable, "-c", RENAMEAT2, src, dst, str(flags)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_rename_noreplace_is_eexist_and_exchange_is_enotsup(emulator: Emulator, m: Mount) -> None:
    a = emulator.seed_file("a.txt", b"a", linked=())
    b = emulator.seed_file("b.txt", b"b", linked=())
    assert renameat2(m.p("files", "a.txt"), m.p("files", "b.txt"), 1) == "EEXIST"  # RENAME_NOREPLACE
    assert renameat2(m.p("files", "a.txt"), m.p("files", "b.txt"), 2) in ("ENOTSUP", "EOPNOTSUPP")  # EXCHANGE
    assert emulator.content(a) == b"a" and emulator.content(b) == b"b"
    assert renameat2(m.p("files", "a.txt"), m.p("files", "c.txt"), 1) == "OK"
    assert shown(emulator.file(a)) == "c.txt"


# === Operations: link, mkdir/rmdir, chmod/chown/utimens, statfs ==============================================


def test_link_within_files_is_eperm(emulator: Emulator, m: Mount) -> None:
    emulator.seed_file("one.txt", b"1", linked=())
    fails(sh("ln", m.p("files", "one.txt"), m.p("files", "two.txt")), "Operation not permitted")
    assert account_names(emulator) == ["one.txt"]


def test_rmdir_is_eperm(emulator: Emulator, m: Mount) -> None:
    emulator.seed_file("x.txt", b"x", linked=(("leads", 15),))
    ls(m.p("leads", "15"))
    for folder in ("files", "trash", "leads/15", "search"):
        fails(sh("rmdir", m.p(folder)), "Operation not permitted")
    assert emulator.links("leads", 15) == [by_name(emulator, "x.txt")["uuid"]]


def test_chmod_chown_utimens_are_accepted(emulator: Emulator, m: Mount) -> None:
    """Mode and owner are accepted and not kept; an mtime set through the mount is kept for that version (so
    rsync -a and cp -p see their own times); ctime stays the service's created_at."""
    uuid = emulator.seed_file("kept.txt", b"k", created_at=1_600_000_000, linked=())
    p = m.p("files", "kept.txt")
    ok("chmod", "600", p)
    ok("chown", f"{os.getuid()}:{os.getgid()}", p)
    ok("touch", "-m", "-d", "@981173106", p)
    assert stat(p, "%a %u %Y %Z") == ["644", str(os.getuid()), "981173106", "1600000000"]
    assert emulator.content(uuid) == b"k" and len(emulator.versions(uuid)) == 1
    assert sessions(emulator) == 0


def test_statfs_shows_the_account_quota(emulator_factory: Any, mnt: Path, mount_factory: MountFactory) -> None:
    emu = emulator_factory(storage_limit=8 * 2**30)
    emu.seed_file("used.bin", data(400_000), linked=())
    mm = mount_factory(emu, mnt, "--cache-ttl", "60")
    st = os.statvfs(mm.path)
    assert st.f_blocks * st.f_frsize == 8 * 2**30
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    assert 400_000 - st.f_frsize < used <= 400_000 + st.f_frsize
    assert "amofs" in ok("df", "-P", mm.path).decode()


def test_statfs_without_stats_is_a_1_pib_empty_disk(
    emulator_factory: Any, mnt: Path, mount_factory: MountFactory
) -> None:
    emu = emulator_factory(stats_endpoint=False)
    mm = mount_factory(emu, mnt, "--cache-ttl", "60")
    st = os.statvfs(mm.path)
    assert st.f_blocks * st.f_frsize == PiB
    assert st.f_bfree == st.f_blocks and st.f_bavail == st.f_blocks


# === Folders =================================================================================================


def test_versions_root_costs_no_extra_request(emulator: Emulator, m: Mount) -> None:
    multi = emulator.seed_file("multi.txt", b"1", linked=())
    emulator.add_version(multi, "multi.txt", b"2")
    emulator.seed_file("single.txt", b"1", linked=())
    ls(m.p("files"))
    emulator.reset_log()
    assert ls(m.p("versions")) == [multi]
    assert requests(emulator) == []


def test_entity_root_lists_the_entities_visited(emulator: Emulator, m: Mount) -> None:
    emulator.add_entity("leads", 21, "A")
    emulator.add_entity("leads", 22, "B")
    assert ls(m.p("leads")) == []
    ls(m.p("leads", "22"))
    assert ls(m.p("leads")) == ["22"]


def test_search_root_lists_the_terms_searched(emulator: Emulator, m: Mount) -> None:
    emulator.seed_file("Договор 1.pdf", b"1", linked=())
    assert ls(m.p("search")) == []
    assert ls(m.p("search", "Договор")) == ["Договор 1.pdf"]
    assert ls(m.p("search")) == ["Договор"]


# === Consistency =============================================================================================


def test_consistency_a_change_made_elsewhere_shows_after_the_ttl(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory
) -> None:
    mm = mount_factory(emulator, mnt, "--cache-ttl", "1")
    assert ls(mm.p("files")) == []
    emulator.seed_file("from the web.txt", b"w", linked=())
    time.sleep(1.2)
    assert ls(mm.p("files")) == ["from the web.txt"]


def test_consistency_a_file_copied_in_is_listed_at_once(emulator: Emulator, m: Mount, tmp_path: Path) -> None:
    emulator.seed_file("before.txt", b"b", linked=())
    assert ls(m.p("files")) == ["before.txt"]
    (tmp_path / "new.txt").write_bytes(b"n")
    ok("cp", tmp_path / "new.txt", m.p("files", "new.txt"))
    emulator.reset_log()
    assert ls(m.p("files")) == ["before.txt", "new.txt"]
    assert stat(m.p("files", "new.txt"), "%s") == ["1"]
    assert requests(emulator) == []


def test_consistency_stat_and_ls_l_of_a_listed_folder_cost_no_request(emulator: Emulator, m: Mount) -> None:
    for i in range(5):
        emulator.seed_file(f"f{i}.txt", b"x" * i, linked=(("companies", 30),))
    ok("ls", "-l", m.p("files"))
    emulator.reset_log()
    ok("ls", "-l", m.p("files"))
    for i in range(5):
        stat(m.p("files", f"f{i}.txt"), "%s %Y")
    assert requests(emulator) == []


def test_consistency_ls_l_of_an_entity_folder_twice_costs_no_request(emulator: Emulator, m: Mount) -> None:
    """A file manager opening a lead's folder first (files/ never listed)."""
    for i in range(5):
        emulator.seed_file(f"f{i}.txt", b"x" * i, linked=(("companies", 31),))
    emulator.reset_log()
    ok("ls", "-l", m.p("companies", "31"))
    first = requests(emulator)
    assert len(first) <= 2, first  # the links, then the models in one batch: not one request per file
    emulator.reset_log()
    ok("ls", "-l", m.p("companies", "31"))
    stat(m.p("companies", "31", "f3.txt"), "%s")
    assert requests(emulator) == []


# === Errors ==================================================================================================


def test_errors_bad_request_is_einval(emulator: Emulator, m: Mount) -> None:
    uuid = emulator.seed_file("r.txt", b"r", linked=())
    ls(m.p("files"))
    emulator.options.fail_requests_match = f"^/v1\\.0/files/{uuid}$"
    emulator.options.fail_requests_status = 400
    emulator.options.fail_requests = 1
    assert pyerr("os.rename(sys.argv[2], sys.argv[3])", m.p("files", "r.txt"), m.p("files", "s.txt")) == "EINVAL"
    assert shown(emulator.file(uuid)) == "r.txt"
    assert m.proc.poll() is None


def test_errors_token_rejected_is_eacces(emulator: Emulator, m: Mount) -> None:
    emulator.add_entity("leads", 40, "L")
    emulator.revoke_token(emulator.token)
    assert pyerr("os.listdir(sys.argv[2])", m.p("leads", "40")) == "EACCES"
    assert m.proc.poll() is None


def test_errors_malformed_answer_is_eio(emulator: Emulator, m: Mount) -> None:
    emulator.add_entity("leads", 41, "L")
    emulator.seed_file("x.txt", b"x", linked=(("leads", 41),))
    emulator.options.garble_match = "^/api/v4/leads/41/files$"
    emulator.options.garble_next = 100
    assert pyerr("os.listdir(sys.argv[2])", m.p("leads", "41")) == "EIO"
    emulator.options.garble_next = 0
    assert m.proc.poll() is None
    assert ls(m.p("leads", "41")) == ["x.txt"]  # no error ends the mount, nor sticks
