"""Helpers for tests that mount for real: run ``amofs`` as a subprocess, wait for the mount, and always clean up.

Every subprocess call has a timeout. Teardown unmounts with ``fusermount3 -u`` (``-uz`` as a last resort) and
ends only processes these helpers started, by their pid: the foreground ``amofs mount`` child, or the daemon
whose pid it wrote to its pid file (checked to be an amofs process first).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from amofs.mount import find_mount, serving_pid

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

AMOFS = [sys.executable, "-m", "amofs"]
MOUNT_TIMEOUT = 30.0  # seconds until a mount must be up
STOP_TIMEOUT = 30.0  # seconds a clean unmount may take (uploads included)


def amofs(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m amofs ARGS`` to completion (text output captured)."""
    return subprocess.run([*AMOFS, *args], capture_output=True, text=True, timeout=timeout, env=env)


def sh(
    *cmd: str | os.PathLike[str], timeout: float = 60.0, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool (ls, cp, rsync …) with a timeout; output captured as bytes, never raises on failure."""
    return subprocess.run([os.fspath(c) for c in cmd], capture_output=True, timeout=timeout, input=input)


def ok(*cmd: str | os.PathLike[str], timeout: float = 60.0) -> bytes:
    """Run a tool that must succeed; return its stdout."""
    res = sh(*cmd, timeout=timeout)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}): {res.stderr.decode(errors='replace')}"
    return res.stdout


_PY_ERRNO = """
import errno, os, sys
try:
    exec(sys.argv[1])
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
else:
    print("OK")
"""


def pyerr(code: str, *args: str | os.PathLike[str], timeout: float = 60.0) -> str:
    """Run a Python snippet in a subprocess (``args`` are ``sys.argv[2:]``); return the errno name of the
    OSError it raised (``"EROFS"``) or ``"OK"`` — the errno a real process gets from the mount."""
    res = subprocess.run(
        [sys.executable, "-c", _PY_ERRNO, code, *[os.fspath(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode == 0, res.stderr
    return str(res.stdout).strip().splitlines()[-1]


def shown(f: dict[str, Any]) -> str:
    """An emulator file model's name as the mount shows it before escapes (``name.ext``)."""
    ext = (f.get("metadata") or {}).get("extension") or ""
    return f"{f['name']}.{ext}" if ext else str(f["name"])


def is_amofs_mount(path: Path) -> bool:
    entry = find_mount(path)
    return entry is not None and entry.fstype == "fuse.amofs"


def wait_until(predicate: object, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def unmount_hard(path: Path) -> None:
    """Unmount whatever is at ``path``, politely first, lazily as a last resort."""
    tool = shutil.which("fusermount3") or "fusermount3"
    if find_mount(path) is None:
        return
    subprocess.run([tool, "-u", str(path)], capture_output=True, timeout=15)
    if find_mount(path) is not None:
        subprocess.run([tool, "-uz", str(path)], capture_output=True, timeout=15)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def end_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, one pid these helpers started (never by name)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not pid_alive(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.05)


@dataclass
class Mount:
    """A running ``amofs mount --foreground`` subprocess."""

    path: Path
    proc: subprocess.Popen[bytes]
    log_file: Path
    output: Path
    args: list[str] = field(default_factory=list)

    def log(self) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        out = self.output.read_text(errors="replace") if self.output.exists() else ""
        return f"--- log ---\n{text}\n--- stdout/stderr ---\n{out}"

    def p(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def wait_mounted(self, timeout: float = MOUNT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if is_amofs_mount(self.path):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"amofs mount exited with {self.proc.returncode} before mounting\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"not mounted after {timeout:.0f} s\n{self.log()}")

    def unmount(self, timeout: float = STOP_TIMEOUT) -> int:
        """Unmount the clean way and wait for the process; returns its exit status."""
        res = sh("fusermount3", "-u", self.path, timeout=15)
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Teardown: whatever state things are in, leave no mount and no process behind."""
        try:
            if self.proc.poll() is None and find_mount(self.path) is not None:
                subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True, timeout=15)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                unmount_hard(self.path)
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            unmount_hard(self.path)


def start_foreground(
    path: Path, workdir: Path, args: Sequence[str], *, env: dict[str, str] | None = None, wait: bool = True
) -> Mount:
    """``amofs mount PATH --foreground --log-file … ARGS`` as a child process, waited for unless ``wait=False``."""
    log_file = workdir / f"{path.name}.log"
    output = workdir / f"{path.name}.out"
    cmd = [*AMOFS, "mount", str(path), "--foreground", "--log-file", str(log_file), *args]
    with open(output, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    m = Mount(path, proc, log_file, output, list(args))
    if wait:
        try:
            m.wait_mounted()
        except BaseException:
            m.stop()
            raise
    return m


def stop_daemon(path: Path) -> None:
    """Teardown of a daemon-mode mount: unmount, then make sure the process it recorded is gone."""
    pid = serving_pid(path)
    try:
        if find_mount(path) is not None:
            subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, timeout=15)
        if pid is not None:
            deadline = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < deadline and pid_alive(pid):
                time.sleep(0.05)
            end_pid(pid)
    finally:
        unmount_hard(path)


#: the ``mount_factory`` fixture: ``(emulator, path, *extra_args, token=None, wait=True) -> Mount``
MountFactory = Callable[..., Mount]


# --- fixtures' bodies, shared by tests/mount, tests/reliability and tests/usability --------------------------


def isolate_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test's own environment, inherited by every amofs subprocess it starts: XDG folders under tmp, no
    AMOFS_* (nor a systemd NOTIFY_SOCKET) from outside."""
    for key in list(os.environ):
        if key.startswith("AMOFS_") or key.startswith("XDG_") or key == "NOTIFY_SOCKET":
            monkeypatch.delenv(key)
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    return dict(os.environ)


def new_mountpoint(tmp_path: Path) -> Path:
    path = tmp_path / "mnt"
    path.mkdir()
    return path


@contextlib.contextmanager
def foreground_mounts(tmp_path: Path) -> Iterator[MountFactory]:
    """``make(emulator, path, *extra_args, token=None, wait=True)`` → a foreground Mount (token via AMOFS_TOKEN);
    every one made is unmounted and ended on leaving, failure or not."""
    made: list[Mount] = []

    def make(emu: Emulator, path: Path, *extra: str, token: str | None = None, wait: bool = True) -> Mount:
        env = dict(os.environ, AMOFS_TOKEN=emu.token if token is None else token)
        args = ["--account-url", emu.account_url, "--drive-url", emu.drive_url, *extra]
        m = start_foreground(path, tmp_path, args, env=env, wait=wait)
        made.append(m)
        return m

    try:
        yield make
    finally:
        for m in reversed(made):
            m.stop()
