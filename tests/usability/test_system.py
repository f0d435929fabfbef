"""amofs in the system: ``mount -t fuse.amofs PROFILE DIR`` and an /etc/fstab line (through mount(8) and the
``/sbin/mount.fuse.amofs`` helper that scripts/setup links), ``umount``, ``-o ro``/``uid``/``umask``, and the
systemd side: ``READY=1``/``STOPPING=1`` on ``$NOTIFY_SOCKET`` and the user unit in docs/CONFIGURATION.md.

The mount(8) tests need root and the helper linked to this checkout (``bash scripts/setup``); they are skipped
otherwise. The fstab line is tried with ``mount --fstab FILE`` so the machine's /etc/fstab is never touched."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mounthelpers import amofs, is_amofs_mount, pid_alive, sh, start_foreground, stop_daemon, wait_until

from amofs.mount import find_mount, serving_pid

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

ROOT = Path(__file__).resolve().parents[2]
HELPER = Path("/sbin/mount.fuse.amofs")
OUR_HELPER = Path(sys.executable).parent / "mount.fuse.amofs"


def helper_problem() -> str | None:
    if os.geteuid() != 0:
        return "mount(8) with -t needs root"
    if not HELPER.exists():
        return f"{HELPER} is missing (run: bash scripts/setup)"
    if os.path.realpath(HELPER) != os.path.realpath(OUR_HELPER):
        return f"{HELPER} belongs to another checkout ({os.path.realpath(HELPER)})"
    if shutil.which("mount") is None:
        return "mount(8) not found"
    return None


needs_helper = pytest.mark.skipif(helper_problem() is not None, reason=str(helper_problem()))


def write_profile(config_file: Path, emu: Emulator, name: str = "work", extra: str = "") -> None:
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(
        f'[profiles.{name}]\naccount_url = "{emu.account_url}"\ntoken = "{emu.token}"\n{extra}', encoding="utf-8"
    )
    config_file.chmod(0o600)


def umount_and_wait(mnt: Path) -> None:
    pid = serving_pid(mnt)
    assert pid is not None, "the helper's mount records its pid"
    res = sh("umount", mnt, timeout=30)
    assert res.returncode == 0, res.stderr
    assert find_mount(mnt) is None
    wait_until(lambda: not pid_alive(pid), 30, "the amofs process to end after umount")


@pytest.mark.mount
@needs_helper
def test_mount_t_fuse_amofs_with_a_profile(emulator: Emulator, mnt: Path, config_file: Path) -> None:
    emulator.seed_file("report.txt", b"from the account")
    write_profile(config_file, emulator)
    try:
        res = sh("mount", "-t", "fuse.amofs", "work", mnt, "-o", "cache_ttl=5,noatime", timeout=60)
        assert res.returncode == 0, res.stderr
        assert is_amofs_mount(mnt)  # ready the moment mount(8) returned
        assert (mnt / "files" / "report.txt").read_bytes() == b"from the account"
        (mnt / "files" / "new.txt").write_bytes(b"written through mount(8)'s mount")
        data = amofs("status", "--json", str(mnt)).stdout
        assert '"profile": "work"' in data and '"cache_ttl": 5.0' in data
        umount_and_wait(mnt)
    finally:
        stop_daemon(mnt)
    assert b"written through mount(8)'s mount" in [emulator.content(f["uuid"]) for f in emulator.files()]


@pytest.mark.mount
@needs_helper
def test_an_fstab_line(emulator: Emulator, mnt: Path, config_file: Path, tmp_path: Path) -> None:
    emulator.seed_file("a.txt", b"a")
    write_profile(config_file, emulator, "crm")
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# the line docs/CONFIGURATION.md shows, with this test's mount point\n"
        f"crm  {mnt}  fuse.amofs  noauto,_netdev,x-systemd.automount,ro,uid=4321,gid=4322,umask=027  0  0\n"
    )
    try:
        res = sh("mount", "--fstab", fstab, mnt, timeout=60)
        assert res.returncode == 0, res.stderr
        st = (mnt / "files" / "a.txt").stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 4322, 0o640)
        with pytest.raises(OSError) as exc:
            (mnt / "files" / "b.txt").write_bytes(b"b")
        assert exc.value.errno == errno.EROFS
        umount_and_wait(mnt)
    finally:
        stop_daemon(mnt)


@pytest.mark.mount
@needs_helper
def test_mount8_failures_are_one_line(emulator: Emulator, mnt: Path, config_file: Path) -> None:
    write_profile(config_file, emulator)
    res = sh("mount", "-t", "fuse.amofs", "nosuch", mnt, timeout=60)
    assert res.returncode != 0
    assert res.stderr.decode().strip() == (
        f"amofs: error: no profile 'nosuch' in {config_file} (profiles: work)"
    )  # fmt: skip
    res = sh("mount", "-t", "fuse.amofs", "work", mnt, "-o", "token=abc", timeout=60)
    assert res.returncode != 0
    assert b"a secret does not belong in mount options" in res.stderr
    assert find_mount(mnt) is None


# --- systemd ------------------------------------------------------------------------------------------------


@pytest.mark.mount
def test_foreground_mount_notifies_systemd(emulator: Emulator, mnt: Path, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), AMOFS_TOKEN=emulator.token)
        m = start_foreground(mnt, tmp_path, ["--account-url", emulator.account_url], env=env, wait=False)
        try:
            ready = sock.recv(4096).decode()
            assert ready.startswith("READY=1\n") and f"at {mnt}" in ready
            assert is_amofs_mount(mnt)  # READY only once the mount is there
            m.proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096).decode() == "STOPPING=1"
            assert m.proc.wait(timeout=30) == 0
        finally:
            m.stop()


def unit_from_docs() -> str:
    text = (ROOT / "docs" / "CONFIGURATION.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```ini\n(.*?)```", text, flags=re.S)
    units = [b for b in blocks if "[Service]" in b]
    assert len(units) == 1, "docs/CONFIGURATION.md shows one systemd unit"
    return units[0]


def test_the_documented_unit_runs_amofs_in_the_foreground_as_type_notify() -> None:
    unit = unit_from_docs()
    assert "Type=notify" in unit and "--foreground" in unit and "--profile %i" in unit
    exec_start = re.search(r"^ExecStart=(\S+) mount ", unit, flags=re.M)
    assert exec_start is not None
    # the unit's command line is one amofs accepts
    argv = re.search(r"^ExecStart=\S+ (.*)$", unit, flags=re.M)
    assert argv is not None
    from amofs.cli import build_parser

    build_parser().parse_args(argv.group(1).replace("%h", "/home/u").replace("%i", "work").split())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_documented_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = unit_from_docs()
    binary = re.search(r"^ExecStart=(\S+)", unit, flags=re.M)
    assert binary is not None
    if not os.access(binary.group(1), os.X_OK):  # scripts/setup links /usr/local/bin/amofs; else use this venv's
        unit = unit.replace(binary.group(1), str(Path(sys.executable).parent / "amofs"))
    path = tmp_path / "amofs@work.service"
    path.write_text(unit)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    res = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, XDG_RUNTIME_DIR=str(runtime)),
    )
    assert res.returncode == 0 and res.stderr == "", res.stderr
