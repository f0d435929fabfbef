"""``amofs status``: the text and JSON views of a snapshot (no FUSE), and of real mounts: profile and account, an
upload in progress with its bar, rate and time left, a failed upload kept locally, a stale mount."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from mounthelpers import MountFactory, amofs, start_foreground, unmount_hard, wait_until

from amofs import status

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

SNAPSHOT: dict[str, Any] = {
    "mountpoint": "/home/u/amo",
    "profile": "work",
    "pid": 4242,
    "started_at": 1000.0,
    "rate_limit": 7.0,
    "cache_dir": "/home/u/.cache/amofs/work",
    "cache_limit_bytes": 2 << 30,
    "account": "https://example.amocrm.ru",
    "requests": 120,
    "throttled": 2,
    "retries": 3,
    "uploads_in_flight": [{"name": "report.pdf", "sent": 1 << 20, "total": 4 << 20}],
    "uploads_waiting": 1,
    "uploaded": 5,
    "upload_failures": 1,
    "failed_files": ["/home/u/.cache/amofs/work/failed/20240101-120000 notes.txt"],
    "cache_hits": 90,
    "cache_misses": 10,
    "content_cache_bytes": 3 << 20,
}


def report(snapshot: dict[str, Any], read_at: float = 1065.0) -> status.Report:
    return status.Report("/home/u/amo", json.loads(json.dumps(snapshot)), read_at=read_at)


def test_render_shows_everything_a_user_asks_about() -> None:
    before = report(SNAPSHOT, read_at=1064.0)
    later = dict(SNAPSHOT, uploads_in_flight=[{"name": "report.pdf", "sent": 2 << 20, "total": 4 << 20}])
    after = report(later)
    status.measure_rates([before], [after])
    text = status.render(after)
    assert text.splitlines()[0] == "/home/u/amo  (profile work, pid 4242, up 1m05s)"
    assert "account   https://example.amocrm.ru" in text
    assert "3.0 MiB of content (limit 2.0 GiB)" in text
    assert "90% from cache (90 hits, 10 misses)" in text
    assert "120 made, 2 throttled (429), 3 retried; limit 7/s" in text
    assert "1 in progress, 1 waiting, 5 done, 1 failed" in text
    line = next(ln for ln in text.splitlines() if "report.pdf" in ln)
    # 2 of 4 MiB: 4 parts of 512 KiB left at 7 requests/s is 0.57 s at best
    assert "[############............]  50%" in line and "2.0 MiB of 4.0 MiB" in line
    assert "1.0 MiB/s" in line and "~1s left at 7 req/s x 512.0 KiB" in line
    assert "failed uploads kept locally (1)" in text
    assert "/home/u/.cache/amofs/work/failed/20240101-120000 notes.txt" in text


def test_json_adds_derived_numbers() -> None:
    data = status.enrich(report(dict(SNAPSHOT, part_size=1 << 20, rate_limit=2.0)))
    assert data["cache_hit_rate"] == 0.9 and data["uptime_seconds"] == 65.0 and data["error"] is None
    (up,) = data["uploads_in_flight"]
    assert up["rate"] is None  # one snapshot: no rate yet
    assert up["eta_seconds"] == 1.5  # 3 parts of 1 MiB at 2 requests/s
    assert status.enrich(status.Report("/x", error="stale")) == {"mountpoint": "/x", "error": "stale"}


def test_an_upload_that_started_over_gets_no_rate() -> None:
    before = report(SNAPSHOT, read_at=1064.0)
    after = report(dict(SNAPSHOT, uploads_in_flight=[{"name": "report.pdf", "sent": 0, "total": 4 << 20}]))
    status.measure_rates([before], [after])
    assert after.status is not None and "rate" not in after.status["uploads_in_flight"][0]


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 << 30, "5.0 GiB")]
)  # fmt: skip
def test_human_bytes(n: int, text: str) -> None:
    assert status.human_bytes(n) == text


@pytest.mark.parametrize(("s", "text"), [(0.4, "0s"), (59, "59s"), (61, "1m01s"), (7322, "2h02m"), (90000, "1d01h")])
def test_human_seconds(s: float, text: str) -> None:
    assert status.human_seconds(s) == text


# --- real mounts ---------------------------------------------------------------------------------------------


@pytest.mark.mount
def test_status_of_a_mount_and_of_all_mounts(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    emulator.seed_file("a.txt", b"a")
    mount_factory(emulator, mnt, "--cache-ttl", "7", "--rate", "5")
    assert (mnt / "files" / "a.txt").read_bytes() == b"a"
    res = amofs("status", str(mnt))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{mnt}  (no profile, pid ")
    assert f"account   {emulator.account_url}" in res.stdout and "limit 5/s" in res.stdout
    res = amofs("status", "--json", str(mnt))
    data = json.loads(res.stdout)
    assert data["mountpoint"] == str(mnt) and data["account"] == emulator.account_url
    assert data["cache_ttl"] == 7 and data["rate_limit"] == 5 and data["requests"] >= 1
    assert data["uploads_in_flight"] == [] and data["failed_files"] == []
    # without a mount point: every amofs mount on the machine (other tests' too), ours among them
    res = amofs("status", "--json")
    assert str(mnt) in [d["mountpoint"] for d in json.loads(res.stdout)]
    # the control folder stays out of listings
    assert ".amofs" not in [p.name for p in mnt.iterdir()]


@pytest.mark.mount
def test_an_upload_in_progress_has_a_bar(
    emulator_factory: Any, mnt: Path, mount_factory: MountFactory, tmp_path: Path
) -> None:
    emu = emulator_factory(max_part_size=65536)
    mount_factory(emu, mnt, "--rate", "8")
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * (40 * 65536))  # 40 parts at 8 requests/s: 5 s
    copier = threading.Thread(target=lambda: (mnt / "files" / "big.bin").write_bytes(src.read_bytes()))
    copier.start()
    try:

        def uploading() -> bool:
            res = amofs("status", "--json", str(mnt))
            return bool(json.loads(res.stdout)["uploads_in_flight"])

        wait_until(uploading, 20, "the upload to show in amofs status", interval=0.2)
        res = amofs("status", str(mnt))
        line = next(ln for ln in res.stdout.splitlines() if "big.bin" in ln)
        assert "[" in line and "%" in line and "of 2.5 MiB" in line and "left at 8 req/s" in line
        assert "/s  ~" in line  # a measured rate (two snapshots a second apart)
    finally:
        copier.join(timeout=60)
    assert not copier.is_alive()
    data = json.loads(amofs("status", "--json", str(mnt)).stdout)
    assert data["uploaded"] == 1 and data["uploads_in_flight"] == []


@pytest.mark.mount
def test_a_failed_upload_is_listed_with_its_local_copy(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory
) -> None:
    mount_factory(emulator, mnt)
    emulator.options.fail_parts = 1000
    try:
        with pytest.raises(OSError):
            (mnt / "files" / "lost.txt").write_bytes(b"precious bytes")
    finally:
        emulator.options.fail_parts = 0
    res = amofs("status", str(mnt))
    assert "0 done, 1 failed" in res.stdout
    kept = [ln.strip() for ln in res.stdout.splitlines() if ln.strip().endswith("lost.txt")]
    assert len(kept) == 1 and Path(kept[0]).read_bytes() == b"precious bytes"


@pytest.mark.mount
def test_status_of_a_stale_mount(emulator: Emulator, mnt: Path, tmp_path: Path) -> None:
    m = start_foreground(mnt, tmp_path, ["--account-url", emulator.account_url, "--token", emulator.token])
    try:
        m.proc.kill()
        m.proc.wait(timeout=10)
        res = amofs("status", str(mnt))
        assert res.returncode == 1
        assert f"{mnt}: stale: its process has ended; clear it with: fusermount3 -uz {mnt}" in res.stdout
        res = amofs("status", "--json", str(mnt))
        assert json.loads(res.stdout)["error"].startswith("stale")
    finally:
        m.stop()
        unmount_hard(mnt)
    start = time.monotonic()
    res = amofs("status", str(mnt))
    assert res.returncode == 1 and "is not mounted" in res.stderr
    assert time.monotonic() - start < 10


def test_watch_into_a_pipe_writes_no_screen_clearing_codes() -> None:
    """`amofs status --watch > file` (or `| tee`) gets one report after another, not terminal escapes."""
    import subprocess

    from mounthelpers import AMOFS

    proc = subprocess.Popen([*AMOFS, "status", "--watch", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert out.count(b"\n") >= 2  # several reports came out
    assert b"\x1b[" not in out
