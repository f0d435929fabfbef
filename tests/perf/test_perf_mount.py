"""Through a real mount: the kernel's read-ahead is raised once the mount is up, cp and cat use 1 MiB I/O,
a cat is one download, out-of-order reads do not reopen it, and a remount reads the content cache with no
request. Counts come from the emulator's log; nothing here times anything."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import PerfMount

pytestmark = pytest.mark.mount

MiB = 1 << 20


def downloads(emu: Any) -> int:
    return sum(1 for r in emu.log if r.host == "drive" and r.path.startswith("/download/"))


def bdi_read_ahead(path: object) -> int | None:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(path):
                with open(f"/sys/class/bdi/{fields[2]}/read_ahead_kb", encoding="ascii") as knob:
                    return int(knob.read())
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a bdi's read-ahead needs root")
def test_read_ahead_raised_after_init_and_1_mib_blocks(emulator: Any, perf_mount: PerfMount) -> None:
    emulator.seed_file("a.bin", b"x" * 10)
    m = perf_mount(emulator, "mnt")
    os.stat(m.p("files", "a.bin"))  # the mount answers: INIT is done
    assert bdi_read_ahead(m.path) == 1024
    assert os.stat(m.p("files", "a.bin")).st_blksize == MiB


def test_cat_is_one_download_and_shuffled_reads_do_not_reopen(emulator: Any, perf_mount: PerfMount) -> None:
    data = random.Random(2).randbytes(12 * MiB)
    emulator.seed_file("big.bin", data)
    m = perf_mount(emulator, "mnt")
    path = m.p("files", "big.bin")
    os.stat(path)
    emulator.reset_log()
    out = subprocess.run(["cat", str(path)], capture_output=True, timeout=60).stdout
    assert out == data
    assert downloads(emulator) == 1
    assert [r for r in emulator.log if r.host != "storage" and not r.path.startswith("/download/")] == []

    # a reader a little out of order, as several read-ahead requests can arrive (O_DIRECT keeps the page
    # cache out of it; a remount first, so the content cache the cat filled is not used either)
    m.unmount()
    for p in m.path.parent.glob("cache/content/*"):
        p.unlink()
    m = perf_mount(emulator, "mnt2")
    path = m.p("files", "big.bin")
    os.stat(path)
    emulator.reset_log()
    script = (
        "import mmap, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)\n"
        "buf = mmap.mmap(-1, 1 << 20)\n"
        "for off in (0, 2, 1, 4, 3, 5, 7, 6):\n"
        "    n = os.preadv(fd, [buf], off << 20)\n"
        "    sys.stdout.buffer.write(buf[:n])\n"
    )
    got = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, timeout=60)
    assert got.returncode == 0, got.stderr
    want = b"".join(data[i * MiB : (i + 1) * MiB] for i in (0, 2, 1, 4, 3, 5, 7, 6))
    assert got.stdout == want
    assert downloads(emulator) == 1


def test_a_remount_reads_the_content_cache_without_requests(emulator: Any, perf_mount: PerfMount) -> None:
    data = random.Random(3).randbytes(3 * MiB + 5)
    emulator.seed_file("c.bin", data)
    m = perf_mount(emulator, "mnt")
    assert m.p("files", "c.bin").read_bytes() == data
    m.unmount()
    m = perf_mount(emulator, "mnt2")
    os.stat(m.p("files", "c.bin"))
    emulator.reset_log()
    assert m.p("files", "c.bin").read_bytes() == data
    assert emulator.log == []
