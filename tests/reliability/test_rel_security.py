"""Security: the mount serves only the user who mounted it (unless --allow-other), tokens and signed URLs never
reach logs, error lines, ``ps`` or the status file, secrets on disk are private, and the emulator listens on
127.0.0.1 only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from mounthelpers import AMOFS, Mount, ok, sh
from relhelpers import by_name, data, file_mode, log_lines, mount_log

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

NOBODY = 65534


def as_nobody(*cmd: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    return sh("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd, timeout=30)


@pytest.fixture
def open_mnt() -> Iterator[Path]:
    """A mount point every user can reach (pytest's own tmp dirs are private to their owner)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    top = Path(tempfile.mkdtemp(prefix="amofs-rel-"))
    try:
        top.chmod(0o755)
        (top / "mnt").mkdir()
        (top / "mnt").chmod(0o755)
        yield top / "mnt"
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.mount
def test_only_the_mounting_user_can_use_the_mount(emulator: Emulator, open_mnt: Path, mount_factory: Any) -> None:
    emulator.seed_file("secret.pdf", b"%PDF confidential")
    m = mount_factory(emulator, open_mnt)
    assert ok("cat", m.p("files", "secret.pdf")) == b"%PDF confidential"
    for cmd in (("ls", m.path), ("cat", m.p("files", "secret.pdf")), ("stat", m.p("files"))):
        res = as_nobody(*cmd)
        assert res.returncode != 0 and b"Permission denied" in res.stderr, (cmd, res)
    opts = next(line for line in Path("/proc/self/mounts").read_text().splitlines() if str(m.path) in line)
    assert "allow_other" not in opts and "default_permissions" in opts


@pytest.mark.mount
def test_allow_other_lets_others_read_but_not_write(emulator: Emulator, open_mnt: Path, mount_factory: Any) -> None:
    emulator.seed_file("shared.pdf", b"%PDF shared")
    m = mount_factory(emulator, open_mnt, "--allow-other", "--umask", "022")
    res = as_nobody("cat", m.p("files", "shared.pdf"))
    assert res.returncode == 0 and res.stdout == b"%PDF shared", res
    res = as_nobody("cp", "/etc/hostname", m.p("files", "intruder.txt"))
    assert res.returncode != 0 and b"Permission denied" in res.stderr
    res = as_nobody("rm", "-f", m.p("files", "shared.pdf"))
    assert res.returncode != 0
    assert by_name(emulator, "shared.pdf")["is_trashed"] is False


def secrets_seen_by_the_emulator(emu: Emulator) -> list[str]:
    """Every signed part URL token and presigned query the emulator handed out (they are in its request log)."""
    out = []
    for r in emu.log:
        if "/sessions/upload/" in r.path:
            out.append(r.path.rsplit("/", 1)[1])
        if "Signature=" in r.query:
            out.extend(v for k, _, v in (p.partition("=") for p in r.query.split("&")) if "Signature" in k)
    return [s for s in out if len(s) > 16]


@pytest.mark.mount
def test_no_token_or_signed_url_in_logs_ps_errors_or_status(
    emulator_factory: Any, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory(max_part_size=64 * 1024)
    emu.seed_file("report.pdf", data(300_000))
    m = mount_factory(emu, mnt, "--debug")
    # a bit of everything: listing, a redirected download, a multi-part upload, a rename, a failure, status
    os.listdir(m.p("files"))
    assert m.p("files", "report.pdf").read_bytes() == data(300_000)
    (tmp_path / "up.bin").write_bytes(data(200_000, seed=1))
    ok("cp", tmp_path / "up.bin", m.p("files", "up.bin"))
    ok("mv", m.p("files", "up.bin"), m.p("files", "up2.bin"))
    emu.options.fail_requests = 1
    emu.options.fail_requests_status = 401  # the token refused once: the error path, with its messages
    sh("stat", m.p("versions", by_name(emu, "report.pdf")["uuid"]))
    status = m.p(".amofs", "status").read_text()

    with open(f"/proc/{m.proc.pid}/cmdline", "rb") as f:
        cmdline = f.read()
    secrets = [emu.token, *secrets_seen_by_the_emulator(emu)]
    assert len(secrets) >= 4, "the scenario handed out no signed URLs: it proves nothing"
    text = m.log()
    assert "DEBUG" in text
    for s in secrets:
        assert s not in text, "a secret in the log or the mount's output"
        assert s not in status
        assert s.encode() not in cmdline
    assert not re.search(r"X-Amz-(Signature|Credential)", text)
    assert "Bearer" not in text


@pytest.mark.mount
def test_token_as_an_argument_warns(emulator: Emulator, mnt: Path, mount_factory: Any) -> None:
    m = mount_factory(emulator, mnt, "--token", emulator.token, no_token=True)
    out = m.output.read_text()
    assert "visible to other users" in out
    assert emulator.token not in mount_log(m) and emulator.token not in out


@pytest.mark.mount
def test_a_refused_token_is_not_printed(emulator: Emulator, mnt: Path) -> None:
    env = dict(os.environ, AMOFS_TOKEN="not-a-valid-token-3f9a8b7c6d5e")
    res = subprocess.run(
        [*AMOFS, "mount", str(mnt), "--foreground", "--account-url", emulator.account_url, "--debug"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 1
    assert "not-a-valid-token-3f9a8b7c6d5e" not in res.stderr + res.stdout
    assert res.stderr.strip().splitlines()[-1].startswith("amofs: error: the access token was refused")


@pytest.mark.mount
def test_cache_dir_and_everything_kept_there_is_private(
    emulator_factory: Any, mnt: Path, mount_factory: Any, tmp_path: Path
) -> None:
    emu = emulator_factory()
    emu.seed_file("cached.pdf", data(100_000))
    cache = tmp_path / "private-cache"
    m = mount_factory(emu, mnt, "--cache-dir", str(cache))
    assert m.p("files", "cached.pdf").read_bytes() == data(100_000)  # into the content cache
    emu.options.fail_requests_match = "^/v1.0/sessions$"
    emu.options.fail_requests_status = 400  # refused at once: the bytes go to failed/
    emu.options.fail_requests = 1
    (tmp_path / "x.bin").write_bytes(b"kept after a failure")
    sh("cp", tmp_path / "x.bin", m.p("files", "x.bin"), timeout=120)
    m.stop()
    assert file_mode(cache) == 0o700
    found = list(cache.rglob("*"))
    assert any(p.parent.name == "failed" for p in found) and any(p.parent.name == "content" for p in found)
    for p in found:
        # the account's bytes (content cache, spool, failed uploads) are private in their own right; the rest
        # (the metadata index) is kept private by the 0700 folder it is in
        if p.parent.name in ("content", "spool", "failed") or p.is_dir():
            assert file_mode(p) & 0o077 == 0, (p, oct(file_mode(p)))
    assert log_lines(mount_log(m), "failed")


def listening_addresses(pid: int) -> set[str]:
    """The local addresses of the TCP sockets ``pid`` listens on (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                addr = f[1].split(":")[0]
                if len(addr) == 8:
                    out.add(".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    out.add(addr)
    return out


def test_the_emulator_listens_on_loopback_only(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*AMOFS, "emulator", "--data", str(tmp_path / "emu")], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert "account=http://127.0.0.1:" in line and "drive=http://127.0.0.1:" in line
        addrs = listening_addresses(proc.pid)
        assert addrs == {"127.0.0.1"}, addrs
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    from amofs.emulator.server import Emulator

    with Emulator(tmp_path / "emu2") as emu:
        assert listening_addresses(os.getpid()) >= {"127.0.0.1"}
        for url in (emu.account_url, emu.drive_url, emu.upload_url, emu.storage_url):
            assert url.startswith("http://127.0.0.1:"), url


@pytest.mark.mount
def test_the_mount_process_environment_and_files_are_not_readable_by_others(
    emulator: Emulator, mnt: Path, mount_factory: Any
) -> None:
    """The token sits in the mount's environment (AMOFS_TOKEN): /proc/PID/environ is readable by its owner
    only, and nothing else the mount writes holds it."""
    m: Mount = mount_factory(emulator, mnt)
    assert file_mode(f"/proc/{m.proc.pid}/environ") & 0o077 == 0
    if os.geteuid() == 0 and shutil.which("setpriv"):
        res = as_nobody("cat", f"/proc/{m.proc.pid}/environ")
        assert res.returncode != 0
