"""Faults injected by the emulator under a real mount: upload parts answering 500, downloads dropping mid-body,
200 ms of latency, 429 storms, and the service going away and coming back in the middle of a ``cp`` in and a
``cp`` out. The rule checked everywhere: a ``cp`` completes with the right bytes or fails with an error —
never a silently wrong or short file — and a failed upload leaves no half file in the account, keeps the
bytes under the cache dir's ``failed/`` and says where in the log."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from mounthelpers import Mount, ok, sh, wait_until
from relhelpers import Outage, by_name, data, log_lines, mount_log, names

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

pytestmark = pytest.mark.mount

PART = 64 * 1024  # small parts: many requests per file, so faults land mid-upload
FAST = ("--rate", "100")  # these tests are about faults, not the 7/s budget (test_rel_throttle.py is)


def cache_dir(tmp_path: Path, m: Mount) -> Path:
    return tmp_path / f"cache-{m.path.name}"


def check_cp_in(res: subprocess.CompletedProcess[bytes], emu: Any, name: str, body: bytes) -> bool:
    """A cp into the mount either put exactly ``body`` in the account, or failed and left nothing there."""
    if res.returncode == 0:
        assert emu.content(by_name(emu, name)["uuid"]) == body
        return True
    assert res.stderr, "cp failed without saying why"
    assert name not in names(emu, trashed=None), "a failed cp left a file in the account"
    return False


# --- upload parts answering 500 ---------------------------------------------------------------------------------


def test_parts_answering_500_are_retried_and_the_file_arrives_whole(
    emulator_factory: Any, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(max_part_size=PART)
    m = mount_factory(emu, mnt, *FAST)
    body = data(20 * PART + 123, seed=1)
    (tmp_path / "src.bin").write_bytes(body)
    emu.options.fail_parts = 3
    res = sh("cp", tmp_path / "src.bin", m.p("files", "report.bin"), timeout=120)
    assert res.returncode == 0, res.stderr
    assert emu.content(by_name(emu, "report.bin")["uuid"]) == body
    assert emu.count(status=500) == 3
    assert emu.options.fail_parts == 0
    assert len(log_lines(mount_log(m), "HTTP 500; retry")) == 3
    assert emu.sessions_open() == 0


@pytest.mark.slow  # the client's part retries with back-off: about 8 s
def test_parts_failing_for_good_leave_no_half_file_and_keep_the_bytes(
    emulator_factory: Any, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(max_part_size=PART)
    m = mount_factory(emu, mnt, *FAST)
    body = data(5 * PART + 7, seed=2)
    (tmp_path / "src.bin").write_bytes(body)
    emu.options.fail_parts = 1000
    try:
        res = sh("cp", tmp_path / "src.bin", m.p("files", "invoice.bin"), timeout=120)
    finally:
        emu.options.fail_parts = 0
    assert res.returncode != 0 and b"Input/output error" in res.stderr
    assert names(emu, trashed=None) == []
    assert "invoice.bin" not in os.listdir(m.p("files"))
    kept = list((cache_dir(tmp_path, m) / "failed").iterdir())
    assert len(kept) == 1 and kept[0].name.endswith("invoice.bin")
    assert kept[0].read_bytes() == body
    assert oct(kept[0].stat().st_mode & 0o777) == oct(0o600)
    lines = log_lines(mount_log(m), "upload of 'invoice.bin' failed")
    assert len(lines) == 1 and str(kept[0]) in lines[0]
    # the service is fine again: the same cp now works
    res = sh("cp", tmp_path / "src.bin", m.p("files", "invoice.bin"), timeout=120)
    assert res.returncode == 0, res.stderr
    assert emu.content(by_name(emu, "invoice.bin")["uuid"]) == body


def test_a_part_404_starts_a_new_session_and_completes(
    emulator_factory: Any, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    """A part URL that is gone (404: the session expired) → a new session from byte 0."""
    emu = emulator_factory(max_part_size=PART)
    m = mount_factory(emu, mnt, *FAST)
    body = data(6 * PART, seed=3)
    (tmp_path / "src.bin").write_bytes(body)
    emu.options.fail_requests_match = "^/v1.0/sessions/upload/"
    emu.options.fail_requests_status = 404
    emu.options.fail_requests = 1
    res = sh("cp", tmp_path / "src.bin", m.p("files", "again.bin"), timeout=120)
    assert res.returncode == 0, res.stderr
    assert emu.content(by_name(emu, "again.bin")["uuid"]) == body
    assert emu.count("POST", "/v1.0/sessions", host="drive") == 2
    assert log_lines(mount_log(m), "starting again with a new session")


# --- downloads dropping mid-body --------------------------------------------------------------------------------


def test_dropped_downloads_resume_with_range(emulator: Emulator, mnt: Path, mount_factory: Any) -> None:
    m = mount_factory(emulator, mnt, *FAST)
    body = data(3 << 20, seed=4)
    emulator.seed_file("scan.pdf", body)
    emulator.options.drop_download_after = 700_000
    emulator.options.drop_downloads = 2
    got = ok("cat", m.p("files", "scan.pdf"), timeout=60)
    assert got == body
    downloads = [r for r in emulator.log if r.host == "storage"]
    assert [r.status for r in downloads][:1] == [200]
    assert 206 in [r.status for r in downloads[1:]], "the dropped download was not resumed with Range"
    assert sum(r.bytes_out for r in downloads) < 2 * len(body), "resumed by downloading everything again"
    assert log_lines(mount_log(m), "resuming with Range")
    assert m.p("files", "scan.pdf").read_bytes() == body  # a clean second read


def test_dropped_downloads_restart_cleanly_without_range_support(
    emulator_factory: Any, mnt: Path, mount_factory: Any
) -> None:
    emu = emulator_factory(range_support=False)
    m = mount_factory(emu, mnt, *FAST)
    body = data(3 << 20, seed=5)
    emu.seed_file("photo.png", body)
    emu.options.drop_download_after = 1_000_000
    emu.options.drop_downloads = 2
    assert ok("cat", m.p("files", "photo.png"), timeout=60) == body
    assert {r.status for r in emu.log if r.host == "storage"} == {200}


def test_a_download_that_keeps_dropping_fails_with_eio(emulator: Emulator, mnt: Path, mount_factory: Any) -> None:
    m = mount_factory(emulator, mnt, *FAST)
    emulator.seed_file("broken.bin", data(2 << 20, seed=6))
    emulator.options.drop_download_after = 0  # headers, then nothing, every time
    emulator.options.drop_downloads = 1000
    try:
        res = sh("cp", m.p("files", "broken.bin"), m.path.parent / "out.bin", timeout=60)
    finally:
        emulator.options.drop_downloads = 0
        emulator.options.drop_download_after = None
    assert res.returncode != 0 and b"Input/output error" in res.stderr
    assert m.proc.poll() is None
    emulator.options.drop_download_after = None
    assert m.p("files", "broken.bin").read_bytes() == data(2 << 20, seed=6)


# --- latency (429 storms: test_rel_throttle.py) ------------------------------------------------------------------


@pytest.mark.slow  # every request waits 200 ms
def test_200ms_latency_everything_works(emulator_factory: Any, mnt: Path, mount_factory: Any, tmp_path: Path) -> None:
    emu = emulator_factory(latency=0.2, max_part_size=256 * 1024)
    emu.seed_file("existing.txt", b"old bytes")
    m = mount_factory(emu, mnt, *FAST)
    body = data(1 << 20, seed=7)
    (tmp_path / "src.bin").write_bytes(body)
    t0 = time.monotonic()
    assert sorted(os.listdir(m.p("files"))) == ["existing.txt"]
    ok("cp", tmp_path / "src.bin", m.p("files", "slow.bin"), timeout=60)
    assert m.p("files", "existing.txt").read_bytes() == b"old bytes"
    ok("mv", m.p("files", "slow.bin"), m.p("files", "slower.bin"), timeout=60)
    ok("rm", m.p("files", "existing.txt"), timeout=60)
    elapsed = time.monotonic() - t0
    assert emu.content(by_name(emu, "slower.bin")["uuid"]) == body
    assert names(emu, trashed=True) == ["existing.txt"]
    assert elapsed < 20, f"{elapsed:.1f} s for a handful of operations at 200 ms each"


# --- the service goes away and comes back -----------------------------------------------------------------------


def _restart_after(outage: Outage, down: float) -> threading.Thread:
    outage.stop()

    def later() -> None:
        time.sleep(down)
        outage.start()

    t = threading.Thread(target=later)
    t.start()
    return t


@pytest.mark.slow
def test_service_restarted_in_the_middle_of_cp_in(
    outage: Outage, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    outage.options.max_part_size = PART
    outage.options.latency = 0.02
    m = mount_factory(outage.emu, mnt, *FAST)
    body = data(64 * PART, seed=20)  # 4 MiB in 64 parts: about 2 s
    (tmp_path / "src.bin").write_bytes(body)
    cp = subprocess.Popen(["cp", str(tmp_path / "src.bin"), str(m.p("files", "contract.bin"))], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: outage.emu.count("POST", "/v1.0/sessions/upload/") >= 10, 30, "parts to flow")
        t = _restart_after(outage, 1.5)
        _, err = cp.communicate(timeout=120)
        t.join()
    finally:
        if cp.poll() is None:
            cp.kill()
            cp.wait(10)
    res = subprocess.CompletedProcess(cp.args, cp.returncode, b"", err)
    assert check_cp_in(res, outage.emu, "contract.bin", body), err
    assert outage.restarts == 1
    assert outage.emu.count("POST", "/v1.0/sessions/upload/") > 0, "the upload was over before the outage"
    assert m.p("files", "contract.bin").read_bytes() == body


@pytest.mark.slow
def test_service_restarted_in_the_middle_of_cp_out(outage: Outage, mnt: Path, mount_factory: Any) -> None:
    body = data(48 << 20, seed=21)
    outage.emu.seed_file("archive.zip", body)
    m = mount_factory(outage.emu, mnt, *FAST)
    got = bytearray()
    with open(m.p("files", "archive.zip"), "rb", buffering=0) as f:
        got += f.read(1 << 20)
        t = _restart_after(outage, 1.5)
        while chunk := f.read(1 << 20):
            got += chunk
        t.join()
    assert len(got) == len(body)
    assert bytes(got) == body
    assert outage.restarts == 1
    assert outage.emu.count("GET", host="storage") > 0, "the download was over before the outage"
    # and a whole cp out after the outage
    assert ok("cat", m.p("files", "archive.zip"), timeout=60) == body


def test_after_a_failed_upload_the_same_name_can_be_created_again(
    emulator_factory: Any, mnt: Path, mount_factory: Any
) -> None:
    """close() failed, nothing reached the account: a plain open(O_CREAT) of the same name right after (no
    stat first, unlike cp) must create it again — not hit the kernel's cached entry of the failed file."""
    emu = emulator_factory(max_part_size=PART)
    m = mount_factory(emu, mnt, *FAST)
    path = m.p("files", "retry.txt")
    emu.options.fail_requests_match = "^/v1.0/sessions$"
    emu.options.fail_requests_status = 400  # refused at once, no retries
    emu.options.fail_requests = 1
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"first try")
    with pytest.raises(OSError):
        os.close(fd)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"second try")
    os.close(fd)
    assert emu.content(by_name(emu, "retry.txt")["uuid"]) == b"second try"


# --- answers the client cannot use -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["json", "html"])
def test_a_garbled_listing_is_eio_with_a_log_line_and_the_mount_keeps_serving(
    emulator: Emulator, mnt: Path, mount_factory: Any, mode: str
) -> None:
    emulator.seed_file("a.txt", b"a")
    m = mount_factory(emulator, mnt, *FAST)
    emulator.options.garble_match = r"^/v1\.0/files$"
    emulator.options.garble_mode = mode  # json: the body cut in half; html: a 200 HTML page instead
    emulator.options.garble_next = 1
    res = sh("ls", m.p("files"))
    assert res.returncode != 0 and b"Input/output error" in res.stderr
    lines = log_lines(mount_log(m), "WARNING")
    assert len(lines) == 1 and ("malformed JSON" in lines[0] or "HTML page" in lines[0]), lines
    assert os.listdir(m.p("files")) == ["a.txt"]  # the next answer is sane: served as usual
    assert m.p("files", "a.txt").read_bytes() == b"a"
