"""Real tools on a real mount (``ls``, ``stat``, ``cat``, ``cp``, ``mv``, ``rm``, ``ln``, ``rsync -a``, ``gio copy``,
``dd conv=notrunc``, ``getfattr``, ``df``), each checked against what the emulator stored. The tools run as
subprocesses with timeouts; the mount is ``amofs mount --foreground`` (see conftest.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from mounthelpers import Mount, MountFactory, ok, sh

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

pytestmark = pytest.mark.mount


def shown(f: dict[str, Any]) -> str:
    ext = (f.get("metadata") or {}).get("extension") or ""
    return f"{f['name']}.{ext}" if ext else str(f["name"])


def by_name(emu: Emulator, name: str, *, trashed: bool | None = False) -> dict[str, Any]:
    found = [f for f in emu.files(trashed=trashed) if shown(f) == name]
    assert len(found) == 1, f"{name!r}: {[shown(f) for f in emu.files(trashed=trashed)]}"
    return found[0]


def names(emu: Emulator, *, trashed: bool | None = False) -> list[str]:
    return sorted(shown(f) for f in emu.files(trashed=trashed))


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def data(n: int, seed: int = 0) -> bytes:
    """n deterministic pseudo-random bytes."""
    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


# --- reading ---------------------------------------------------------------------------------------------


def test_root_shows_the_tree(mounted: Mount) -> None:
    listing = ok("ls", mounted.path).decode().split()
    for folder in ("files", "trash", "versions", "leads", "contacts", "companies", "customers", "search"):
        assert folder in listing


def test_ls_and_stat_show_the_service_fields(emulator: Emulator, mounted: Mount) -> None:
    uuid = emulator.seed_file("report.pdf", data(1234), created_at=1_600_000_000)
    model = emulator.file(uuid)
    line = ok("ls", "-l", mounted.p("files")).decode()
    assert "report.pdf" in line and " 1234 " in line
    size, mtime, ctime, mode = ok("stat", "-c", "%s %Y %Z %a", mounted.p("files", "report.pdf")).decode().split()
    assert int(size) == 1234
    assert int(mtime) == model["updated_at"]
    assert int(ctime) == model["created_at"] == 1_600_000_000
    assert int(mode, 8) & 0o600 == 0o600
    owner = ok("stat", "-c", "%u %g", mounted.p("files", "report.pdf")).decode().split()
    assert owner == [str(os.getuid()), str(os.getgid())]


def test_cat_streams_a_large_file(emulator: Emulator, mounted: Mount) -> None:
    body = data(3 * 2**20 + 17, seed=1)
    emulator.seed_file("big.bin", body)
    out = ok("cat", mounted.p("files", "big.bin"))
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(body).hexdigest()


def test_cp_out_of_the_mount(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    emulator.seed_file("Акт 01/2024.pdf", b"%PDF act")
    ok("cp", mounted.p("files", "Акт 01／2024.pdf"), tmp_path / "act.pdf")
    assert (tmp_path / "act.pdf").read_bytes() == b"%PDF act"


def test_missing_file_is_enoent_and_the_mount_lives_on(mounted: Mount) -> None:
    res = sh("cat", mounted.p("files", "no-such-file.txt"))
    assert res.returncode != 0 and b"No such file or directory" in res.stderr
    assert mounted.proc.poll() is None
    ok("ls", mounted.p("files"))


def test_xattrs_carry_the_uuids(emulator: Emulator, mounted: Mount) -> None:
    needs("getfattr")
    uuid = emulator.seed_file("x.txt", b"x")
    version = emulator.file(uuid)["version_uuid"]
    path = mounted.p("files", "x.txt")
    assert ok("getfattr", "--only-values", "-n", "user.amo.uuid", path).decode() == uuid
    assert ok("getfattr", "--only-values", "-n", "user.amo.version_uuid", path).decode() == version
    assert b"user.amo.uuid" in ok("getfattr", "-d", "-m", "user.amo", path)
    res = sh("getfattr", "-n", "user.nothing", path)
    assert res.returncode != 0 and b"No such attribute" in res.stderr


def test_ls_l_asks_the_kernel_for_no_xattr_per_file(emulator: Emulator, mounted: Mount) -> None:
    """`ls -l` asks every file for security.selinux and system.posix_acl_access; each such getxattr is a FUSE
    round trip. Those namespaces answer ENOTSUP, after which coreutils stops asking for the device: a folder
    of 60 files costs at most 2 getxattr calls, not 120."""
    needs("strace")
    emulator.seed_many([(f"f{i:03d}.txt", b"x") for i in range(60)])
    trace = ok("strace", "-f", "-e", "trace=getxattr,lgetxattr", "-o", "/dev/stdout", "ls", "-l", mounted.p("files"))
    calls = [line for line in trace.decode().splitlines() if "getxattr(" in line]
    assert 1 <= len(calls) <= 2, calls
    assert all("ENOTSUP" in c or "EOPNOTSUPP" in c for c in calls), calls
    res = sh("getfattr", "-n", "security.selinux", mounted.p("files", "f000.txt"))
    assert res.returncode != 0 and b"Operation not supported" in res.stderr
    assert ok("getfattr", "--only-values", "-n", "user.amo.uuid", mounted.p("files", "f000.txt"))


def test_df_works(mounted: Mount) -> None:
    out = ok("df", "-P", mounted.path).decode()
    assert "amofs" in out


# --- writing -------------------------------------------------------------------------------------------------


def test_cp_a_new_file_in(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    body = data(1_300_000, seed=2)  # several upload parts (max_part_size 512 KiB)
    (tmp_path / "new.bin").write_bytes(body)
    ok("cp", tmp_path / "new.bin", mounted.p("files", "new.bin"))
    f = by_name(emulator, "new.bin")  # close() returned: the upload is complete
    assert emulator.content(f["uuid"]) == body
    assert "new.bin" in ok("ls", mounted.p("files")).decode().split()
    assert mounted.p("files", "new.bin").stat().st_size == len(body)


def test_cp_an_empty_file_in(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    ok("cp", tmp_path / "empty.txt", mounted.p("files", "empty.txt"))
    assert emulator.content(by_name(emulator, "empty.txt")["uuid"]) == b""


def test_cp_over_an_existing_file_adds_a_version(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    uuid = emulator.seed_file("contract.txt", b"first draft")
    old_version = emulator.file(uuid)["version_uuid"]
    (tmp_path / "c.txt").write_bytes(b"signed version")
    ok("cp", tmp_path / "c.txt", mounted.p("files", "contract.txt"))
    f = by_name(emulator, "contract.txt")
    assert f["uuid"] == uuid
    assert f["version_uuid"] != old_version
    assert emulator.content(uuid) == b"signed version"
    assert len(emulator.versions(uuid)) == 2
    assert mounted.p("files", "contract.txt").read_bytes() == b"signed version"
    listing = ok("ls", mounted.p("versions", uuid)).decode().split()
    assert len([n for n in listing if n.startswith("v0")]) == 2


def test_cp_p_and_chmod_are_accepted(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    src = tmp_path / "keep.txt"
    src.write_bytes(b"times and modes")
    os.utime(src, (1_500_000_000, 1_500_000_000))
    ok("cp", "-p", src, mounted.p("files", "keep.txt"))
    ok("chmod", "600", mounted.p("files", "keep.txt"))
    ok("touch", mounted.p("files", "keep.txt"))
    assert emulator.content(by_name(emulator, "keep.txt")["uuid"]) == b"times and modes"


def test_dd_conv_notrunc_patches_in_place(emulator: Emulator, mounted: Mount) -> None:
    uuid = emulator.seed_file("patch.txt", b"0123456789")
    res = sh(
        "dd", f"of={mounted.p('files', 'patch.txt')}", "bs=1", "seek=3", "conv=notrunc", "status=none", input=b"XY"
    )
    assert res.returncode == 0, res.stderr
    assert emulator.content(uuid) == b"012XY56789"
    assert len(emulator.versions(uuid)) == 2


def test_append_with_shell_redirection(emulator: Emulator, mounted: Mount) -> None:
    uuid = emulator.seed_file("log.txt", b"line 1\n")
    res = sh("sh", "-c", f"echo 'line 2' >> '{mounted.p('files', 'log.txt')}'")
    assert res.returncode == 0, res.stderr
    assert emulator.content(uuid) == b"line 1\nline 2\n"


def test_rsync_a_copies_a_tree_without_temp_names(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    needs("rsync")
    src = tmp_path / "src"
    src.mkdir()
    bodies = {f"doc{i}.txt": data(10_000 * (i + 1), seed=i) for i in range(3)}
    for name, body in bodies.items():
        (src / name).write_bytes(body)
    res = sh("rsync", "-a", f"{src}/", f"{mounted.p('files')}/", timeout=120)
    assert res.returncode == 0, res.stderr
    for name, body in bodies.items():
        assert emulator.content(by_name(emulator, name)["uuid"]) == body
    assert not [n for n in names(emulator, trashed=None) if n.startswith(".")], "an rsync temp name was uploaded"
    # a second run finds nothing to do and uploads nothing
    before = len(emulator.files(trashed=None))
    res = sh("rsync", "-a", f"{src}/", f"{mounted.p('files')}/", timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(emulator.files(trashed=None)) == before


def test_gio_copy(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    needs("gio")
    (tmp_path / "gio.txt").write_bytes(b"copied by gio")
    res = sh("gio", "copy", tmp_path / "gio.txt", mounted.p("files", "gio.txt"))
    assert res.returncode == 0, res.stderr
    assert emulator.content(by_name(emulator, "gio.txt")["uuid"]) == b"copied by gio"


def test_editor_lock_files_stay_local(emulator: Emulator, mounted: Mount) -> None:
    lock = mounted.p("files", ".~lock.report.odt#")
    lock.write_bytes(b"user,host")
    assert lock.read_bytes() == b"user,host"
    assert ".~lock.report.odt#" in os.listdir(mounted.p("files"))
    assert not [n for n in names(emulator, trashed=None) if "lock" in n]
    lock.unlink()


# --- rename, delete, link ------------------------------------------------------------------------------------


def test_mv_renames_the_same_file(emulator: Emulator, mounted: Mount) -> None:
    uuid = emulator.seed_file("old name.txt", b"same bytes")
    ok("mv", mounted.p("files", "old name.txt"), mounted.p("files", "new name.txt"))
    f = emulator.file(uuid)
    assert shown(f) == "new name.txt"
    assert sorted(os.listdir(mounted.p("files"))) == ["new name.txt"]


def test_rm_moves_to_the_trash_and_mv_restores(emulator: Emulator, mounted: Mount) -> None:
    uuid = emulator.seed_file("doomed.txt", b"keep me")
    ok("rm", mounted.p("files", "doomed.txt"))
    assert emulator.file(uuid)["is_trashed"] is True
    assert "doomed.txt" not in os.listdir(mounted.p("files"))
    assert "doomed.txt" in os.listdir(mounted.p("trash"))
    assert mounted.p("trash", "doomed.txt").read_bytes() == b"keep me"
    ok("mv", mounted.p("trash", "doomed.txt"), mounted.p("files", "doomed.txt"))
    assert emulator.file(uuid)["is_trashed"] is False
    assert "doomed.txt" in os.listdir(mounted.p("files"))


def test_ln_links_a_file_to_a_lead(emulator: Emulator, mounted: Mount) -> None:
    emulator.add_entity("leads", 4242, "Big deal")
    uuid = emulator.seed_file("offer.pdf", b"%PDF offer", linked=())
    ok("ln", mounted.p("files", "offer.pdf"), mounted.p("leads", "4242", "offer.pdf"))
    assert uuid in emulator.links("leads", 4242)
    assert "offer.pdf" in os.listdir(mounted.p("leads", "4242"))
    ok("rm", mounted.p("leads", "4242", "offer.pdf"))
    assert uuid not in emulator.links("leads", 4242)
    assert emulator.file(uuid)["is_trashed"] is False


def test_folders_and_symlinks_are_refused(mounted: Mount) -> None:
    res = sh("mkdir", mounted.p("files", "folder"))
    assert res.returncode != 0 and b"Operation not permitted" in res.stderr
    res = sh("ln", "-s", "/etc/hostname", mounted.p("files", "link"))
    assert res.returncode != 0 and b"Operation not permitted" in res.stderr
    res = sh("touch", mounted.p("versions", "x"))
    assert res.returncode != 0
    assert mounted.proc.poll() is None


# --- errors reach the tools as errno values, and the mount lives on -----------------------------------------


@pytest.mark.slow  # the client's back-off through every retry: about 12 s
def test_failed_upload_fails_close_and_leaves_no_file(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    (tmp_path / "doomed.bin").write_bytes(data(100_000))
    emulator.options.fail_parts = 1000  # every part answers 500, through every retry
    try:
        res = sh("cp", tmp_path / "doomed.bin", mounted.p("files", "doomed.bin"), timeout=120)
    finally:
        emulator.options.fail_parts = 0
    assert res.returncode != 0
    assert b"Input/output error" in res.stderr
    assert "doomed.bin" not in names(emulator, trashed=None)
    assert mounted.proc.poll() is None


def test_file_over_max_file_size_is_efbig(emulator: Emulator, mounted: Mount, tmp_path: Path) -> None:
    emulator.options.max_file_size = 50_000
    (tmp_path / "huge.bin").write_bytes(data(60_000))
    res = sh("cp", tmp_path / "huge.bin", mounted.p("files", "huge.bin"), timeout=120)
    assert res.returncode != 0
    assert b"File too large" in res.stderr
    assert "huge.bin" not in names(emulator, trashed=None)


def test_missing_scope_is_eacces(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    emulator.add_token("no-delete-token", {"files"})
    uuid = emulator.seed_file("protected.txt", b"p")
    m = mount_factory(emulator, mnt, token="no-delete-token")
    res = sh("rm", m.p("files", "protected.txt"))
    assert res.returncode != 0
    assert b"Permission denied" in res.stderr
    assert emulator.file(uuid)["is_trashed"] is False
    assert m.proc.poll() is None
