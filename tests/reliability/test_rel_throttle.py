"""Throttling on a real mount against the emulator's rate limit (the real service: 7 requests/s, 429 as an HTML
page without Retry-After, repeated violations → the IP blocked with 403 pages).

- At the service's own limit the mount's token bucket keeps under it: ``rsync`` of 50 files and ``ls -l`` of
  1,000 files draw no 429 at all.
- With the limit set below the mount's budget, the same work still finishes, correctly, through back-off.
- A 403 block stops all requests: one line in the log, EACCES to the caller, no hammering.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mounthelpers import Mount, ok, sh
from relhelpers import by_name, data, log_lines, mount_log, names

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

pytestmark = pytest.mark.mount


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def make_tree(root: Path, n: int, seed: int = 0) -> dict[str, bytes]:
    root.mkdir()
    bodies = {f"doc{i:02d}.txt": data(1000 + 97 * i, seed=seed + i) for i in range(n)}
    for name, body in bodies.items():
        (root / name).write_bytes(body)
    return bodies


def rsync(src: Path, m: Mount) -> None:
    res = sh("rsync", "-a", f"{src}/", f"{m.p('files')}/", timeout=240)
    assert res.returncode == 0, (res.stderr, mount_log(m))


def ls_l(m: Mount, expect: int) -> None:
    lines = [ln for ln in ok("ls", "-l", m.p("files"), timeout=120).decode().splitlines() if ln.startswith("-")]
    assert len(lines) == expect


@pytest.mark.slow  # 100-odd requests at 7/s
def test_rsync_of_50_files_under_the_service_limit_draws_no_429(
    emulator_factory: Any, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    needs("rsync")
    emu = emulator_factory(rate_limit=7)
    m = mount_factory(emu, mnt)  # the mount's default budget: 7/s
    bodies = make_tree(tmp_path / "src", 50)
    t0 = time.monotonic()
    rsync(tmp_path / "src", m)
    elapsed = time.monotonic() - t0
    assert emu.count(status=429) == 0, f"{emu.count(status=429)} answers 429"
    assert names(emu) == sorted(bodies)
    for name, body in bodies.items():
        assert emu.content(by_name(emu, name)["uuid"]) == body
    requests = len(emu.log)
    assert requests >= 100  # a session and a part per file
    assert requests / elapsed <= 7.5, f"{requests} requests in {elapsed:.1f} s"


def test_ls_l_of_1000_files_under_the_service_limit_draws_no_429(
    emulator_factory: Any, mnt: Path, mount_factory: Any
) -> None:
    emu = emulator_factory(rate_limit=7)
    emu.seed_many([(f"file{i:04d}.pdf", b"%PDF") for i in range(1000)])
    m = mount_factory(emu, mnt)
    ls_l(m, 1000)
    ls_l(m, 1000)  # the second one from the cache
    assert emu.count(status=429) == 0
    assert len(emu.log) <= 10, [(r.method, r.path, r.query) for r in emu.log]


@pytest.mark.slow  # 429s cost a second or more of back-off each
def test_a_limit_below_the_mounts_budget_still_finishes_through_back_off(
    emulator_factory: Any, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    needs("rsync")
    emu = emulator_factory(rate_limit=2)  # the mount's budget is 7/s: it will overrun and be told so
    emu.seed_many([(f"file{i:04d}.pdf", b"%PDF") for i in range(1000)])
    m = mount_factory(emu, mnt)
    bodies = make_tree(tmp_path / "src", 5, seed=100)
    rsync(tmp_path / "src", m)
    ls_l(m, 1005)
    for name, body in bodies.items():
        assert emu.content(by_name(emu, name)["uuid"]) == body
        assert m.p("files", name).read_bytes() == body
    assert emu.count(status=429) > 0, "the limit was never hit: the test proves nothing"
    retries = log_lines(mount_log(m), "HTTP 429; retry")
    assert retries and len(retries) >= emu.count(status=429) - 1
    assert not log_lines(mount_log(m), "Traceback")


def test_a_403_block_stops_every_request_with_one_log_line_and_eacces(
    emulator: Emulator, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    emulator.seed_file("a.txt", b"a")
    m = mount_factory(emulator, mnt)
    # someone else on this IP overran the limit until the service blocked it
    emulator.options.rate_limit = 0.2
    emulator.options.block_after = 1
    with httpx.Client(timeout=10) as c:
        for _ in range(3):
            c.get(f"{emulator.account_url}/api/v4/account", headers={"Authorization": f"Bearer {emulator.token}"})
    assert emulator.state()["blocked"]
    emulator.reset_log()

    (tmp_path / "new.txt").write_bytes(b"new")
    for args in (
        ("ls", m.p("files")),
        ("cat", m.p("files", "a.txt")),
        ("cp", tmp_path / "new.txt", m.p("files", "new.txt")),
        ("ls", m.p("trash")),
        ("ls", m.p("leads", "1")),
    ):
        res = sh(*args, timeout=30)
        assert res.returncode != 0, args
        assert b"Permission denied" in res.stderr, (args, res.stderr)
    assert len(emulator.log) == 1, "requests went on after the block"
    assert emulator.log[0].status == 403
    lines = log_lines(mount_log(m), "blocked")
    assert len(lines) == 1, lines
    assert m.proc.poll() is None
    assert not os.path.exists(m.p("files", "new.txt"))
