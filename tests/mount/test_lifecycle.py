"""The life of a mount seen from the shell: start-up errors as one line, daemon mode that returns only when the
mount is ready, ``amofs umount``, signals, a stale mount, ``--demo``, and tokens kept out of every output."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mounthelpers import (
    AMOFS,
    MountFactory,
    amofs,
    is_amofs_mount,
    pid_alive,
    start_foreground,
    stop_daemon,
    unmount_hard,
)

from amofs.mount import find_mount, serving_pid

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

pytestmark = pytest.mark.mount


def error_line(stderr: str) -> str:
    """The one ``amofs: error:`` line; fails on a traceback or on several error lines."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("amofs: error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


# --- start-up failures: one line, non-zero exit, nothing mounted --------------------------------------------


def test_help_runs(mnt: Path) -> None:
    res = amofs("--help")
    assert res.returncode == 0 and "mount" in res.stdout and "umount" in res.stdout
    res = amofs("mount", "--help")
    assert res.returncode == 0 and "--account-url" in res.stdout and "--foreground" in res.stdout


def test_mount_point_missing(tmp_path: Path) -> None:
    res = amofs("mount", str(tmp_path / "absent"), "--account-url", "https://x.amocrm.ru", "--foreground")
    assert res.returncode == 1
    assert "does not exist" in error_line(res.stderr)


def test_mount_point_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    res = amofs("mount", str(tmp_path / "f"), "--account-url", "https://x.amocrm.ru")
    assert res.returncode == 1
    assert "not a directory" in error_line(res.stderr)


def test_malformed_url(mnt: Path) -> None:
    res = amofs("mount", str(mnt), "--account-url", "example.amocrm.ru")
    assert res.returncode == 1
    assert "--account-url must be an http(s) URL" in error_line(res.stderr)


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemon"])
def test_unreachable_host_fails_fast(mnt: Path, foreground: bool) -> None:
    start = time.monotonic()
    args = ["mount", str(mnt), "--account-url", "http://127.0.0.1:1"] + (["--foreground"] if foreground else [])
    res = amofs(*args, env=dict(os.environ, AMOFS_TOKEN="whatever"))
    assert res.returncode == 1
    line = error_line(res.stderr)
    assert "cannot reach http://127.0.0.1:1" in line and "--account-url" in line
    assert res.stderr.count("\n") == 1, res.stderr  # no retry chatter either
    assert time.monotonic() - start < 20
    assert find_mount(mnt) is None


def test_no_token(mnt: Path) -> None:
    res = amofs("mount", str(mnt), "--account-url", "http://127.0.0.1:1")
    assert res.returncode == 1
    assert "no access token" in error_line(res.stderr)


def test_umount_not_mounted(mnt: Path) -> None:
    res = amofs("umount", str(mnt))
    assert res.returncode == 1
    assert "is not mounted" in error_line(res.stderr)


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemon"])
def test_bad_token(emulator: Emulator, mnt: Path, foreground: bool) -> None:
    args = ["mount", str(mnt), "--account-url", emulator.account_url] + (["--foreground"] if foreground else [])
    res = amofs(*args, env=dict(os.environ, AMOFS_TOKEN="not-the-token"))
    assert res.returncode == 1
    assert "access token was refused" in error_line(res.stderr)
    assert "not-the-token" not in res.stderr
    assert find_mount(mnt) is None


def test_bad_drive_url(emulator: Emulator, mnt: Path) -> None:
    res = amofs(
        "mount",
        str(mnt),
        "--account-url",
        emulator.account_url,
        "--drive-url",
        "http://127.0.0.1:1",
        env=dict(os.environ, AMOFS_TOKEN=emulator.token),
    )
    assert res.returncode == 1
    assert "--drive-url" in error_line(res.stderr)


def test_already_mounted(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    mount_factory(emulator, mnt)
    res = amofs("mount", str(mnt), "--account-url", emulator.account_url, env=dict(os.environ, AMOFS_TOKEN="x"))
    assert res.returncode == 1
    assert "already mounted" in error_line(res.stderr)


@pytest.mark.parametrize("used", [False, True], ids=["fresh", "used"])
def test_stale_mount_is_explained(emulator: Emulator, mnt: Path, mount_factory: MountFactory, used: bool) -> None:
    m = mount_factory(emulator, mnt)
    if used:  # the kernel then answers stat of the mount point from its cache, even after the process died
        os.listdir(mnt / "files")
        os.stat(mnt)
    m.proc.kill()
    m.proc.wait(timeout=10)
    try:
        res = amofs("mount", str(mnt), "--account-url", emulator.account_url, env=dict(os.environ, AMOFS_TOKEN="x"))
        assert res.returncode == 1
        assert "stale FUSE mount" in error_line(res.stderr)
    finally:
        unmount_hard(mnt)


# --- daemon mode -----------------------------------------------------------------------------------------


def test_daemon_returns_when_ready_and_umount_waits(emulator: Emulator, mnt: Path, tmp_path: Path) -> None:
    emulator.seed_file("ready.txt", b"ready!")
    env = dict(os.environ, AMOFS_TOKEN=emulator.token)
    log_file = tmp_path / "daemon.log"
    try:
        res = amofs("mount", str(mnt), "--account-url", emulator.account_url, "--log-file", str(log_file), env=env)
        assert res.returncode == 0, res.stderr
        assert res.stderr == "" and res.stdout == ""
        # no waiting: the mount is there the moment the command returned
        assert is_amofs_mount(mnt)
        assert (mnt / "files" / "ready.txt").read_bytes() == b"ready!"
        pid = serving_pid(mnt)
        assert pid is not None and pid != os.getpid()
        res = amofs("umount", str(mnt))
        assert res.returncode == 0, res.stderr
        assert find_mount(mnt) is None
        assert not pid_alive(pid)  # umount returned only once the process was gone
        assert "mounted" in log_file.read_text()
    finally:
        stop_daemon(mnt)


def test_umount_of_a_busy_mount_fails_cleanly(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    m = mount_factory(emulator, mnt)
    fd = os.open(mnt / "files", os.O_RDONLY | os.O_DIRECTORY)
    try:
        res = amofs("umount", str(mnt))
        assert res.returncode == 1
        assert "cannot unmount" in error_line(res.stderr)
        assert is_amofs_mount(mnt)
    finally:
        os.close(fd)
    res = amofs("umount", str(mnt))
    assert res.returncode == 0, res.stderr
    assert m.proc.wait(timeout=30) == 0


def test_umount_during_a_cp_in_waits_for_its_upload(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory, tmp_path: Path
) -> None:
    """README: start a large `cp` in the background, then `amofs umount`. The cp is still in close() (its
    upload), which keeps the mount busy; umount waits for the upload, then unmounts, and the file is whole."""
    m = mount_factory(emulator, mnt, "--rate", "2")  # 1 session + 8 parts: about 4 s
    body = os.urandom(4 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(body)
    cp = subprocess.Popen(["cp", str(tmp_path / "big.bin"), str(mnt / "files")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while emulator.count("POST", "/v1.0/sessions") == 0:
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.02)
        res = amofs("umount", str(mnt))
        assert res.returncode == 0, res.stderr
        assert "waiting for the uploads" in res.stderr
        assert cp.wait(timeout=60) == 0
    finally:
        if cp.poll() is None:
            cp.kill()
            cp.wait(timeout=10)
    assert find_mount(mnt) is None
    assert m.proc.wait(timeout=30) == 0
    f = next(f for f in emulator.files() if f["name"] == "big")
    assert emulator.content(f["uuid"]) == body


# --- signals -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_signal_unmounts_cleanly(emulator: Emulator, mnt: Path, mount_factory: MountFactory, sig: int) -> None:
    m = mount_factory(emulator, mnt)
    assert sorted(os.listdir(mnt))  # it serves
    m.proc.send_signal(sig)
    assert m.proc.wait(timeout=30) == 0, m.log()
    assert find_mount(mnt) is None
    assert "Traceback" not in m.log()


def test_written_file_survives_sigterm(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    m = mount_factory(emulator, mnt)
    (mnt / "files" / "kept.txt").write_bytes(b"written before SIGTERM")
    m.proc.send_signal(signal.SIGTERM)
    assert m.proc.wait(timeout=30) == 0, m.log()
    assert b"written before SIGTERM" in [emulator.content(f["uuid"]) for f in emulator.files()]


# --- secrets -----------------------------------------------------------------------------------------------


def test_token_never_in_logs_or_output(emulator: Emulator, mnt: Path, tmp_path: Path) -> None:
    emulator.seed_file("a.txt", b"a")
    args = ["--account-url", emulator.account_url, "--token", emulator.token, "--debug"]
    m = start_foreground(mnt, tmp_path, args)
    try:
        assert (mnt / "files" / "a.txt").read_bytes() == b"a"
        (mnt / "files" / "b.txt").write_bytes(b"b")
    finally:
        m.stop()
    text = m.log()
    out = m.output.read_text(errors="replace")
    assert "visible to other users" in text, f"log:\n{text[-3000:]}\noutput:\n{out[-2000:]}"
    where = text.find(emulator.token)
    assert where < 0, f"the token is in the log: {text[max(0, where - 300) : where].replace(emulator.token, '<T>')!r}"
    assert emulator.token not in out
    assert "DEBUG" in text  # --debug did log


# --- demo --------------------------------------------------------------------------------------------------


def test_demo_mount_from_a_fresh_data_dir(mnt: Path, tmp_path: Path) -> None:
    data = tmp_path / "data" / "amofs" / "demo"
    assert not data.exists()
    m = start_foreground(mnt, tmp_path, ["--demo"])
    try:
        names = os.listdir(mnt / "files")
        assert names, "the demo account has sample files"
        assert data.is_dir()
        first = mnt / "files" / sorted(names)[0]
        assert first.stat().st_size == len(first.read_bytes())
        assert m.unmount() == 0
    finally:
        m.stop()
    # a second demo mount reuses the data: nothing seeded twice
    m = start_foreground(mnt, tmp_path, ["--demo"])
    try:
        assert sorted(os.listdir(mnt / "files")) == sorted(names)
        assert m.unmount() == 0
    finally:
        m.stop()


def test_demo_daemon_and_umount(mnt: Path) -> None:
    try:
        res = amofs("mount", str(mnt), "--demo")
        assert res.returncode == 0, res.stderr
        assert os.listdir(mnt / "files")
        pid = serving_pid(mnt)
        assert pid is not None
        res = amofs("umount", str(mnt))
        assert res.returncode == 0, res.stderr
        assert find_mount(mnt) is None
        assert not pid_alive(pid)
    finally:
        stop_daemon(mnt)


# --- OAuth: login, then a mount that refreshes through the profile ------------------------------------------


def test_login_then_mount_with_the_oauth_profile(emulator: Emulator, mnt: Path, tmp_path: Path) -> None:
    emulator.add_oauth_client("cid-1", "csecret-1", "https://example.com/cb")
    emulator.seed_file("oauth.txt", b"via oauth")
    config = tmp_path / "config" / "amofs" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        'default = "crm"\n[profiles.crm]\n'
        f'account_url = "{emulator.account_url}"\nclient_id = "cid-1"\nclient_secret = "csecret-1"\n'
        'redirect_uri = "https://example.com/cb"\n'
    )
    config.chmod(0o600)
    code = emulator.issue_auth_code("cid-1")
    res = amofs("login", "--code", code)
    assert res.returncode == 0, res.stderr
    assert "tokens saved" in res.stdout
    assert config.stat().st_mode & 0o777 == 0o600
    profile = tomllib.loads(config.read_text())["profiles"]["crm"]
    assert profile["client_secret"] == "csecret-1" and profile["refresh_token"] and profile["token"]
    # the saved access token is revoked: the mount must refresh, and save the new pair before using it
    saved_token, first_refresh = profile["token"], profile["refresh_token"]
    emulator.revoke_token(saved_token)
    m = start_foreground(mnt, tmp_path, [])
    try:
        assert (mnt / "files" / "oauth.txt").read_bytes() == b"via oauth"
    finally:
        m.stop()
    after = tomllib.loads(config.read_text())["profiles"]["crm"]
    assert after["refresh_token"] != first_refresh and after["token"] != saved_token
    assert "csecret-1" not in m.log() and saved_token not in m.log()


def test_login_with_a_bad_code(emulator: Emulator, tmp_path: Path) -> None:
    emulator.add_oauth_client("cid-2", "s2", "https://example.com/cb")
    config = tmp_path / "config" / "amofs" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[profiles.p]\naccount_url = "{emulator.account_url}"\nclient_id = "cid-2"\nclient_secret = "s2"\n'
        'redirect_uri = "https://example.com/cb"\n'
    )
    res = amofs("login", "--code", "def50200-not-a-code", "--profile", "p")
    assert res.returncode == 1
    assert "authorization code was refused" in error_line(res.stderr)


def test_emulator_command_is_delegated(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*AMOFS, "emulator", "--token", "tok-1", "--data", str(tmp_path / "emu")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("amofs emulator: account=http://127.0.0.1:") and line.rstrip().endswith("token=tok-1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# --- read-only, log levels, status of a running mount -------------------------------------------------------


def test_read_only_mount_refuses_changes(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> None:
    emulator.seed_file("keep.txt", b"keep")
    mount_factory(emulator, mnt, "--read-only")
    assert (mnt / "files" / "keep.txt").read_bytes() == b"keep"
    for change in (
        lambda: (mnt / "files" / "new.txt").write_bytes(b"x"),
        lambda: (mnt / "files" / "keep.txt").unlink(),
        lambda: (mnt / "files" / "keep.txt").rename(mnt / "files" / "moved.txt"),
    ):
        with pytest.raises(OSError) as exc:
            change()
        assert exc.value.errno == errno.EROFS
    assert [f["name"] for f in emulator.files()] == ["keep"]
    assert "read-only" in amofs("status", str(mnt)).stdout


def test_log_level_warning_keeps_the_log_file_quiet(emulator: Emulator, mnt: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "quiet.log"
    env = dict(os.environ, AMOFS_TOKEN=emulator.token)
    try:
        res = amofs(
            "mount", str(mnt), "--account-url", emulator.account_url, "--log-file", str(log_file),
            "--log-level", "warning", env=env,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert os.listdir(mnt / "files") == []
        assert amofs("umount", str(mnt)).returncode == 0
    finally:
        stop_daemon(mnt)
    assert " INFO " not in log_file.read_text()  # "mounted …" is info: not written
