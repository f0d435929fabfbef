"""The issue-3 list on a real mount: cp in at the part-size boundaries (byte for byte in the emulator's
storage, with exact request counts), cp over an existing file, 4 concurrent cp, cat and sha256 of every demo
file, and a second ls -l that makes no request at all."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mounthelpers import Mount, MountFactory, ok, shown, wait_until

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

pytestmark = pytest.mark.mount

PART = 524288  # the emulator's max_part_size


def blob(n: int, seed: int) -> bytes:
    return (hashlib.sha256(seed.to_bytes(4, "little")).digest() * (n // 32 + 1))[:n]


@pytest.fixture
def m(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> Mount:
    return mount_factory(emulator, mnt, "--cache-ttl", "60")


@pytest.mark.parametrize("size", [0, 1, PART, PART + 1, 5 * 1024 * 1024])
def test_cp_in_at_part_boundaries(emulator: Emulator, m: Mount, tmp_path: Path, size: int) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(blob(size, size))
    emulator.reset_log()
    ok("cp", src, m.p("files", "in.bin"))
    (f,) = [f for f in emulator.files(trashed=False) if shown(f) == "in.bin"]
    assert emulator.content(f["uuid"]) == src.read_bytes()
    parts = max(1, -(-size // PART))
    assert emulator.count(method="POST", path_prefix="/v1.0/sessions") == 1 + parts  # session + parts
    assert emulator.count(method="POST", host="upload") == parts


def test_cp_over_an_existing_file_keeps_its_uuid(emulator: Emulator, m: Mount, tmp_path: Path) -> None:
    uuid = emulator.seed_file("contract.pdf", b"v1", linked=())
    ok("ls", m.p("files"))
    src = tmp_path / "v2.pdf"
    src.write_bytes(b"version two")
    ok("cp", src, m.p("files", "contract.pdf"))
    assert [f["uuid"] for f in emulator.files(trashed=False)] == [uuid]
    assert emulator.content(uuid) == b"version two"
    assert len(emulator.versions(uuid)) == 2


def test_four_concurrent_cp(emulator: Emulator, m: Mount, tmp_path: Path) -> None:
    srcs = []
    for i in range(4):
        p = tmp_path / f"c{i}.bin"
        p.write_bytes(blob(700_000 + i, 100 + i))
        srcs.append(p)
    procs = [subprocess.Popen(["cp", str(p), str(m.p("files", p.name))]) for p in srcs]
    assert [pr.wait(timeout=120) for pr in procs] == [0, 0, 0, 0]
    stored = {shown(f): emulator.content(f["uuid"]) for f in emulator.files(trashed=False)}
    assert stored == {p.name: p.read_bytes() for p in srcs}


def test_every_demo_file_reads_byte_for_byte(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    from amofs.emulator.demo import seed_demo

    seed_demo(emulator)
    mm = mount_factory(emulator, mnt, "--cache-ttl", "60")
    live = emulator.files(trashed=False)
    assert len(live) >= 20
    listed = sorted(os.listdir(mm.p("files")))
    assert len(listed) == len(live)  # duplicates shown under distinct names
    by_digest = sorted(hashlib.sha256(emulator.content(f["uuid"])).hexdigest() for f in live)
    read = sorted(hashlib.sha256(mm.p("files", n).read_bytes()).hexdigest() for n in listed)
    assert read == by_digest
    out = ok("sha256sum", *[mm.p("files", n) for n in listed]).decode().splitlines()
    assert sorted(line.split()[0] for line in out) == by_digest


def test_second_ls_l_makes_no_request(emulator: Emulator, m: Mount) -> None:
    for i in range(40):
        emulator.seed_file(f"f{i:02d}.txt", blob(i, i), linked=())
    # the quota df shows is fetched once in the background at start, not by the commands below
    wait_until(lambda: emulator.count(path_prefix="/v1.0/files/stats") == 1, 10, "the quota prefetch")
    emulator.reset_log()
    first = ok("ls", "-l", m.p("files"))
    assert emulator.count() == 1, [(r.method, r.path, r.query) for r in emulator.log]  # one listing page
    emulator.reset_log()
    assert ok("ls", "-l", m.p("files")) == first
    ok("stat", *[m.p("files", f"f{i:02d}.txt") for i in range(40)])
    ok("find", m.p("files"), "-type", "f")
    assert emulator.count() == 0, [(r.method, r.path, r.query) for r in emulator.log]


def test_remount_answers_ls_after_at_most_two_requests(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory
) -> None:
    import time

    from amofs.emulator.store import SeedItem

    hour_ago = int(time.time()) - 3600  # older than the incremental sync's clock-skew margin
    emulator.seed_many([SeedItem(f"r{i:04d}.txt", b"x", linked=(), created_at=hour_ago) for i in range(300)])
    first = mount_factory(emulator, mnt, "--cache-ttl", "60")  # the same cache dir for both mounts (mount_env)
    listed = ok("ls", "-l", first.p("files"))
    first.unmount()
    emulator.reset_log()
    again = mount_factory(emulator, mnt, "--cache-ttl", "60")
    assert ok("ls", "-l", again.p("files")) == listed
    log = [(r.method, r.path, r.query) for r in emulator.log]
    assert len(log) <= 2, log  # the changed files since the last sync, and the trash
    assert all("updated_at" in q or "deleted" in q for _, _, q in log), log


def test_remount_with_a_refused_token_is_one_line(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory, tmp_path: Path
) -> None:
    emulator.seed_file("a.txt", b"a", linked=())
    first = mount_factory(emulator, mnt, "--cache-ttl", "60")
    ok("ls", first.p("files"))
    first.unmount()
    bad = mount_factory(emulator, mnt, token="not-a-valid-token", wait=False)
    assert bad.proc.wait(timeout=60) != 0
    out = bad.output.read_text()
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("amofs: error:")]
    assert len(errors) == 1 and "token" in errors[0], out


def test_a_second_mount_of_the_same_account_and_cache_dir_is_refused(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory, tmp_path: Path
) -> None:
    """Mounting one profile twice (fstab and by hand, or two mount points) would share one cache dir: the
    second mount says so in one line, and the first goes on serving."""
    emulator.seed_file("a.txt", b"a", linked=())
    first = mount_factory(emulator, mnt)
    other = tmp_path / "mnt2"
    other.mkdir()
    second = mount_factory(emulator, other, wait=False)
    assert second.proc.wait(timeout=60) != 0
    out = second.output.read_text()
    errors = [line for line in out.splitlines() if line.startswith("amofs: error:")]
    assert len(errors) == 1 and "in use by another amofs mount" in errors[0] and "--cache-dir" in errors[0], out
    assert "Traceback" not in out
    assert ok("cat", first.p("files", "a.txt")) == b"a"
    ok("ls", first.p("files"))


def test_a_poll_makes_the_kernel_forget_files_changed_elsewhere(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory
) -> None:
    """With --poll-interval, news of a change made elsewhere comes from the background poll, not from a kernel
    request, so the kernel still held the old size (a longer new version was read cut to it) and the names
    (a file deleted elsewhere still opened, minutes later). Found by a new user's trial."""
    import httpx

    grows = emulator.seed_file("grows.txt", b"short", linked=())
    goes = emulator.seed_file("goes.txt", b"bye", linked=())
    m = mount_factory(emulator, mnt, "--cache-ttl", "300", "--poll-interval", "1")
    assert ok("cat", m.p("files", "grows.txt")) == b"short"
    assert ok("cat", m.p("files", "goes.txt")) == b"bye"
    longer = b"a much longer second version"
    emulator.add_version(grows, "grows.txt", longer)
    with httpx.Client(timeout=10) as web:
        h = {"Authorization": f"Bearer {emulator.token}"}
        web.request("DELETE", f"{emulator.drive_url}/v1.0/files", json=[{"uuid": goes}], headers=h).raise_for_status()
    time.sleep(2.5)  # the poll (every second) sees both; nothing of the kernel's asks meanwhile
    assert ok("cat", m.p("files", "grows.txt")) == longer
    assert os.stat(m.p("files", "grows.txt")).st_size == len(longer)
    assert not os.path.exists(m.p("files", "goes.txt"))
