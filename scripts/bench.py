#!/usr/bin/env python3
"""amofs beside curl, its own API client and rclone, on the same data, in one run: prints one table.

    sudo .venv/bin/python scripts/bench.py            # full sizes (about 5 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick         # smaller sizes (about 1 minute)

What it sets up (everything under one temporary directory, removed at the end unless --keep):
- emulators in this process (amofs.emulator, threads on 127.0.0.1; rate limit off unless a row says 7/s):
  one with a large file, one with N small files, one with 10N, one with the demo account, one at 7 req/s;
- amofs mounts (``python -m amofs mount --foreground``, a separate process; ``--rate`` raised except for the
  7/s rows), each unmounted at the end (fusermount3 -u, then -uz) and its process ended by pid;
- curl of the same download link; the direct API client (``upload_file``, same part size) in a subprocess;
- rclone (installed with apt-get when missing and allowed): ``rclone serve webdav`` of a local folder holding
  the same bytes, or N files, and ``rclone mount`` of it (``--vfs-cache-mode off``: reads stream from the
  server, a cp ends when the server has the file).

Timings are medians of ``--reps`` runs, each cold run on a fresh mount (fresh process, empty caches), so no
page cache or client cache carries over. Request counts are exact, from the emulator's log. The ratios are
what the performance issue sets as targets; PASS/MISS is printed beside each, nothing asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amofs.emulator.server import Emulator, EmulatorOptions, SeedItem  # noqa: E402
from amofs.filesystem import STATS_DELAY  # noqa: E402

MiB = 1 << 20
PY = sys.executable
CMD_TIMEOUT = 600.0  # seconds any one command may take
MOUNT_TIMEOUT = 60.0


# --- small helpers -----------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd: Sequence[str | os.PathLike[str]], *, timeout: float = CMD_TIMEOUT, **kw: Any) -> str:
    """Run a command that must succeed; its stdout as text."""
    kw.setdefault("stdout", subprocess.PIPE)
    res = subprocess.run([os.fspath(c) for c in cmd], stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return res.stdout or ""


def timed(cmd: Sequence[str | os.PathLike[str]], **kw: Any) -> float:
    t = time.perf_counter()
    run(cmd, **kw)
    return time.perf_counter() - t


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mounted(path: Path) -> str | None:
    """The fstype mounted exactly at ``path``, or None."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == str(path):
                return right.split()[0]
    return None


def bdi_read_ahead(path: Path) -> int | None:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(path):
                try:
                    return int(Path(f"/sys/class/bdi/{fields[2]}/read_ahead_kb").read_text())
                except OSError:
                    return None
    return None


def unmount(path: Path) -> None:
    """fusermount3 -u, then -uz as a last resort."""
    for flags in ("-u", "-uz"):
        if mounted(path) is None:
            return
        subprocess.run(["fusermount3", flags, str(path)], capture_output=True, timeout=30)
        deadline = time.monotonic() + 5
        while mounted(path) is not None and time.monotonic() < deadline:
            time.sleep(0.05)


def end_process(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait for a process this script started; SIGTERM then SIGKILL it (by its pid) if it lingers."""
    try:
        proc.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of a process (VmHWM), MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def settle() -> None:
    """Before a timed run: dirty pages of earlier runs written out, so no writeback competes with it."""
    os.sync()


def new_file_write_speed(folder: Path, size: int) -> float:
    """MB/s of writing a new file of ``size`` bytes in 1 MiB pwrites (as the content cache and the spool do)."""
    path = folder / "write-speed.tmp"
    block = os.urandom(MiB)
    settle()
    t = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for off in range(0, size, MiB):
            os.pwrite(fd, block, off)
    finally:
        os.close(fd)
    speed = size / (time.perf_counter() - t) / 1e6
    path.unlink()
    return speed


def write_random(path: Path, size: int, seed: int = 1) -> bytes:
    import random

    rng = random.Random(seed)
    data = b"".join(rng.randbytes(min(16 * MiB, size - off)) for off in range(0, size, 16 * MiB))
    path.write_bytes(data)
    return data


# --- the pieces under test -----------------------------------------------------------------------------------


@dataclass
class Amofs:
    """One ``amofs mount --foreground`` process."""

    bench: Bench
    emu: Emulator
    path: Path
    cache: Path
    rate: float | None  # None: amofs's default (7/s)
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Amofs:
        self.path.mkdir(parents=True, exist_ok=True)
        args = [PY, "-m", "amofs", "mount", str(self.path), "--foreground", "--account-url", self.emu.account_url]
        args += ["--drive-url", self.emu.drive_url, "--cache-dir", str(self.cache)]
        args += ["--log-file", str(self.bench.tmp / f"amofs-{self.path.name}.log")]
        if self.rate is not None:
            args += ["--rate", str(self.rate)]
        env = dict(self.bench.env, AMOFS_TOKEN=self.emu.token)
        out = open(self.bench.tmp / f"amofs-{self.path.name}.out", "ab")
        try:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
        finally:
            out.close()
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"amofs mount exited ({self.proc.returncode}); see {self.bench.tmp}")
            if mounted(self.path) == "fuse.amofs":
                status = self.path / ".amofs" / "status"
                with contextlib.suppress(OSError):
                    json.loads(status.read_bytes())  # answered: INIT done
                    self._wait_read_ahead(deadline)
                    return
            time.sleep(0.02)
        raise RuntimeError(f"amofs did not mount at {self.path} in {MOUNT_TIMEOUT:.0f} s")

    def _wait_read_ahead(self, deadline: float) -> None:
        """The mount raises its bdi's read-ahead just after INIT (as root); a reader opened before that keeps
        the kernel's 128 KiB."""
        if os.geteuid() != 0:
            return
        while time.monotonic() < min(deadline, time.monotonic() + 2):
            ra = bdi_read_ahead(self.path)
            if ra is None or ra > 128:
                return
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        try:
            unmount(self.path)
        finally:
            if self.proc is not None:
                end_process(self.proc)


@dataclass
class Rclone:
    """``rclone serve webdav DIR`` plus ``rclone mount`` of it."""

    bench: Bench
    served: Path
    path: Path
    serve: subprocess.Popen[bytes] | None = None
    mount: subprocess.Popen[bytes] | None = None
    port: int = 0

    def __enter__(self) -> Rclone:
        self.port = free_port()
        env = dict(self.bench.env, RCLONE_CONFIG=str(self.bench.tmp / "rclone.conf"))
        self.path.mkdir(parents=True, exist_ok=True)
        logf = open(self.bench.tmp / f"rclone-{self.path.name}.log", "ab")
        try:
            self.serve = subprocess.Popen(
                ["rclone", "serve", "webdav", str(self.served), "--addr", f"127.0.0.1:{self.port}"],
                stdout=logf,
                stderr=logf,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            self._wait_port()
            self.mount = subprocess.Popen(
                [
                    *("rclone", "mount", ":webdav:", str(self.path)),
                    *("--webdav-url", f"http://127.0.0.1:{self.port}", "--vfs-cache-mode", "off"),
                    *("--dir-cache-time", "10m"),
                ],
                stdout=logf,
                stderr=logf,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            logf.close()
        try:
            deadline = time.monotonic() + MOUNT_TIMEOUT
            while mounted(self.path) is None:
                if self.mount.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rclone mount failed; see {self.bench.tmp}")
                time.sleep(0.02)
            os.stat(self.path)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_port(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        raise RuntimeError("rclone serve webdav did not listen")

    def __exit__(self, *exc: object) -> None:
        try:
            unmount(self.path)
        finally:
            for proc in (self.mount, self.serve):
                if proc is not None:
                    if proc.poll() is None and proc is self.serve:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(proc.pid, signal.SIGTERM)
                    end_process(proc, timeout=30)


# --- the table ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    amofs: str
    ref: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    env: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    mounts: int = 0
    shm: Path | None = None  # a folder on tmpfs for the rows that take the local disk out of the way

    def section(self, title: str) -> None:
        self.rows.append(Row(f"[{title}]", ""))

    def row(
        self, what: str, amofs: str, ref: str = "", ratio: str = "", target: str = "", ok: bool | None = None
    ) -> None:
        self.rows.append(Row(what, amofs, ref, ratio, target, "" if ok is None else ("PASS" if ok else "MISS")))

    def emulator(self, name: str, **options: Any) -> Emulator:
        emu = Emulator(self.tmp / f"emu-{name}", EmulatorOptions(**options))
        emu.start()
        self.stack.callback(emu.stop)
        return emu

    def amofs(self, emu: Emulator, cache: Path | None = None, rate: float | None = None) -> Amofs:
        self.mounts += 1
        return Amofs(self, emu, self.tmp / f"mnt{self.mounts}", cache or self.tmp / f"cache{self.mounts}", rate)

    def rclone(self, served: Path) -> Rclone:
        self.mounts += 1
        return Rclone(self, served, self.tmp / f"rmnt{self.mounts}")

    @property
    def fast_rate(self) -> float:
        return 1_000_000.0  # amofs's own bucket out of the way (the emulator's limit is off)


def requests(emu: Emulator) -> list[str]:
    """The kinds of the requests in the emulator's log (see ``kind``), oldest first."""
    return [kind(r.host, r.method, r.path, r.query) for r in emu.log]


def kind(host: str, method: str, path: str, query: str) -> str:
    if path.startswith("/download/") or host == "storage":
        return "download" if host == "drive" else "storage hop"
    if host == "upload" or path.startswith("/v1.0/sessions/upload/"):
        return "part"
    if method == "POST" and path == "/v1.0/sessions":
        return "session"
    if method == "GET" and path == "/v1.0/files":
        if "filter%5Bdeleted%5D" in query or "filter[deleted]" in query:
            return "list trash"
        if "updated_at" in query:
            return "list changed"
        return "list"
    if path == "/v1.0/files/stats":
        return "stats"
    if method == "GET" and path.startswith("/v1.0/files/"):
        return "get file"
    if path == "/api/v4/account":
        return "account"
    return f"{method} {path}"


def count(reqs: Sequence[str], *kinds: str) -> int:
    return sum(1 for k in reqs if k in kinds)


def describe(reqs: Sequence[str]) -> str:
    n: dict[str, int] = {}
    for k in reqs:
        n[k] = n.get(k, 0) + 1
    return ", ".join(f"{c} {k}" for k, c in sorted(n.items(), key=lambda kc: -kc[1])) or "none"


# --- the measurements ---------------------------------------------------------------------------------------


def bench_read_write(b: Bench) -> None:
    size = b.args.size * MiB
    reps = b.args.reps
    src_dir = b.tmp / "rclone-read"
    src_dir.mkdir()
    log(f"seeding a {b.args.size} MiB file")
    data = write_random(src_dir / "big.bin", size)
    emu = b.emulator("rw")
    uuid = emu.seed_file("big.bin", data, linked=())
    link = emu.file(uuid)["_links"]["download"]["href"]
    del data

    def curl() -> float:
        auth = f"Authorization: Bearer {emu.token}"
        out = run(
            ["curl", "-sS", "-f", "-L", "-o", "/dev/null", "-H", auth, "-w", "%{time_total} %{size_download}", link]
        )
        t, n = out.split()
        if int(n) != size:
            raise RuntimeError(f"curl got {n} bytes of {size}")
        return float(t)

    def amofs_cat(cache: Path) -> tuple[float, list[str], int | None]:
        with b.amofs(emu, cache, b.fast_rate) as m:
            f = m.path / "files" / "big.bin"
            os.stat(f)  # lookup (the listing) before the clock starts
            emu.reset_log()
            settle()
            t = timed(["cat", f], stdout=subprocess.DEVNULL)
            return t, requests(emu), bdi_read_ahead(m.path)

    # one round = curl, amofs cold (fresh mount, empty cache dir), amofs warm (fresh mount on the content
    # cache the cold run left), rclone cold (fresh mount): the same conditions for all four, interleaved
    curl()  # the blob into the page cache, as for every later reader
    curl_t, cold, warm, rcl, cold_shm = [], [], [], [], []
    for i in range(reps):
        settle()
        curl_t += [curl(), curl()]
        cache = b.tmp / f"rcache{i}"
        t, cold_reqs, ra = amofs_cat(cache)
        cold.append(t)
        t, warm_reqs, _ = amofs_cat(cache)
        warm.append(t)
        shutil.rmtree(cache)
        if b.shm is not None:
            cold_shm.append(amofs_cat(b.shm / f"rcache{i}")[0])
            shutil.rmtree(b.shm / f"rcache{i}")
        if b.args.rclone:
            with b.rclone(src_dir) as r:
                settle()
                rcl.append(timed(["cat", r.path / "big.bin"], stdout=subprocess.DEVNULL))
    b.notes.append(f"read-ahead of the amofs mount's bdi: {ra} KiB (the kernel's default for FUSE: 128)")
    c, w, ct = median(cold), median(warm), median(curl_t)
    b.section(f"read: cat of a {b.args.size} MiB file (median of {reps}; cold = fresh mount, empty caches)")
    b.row("emulator ceiling: curl -L of the download link", f"{size / ct / 1e6:.0f} MB/s", f"{ct:.3f} s")
    b.row("cold: amofs cat vs curl", f"{c:.3f} s", f"{ct:.3f} s", f"{ct / c:.2f}x", ">= 0.5x", ct / c >= 0.5)
    if rcl:
        rc = median(rcl)
        b.row(
            "cold: amofs cat vs rclone mount cat",
            f"{c:.3f} s",
            f"{rc:.3f} s",
            f"{rc / c:.2f}x",
            ">= 1.3x",
            rc / c >= 1.3,
        )
    if cold_shm:
        cs = median(cold_shm)
        b.row("cold, cache dir on tmpfs (no disk writes) vs curl", f"{cs:.3f} s", f"{ct:.3f} s", f"{ct / cs:.2f}x")
    b.row(
        "warm (content cache, after remount) vs curl",
        f"{w:.3f} s",
        f"{ct:.3f} s",
        f"{ct / w:.2f}x",
        ">= 1.0x",
        ct / w >= 1.0,
    )
    b.row(
        "requests: cat of a listed file (cold)",
        describe(cold_reqs),
        "",
        "",
        "1 download",
        count(cold_reqs, "download") == 1 == len(cold_reqs) - count(cold_reqs, "storage hop"),
    )
    b.row("requests: cat from the content cache", describe(warm_reqs), "", "", "0", not warm_reqs)

    # --- write --------------------------------------------------------------------------------------------
    src = src_dir / "big.bin"
    part = emu.options.max_part_size
    amo_w, direct_w, rcl_w, shm_w = [], [], [], []
    for i in range(reps):
        with b.amofs(emu, None, b.fast_rate) as m:
            os.listdir(m.path / "files")
            emu.reset_log()
            settle()
            amo_w.append(timed(["cp", src, m.path / "files" / f"w{i}.bin"]))
            reqs = requests(emu)
        if b.shm is not None:
            with b.amofs(emu, b.shm / f"wcache{i}", b.fast_rate) as m:
                os.listdir(m.path / "files")
                settle()
                shm_w.append(timed(["cp", src, m.path / "files" / f"s{i}.bin"]))
            shutil.rmtree(b.shm / f"wcache{i}")
        settle()
        direct_w.append(direct_upload(b, emu, src, f"d{i}.bin"))
        if b.args.rclone:
            dst = b.tmp / f"rclone-write{i}"
            dst.mkdir()
            with b.rclone(dst) as r:
                settle()
                t = time.perf_counter()
                run(["cp", src, r.path / "w.bin"])
                deadline = time.monotonic() + 120
                while not ((dst / "w.bin").exists() and (dst / "w.bin").stat().st_size == size):
                    if time.monotonic() > deadline:
                        raise RuntimeError("rclone never delivered the file")
                    time.sleep(0.005)
                rcl_w.append(time.perf_counter() - t)
            shutil.rmtree(dst)
    aw, dw = median(amo_w), median(direct_w)
    b.section(f"write: cp of a {b.args.size} MiB file in, until the account has it (parts of {part // 1024} KiB)")
    b.row(
        "amofs cp vs the API client's upload_file",
        f"{aw:.3f} s",
        f"{dw:.3f} s",
        f"{dw / aw:.2f}x",
        ">= 0.8x",
        dw / aw >= 0.8,
    )
    if shm_w:
        sw = median(shm_w)
        b.row("amofs cp, cache dir (spool) on tmpfs, vs upload_file", f"{sw:.3f} s", f"{dw:.3f} s", f"{dw / sw:.2f}x")
    if rcl_w:
        rw = median(rcl_w)
        b.row(
            "amofs cp vs rclone mount cp (webdav)",
            f"{aw:.3f} s",
            f"{rw:.3f} s",
            f"{rw / aw:.2f}x",
            ">= 1.0x",
            rw / aw >= 1.0,
        )
    want = math.ceil(size / part)
    b.row(
        "requests: cp in",
        describe(reqs),
        "",
        "",
        f"1 session + {want} part",
        count(reqs, "session") == 1 and count(reqs, "part") == want == len(reqs) - 1,
    )

    # --- memory -------------------------------------------------------------------------------------------
    with b.amofs(emu, None, b.fast_rate) as m:
        base = vm_hwm_mib(m.pid)
        run(["cp", src, m.path / "files" / "mem.bin"])
        os.listdir(m.path / "files")
        out = b.tmp / "out.bin"
        run(["cp", m.path / "files" / "mem.bin", out])
        out.unlink()
        peak = vm_hwm_mib(m.pid)
    b.section("memory: peak RSS (VmHWM) of the amofs process")
    b.row(
        f"cp of {b.args.size} MiB in, then out (at start: {base:.0f} MiB)",
        f"{peak:.0f} MiB",
        "",
        "",
        "< 100 MiB",
        peak < 100,
    )


def direct_upload(b: Bench, emu: Emulator, src: Path, name: str) -> float:
    """amofs's API client uploading ``src`` in a process of its own (as the mount is), rate limit off."""
    code = textwrap.dedent(
        """
        import sys, time, trio
        from amofs.api.client import AmoClient
        from amofs.api.upload import upload_file
        async def main(account, drive, token, path, name):
            async with AmoClient(account, token=token, drive_url=drive, rate=0) as c:
                with open(path, "rb") as f:
                    size = f.seek(0, 2)
                    t = time.perf_counter()
                    await upload_file(c, f, name, size)
                    print(time.perf_counter() - t)
        trio.run(main, *sys.argv[1:])
        """
    )
    out = run([PY, "-c", code, emu.account_url, emu.drive_url, emu.token, str(src), name], env=b.env)
    return float(out.strip().splitlines()[-1])


def bench_listing(b: Bench) -> None:
    n, big = b.args.files, b.args.files * 10
    log(f"seeding {n} and {big} files")
    emu = b.emulator("list")
    day_ago = int(time.time()) - 86400  # changed long before any sync: an incremental poll finds nothing
    emu.seed_many(SeedItem(f"file{i:06d}.txt", b"x" * (i % 100), linked=(), created_at=day_ago) for i in range(n))
    emu_big = b.emulator("big")
    emu_big.seed_many(SeedItem(f"file{i:07d}.txt", b"y" * (i % 100), linked=(), created_at=day_ago) for i in range(big))
    served = b.tmp / "rclone-list"
    served.mkdir()
    for i in range(n):
        (served / f"file{i:06d}.txt").write_bytes(b"x" * (i % 100))
    page = emu.options.max_page_size
    reps = b.args.reps

    cold, warm, rc_cold, rc_warm = [], [], [], []
    counts: dict[str, list[str]] = {}
    for i in range(reps):
        cache = b.tmp / f"lcache{i}"
        with b.amofs(emu, cache, b.fast_rate) as m:
            files = m.path / "files"
            emu.reset_log()
            cold.append(timed(["ls", "-l", files], stdout=subprocess.DEVNULL))
            counts["cold"] = requests(emu)
            emu.reset_log()
            warm.append(timed(["ls", "-l", files], stdout=subprocess.DEVNULL))
            counts["warm"] = requests(emu)
            if i == reps - 1:
                # the mount fetches the quota (for df) once, STATS_DELAY after it started, in the background:
                # let that happen first, so the count is what find and stat themselves cost
                deadline = time.monotonic() + STATS_DELAY + 10
                seen = "stats" in counts["cold"] or "stats" in counts["warm"]
                while not seen and "stats" not in requests(emu) and time.monotonic() < deadline:
                    time.sleep(0.05)
                emu.reset_log()
                run(["find", files, "-type", "f", "-size", "+0"], stdout=subprocess.DEVNULL)
                for k in range(0, n, max(1, n // 50)):
                    os.stat(files / f"file{k:06d}.txt")
                counts["stat"] = requests(emu)
                emu.reset_log()
                run(["cat", files / "file000042.txt"], stdout=subprocess.DEVNULL)
                counts["cat"] = requests(emu)
        if b.args.rclone:
            with b.rclone(served) as r:
                rc_cold.append(timed(["ls", "-l", r.path], stdout=subprocess.DEVNULL))
                rc_warm.append(timed(["ls", "-l", r.path], stdout=subprocess.DEVNULL))
    # a remount on the persisted index: the requests from the start of the mount until ls -l has answered
    emu.reset_log()
    with b.amofs(emu, cache, b.fast_rate) as m:
        at_start = requests(emu)
        emu.reset_log()
        t_re = timed(["ls", "-l", m.path / "files"], stdout=subprocess.DEVNULL)
        for_ls = requests(emu)

    c, w = median(cold), median(warm)
    b.section(f"listing: ls -l of {n} files (median of {reps}; cold = fresh mount, empty cache dir)")
    if rc_cold:
        rc, rw = median(rc_cold), median(rc_warm)
        b.row(
            "cold: amofs vs rclone mount (webdav)",
            f"{c:.3f} s",
            f"{rc:.3f} s",
            f"{c / rc:.2f}x time",
            "<= 0.75x",
            c / rc <= 0.75,
        )
        b.row(
            "warm: amofs vs rclone mount (webdav)",
            f"{w:.3f} s",
            f"{rw:.3f} s",
            f"{w / rw:.2f}x time",
            "<= 1.0x",
            w / rw <= 1.0,
        )
    else:
        b.row("cold / warm: amofs", f"{c:.3f} / {w:.3f} s")
    b.row("after a remount on the persisted index", f"{t_re:.3f} s")
    pages = math.ceil(n / page)
    b.section("request economy (exact counts from the emulator's log)")
    b.row(
        f"ls -l {n} files, cold",
        describe(counts["cold"]),
        "",
        "",
        f"{pages} list (⌈{n}/{page}⌉)",
        count(counts["cold"], "list") == pages == len(counts["cold"]),
    )
    b.row("ls -l again (warm)", describe(counts["warm"]), "", "", "0", not counts["warm"])
    b.row("find + stat after the listing", describe(counts["stat"]), "", "", "0", not counts["stat"])
    b.row(
        "cat of a listed file",
        describe(counts["cat"]),
        "",
        "",
        "1 download",
        count(counts["cat"], "download") == 1 == len(counts["cat"]) - count(counts["cat"], "storage hop"),
    )
    b.row(
        "remount on the persisted index, until ls -l answers",
        f"start: {describe(at_start)}; ls: {describe(for_ls)}",
        "",
        "",
        "<= 2",
        len(at_start) + len(for_ls) <= 2,
    )

    # --- scale: 10x the files -----------------------------------------------------------------------------
    with b.amofs(emu_big, None, b.fast_rate) as m:
        emu_big.reset_log()
        t_big = timed(["ls", "-l", m.path / "files"], stdout=subprocess.DEVNULL)
        big_reqs = requests(emu_big)
        rss = vm_hwm_mib(m.pid)
    per_small, per_big = c / n, t_big / big
    b.section(f"scale: {big} files")
    b.row(
        f"ls -l cold, time per file: {big} vs {n} files",
        f"{per_big * 1e6:.1f} us",
        f"{per_small * 1e6:.1f} us",
        f"{per_big / per_small:.2f}x",
        "<= 1.5x",
        per_big / per_small <= 1.5,
    )
    b.row(f"  requests of that ls -l ({t_big:.2f} s)", describe(big_reqs))
    b.row(f"peak RSS with {big} files listed", f"{rss:.0f} MiB", "", "", "< 250 MiB", rss < 250)


def bench_demo(b: Bench) -> None:
    from amofs.emulator.demo import seed_demo

    emu = b.emulator("demo")
    seed_demo(emu)
    time.sleep(1.1)
    with b.amofs(emu, None, b.fast_rate) as m:
        emu.reset_log()
        run(["ls", "-l", m.path / "files"])
        cold = requests(emu)
        emu.reset_log()
        run(["ls", "-l", m.path / "files"])
        warm = requests(emu)
    b.section("demo account (the mount issue's figure): ls -l files/")
    b.row("cold", describe(cold), "", "", "1 list", cold == ["list"])
    b.row("warm", describe(warm), "", "", "0", not warm)


def bench_rate_limited(b: Bench) -> None:
    nfiles, size = b.args.small_files, b.args.limited_size * MiB
    rate = 7.0
    emu = b.emulator("7rps", rate_limit=rate)
    part = emu.options.max_part_size
    src = b.tmp / "rsync-src"
    src.mkdir()
    for i in range(nfiles):
        (src / f"small{i:03d}.txt").write_bytes(f"small file {i}\n".encode() * (i + 1))
    big = b.tmp / "limited.bin"
    write_random(big, size, seed=7)
    rows = []
    with b.amofs(emu, None, None) as m:
        files = m.path / "files"
        os.listdir(files)
        for what, cmd, need in (
            (f"rsync -r of {nfiles} small files", ["rsync", "-r", f"{src}/", f"{files}/"], 2 * nfiles),
            (f"cp of {b.args.limited_size} MiB", ["cp", big, files / "limited.bin"], 1 + math.ceil(size / part)),
        ):
            time.sleep(2)  # both buckets full again, as after any pause
            emu.reset_log()
            t = timed(cmd)
            reqs = requests(emu)
            throttled = emu.count(status=429)
            rows.append((what, t, reqs, need, throttled))
    b.section(f"at the production limit: emulator {rate:g} req/s, amofs at its default rate")
    for what, t, reqs, need, throttled in rows:
        tmin = need / rate
        b.row(
            what,
            f"{t:.1f} s, {len(reqs)} req",
            f"{tmin:.1f} s = {need} req / {rate:g}",
            f"{t / tmin:.2f}x",
            "<= 1.15x",
            t / tmin <= 1.15,
        )
        b.row(f"  429 answers; requests: {describe(reqs)}", str(throttled), "", "", "0", throttled == 0)


def ensure_rclone(allow_install: bool) -> bool:
    if shutil.which("rclone"):
        return True
    if not allow_install or os.geteuid() != 0:
        log("rclone is missing (apt-get install -y rclone); its columns are left out")
        return False
    log("installing rclone from Debian")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(["apt-get", "install", "-y", "-q", "rclone"], env=env, timeout=600)
    except (RuntimeError, subprocess.TimeoutExpired):
        run(["apt-get", "update", "-q"], env=env, timeout=600)
        run(["apt-get", "install", "-y", "-q", "rclone"], env=env, timeout=600)
    return shutil.which("rclone") is not None


def machine() -> list[str]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for mod in ("httpx", "httpcore", "trio", "pyfuse3"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{mod} {version(mod)}")
    tools = []
    for tool, arg in (("curl", "--version"), ("rclone", "version")):
        if shutil.which(tool):
            with contextlib.suppress(Exception):
                tools.append(run([tool, arg], timeout=30).splitlines()[0])
    return [
        f"machine: {cpu}, {os.cpu_count()} CPUs, {mem:.0f} GiB RAM; {platform.system()} {platform.release()}",
        f"python {platform.python_version()}; {', '.join(versions)}; {'; '.join(tools)}",
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def render(b: Bench, header: list[str], started: float) -> str:
    cols = ("what", "amofs", "reference", "ratio", "target", "")
    rows = [(r.what, r.amofs, r.ref, r.ratio, r.target, r.result) for r in b.rows]
    widths = [max(len(c), *(len(r[i]) for r in rows if not r[0].startswith("["))) for i, c in enumerate(cols)]
    widths[0] = min(widths[0], 60)
    lines = [*header]
    sep = "  "
    lines.append(sep.join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    lines.append(sep.join("-" * w for w in widths))
    for r in rows:
        if r[0].startswith("["):
            lines.append(r[0])
        else:
            lines.append(sep.join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    verdicts = [r.result for r in b.rows if r.result]
    lines.append("")
    lines.append(f"{verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS")
    lines.extend(b.notes)
    lines.append(
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"bench took {time.monotonic() - started:.0f} s"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes: 64 MiB, 2,000 files, 20 small files, 10 MiB")
    p.add_argument("--size", type=int, help="MiB of the read/write file (256)")
    p.add_argument("--files", type=int, help="files of the listing account (10000; the scale row uses 10x)")
    p.add_argument("--small-files", type=int, help="files rsync'ed at 7 req/s (100)")
    p.add_argument("--limited-size", type=int, help="MiB copied at 7 req/s (50)")
    p.add_argument("--reps", type=int, help="runs per timing (3; the median is shown)")
    p.add_argument("--only", action="append", choices=("rw", "list", "demo", "7rps"), help="run only these parts")
    p.add_argument("--no-rclone", dest="rclone", action="store_false", help="leave rclone out")
    p.add_argument("--no-install", dest="install", action="store_false", help="never apt-get install rclone")
    p.add_argument(
        "--no-tmpfs", dest="tmpfs", action="store_false", help="leave out the rows with the cache dir on /dev/shm"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, caches)")
    args = p.parse_args(argv)
    q = args.quick
    args.size = args.size or (64 if q else 256)
    args.files = args.files or (2000 if q else 10_000)
    args.small_files = args.small_files or (20 if q else 100)
    args.limited_size = args.limited_size or (10 if q else 50)
    args.reps = args.reps or (2 if q else 3)
    for tool in ("fusermount3", "curl", "rsync"):
        if not shutil.which(tool):
            print(f"bench: {tool} is needed", file=sys.stderr)
            return 2
    if args.rclone:
        args.rclone = ensure_rclone(args.install)
    started = time.monotonic()
    header = machine()
    tmp = Path(tempfile.mkdtemp(prefix="amofs-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMOFS_", "XDG_"))}
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
        (tmp / var.lower()).mkdir(mode=0o700)
        env[var] = str(tmp / var.lower())
    (tmp / "rclone.conf").write_text("")
    b = Bench(args, tmp, env)
    shm_root = Path("/dev/shm")
    if args.tmpfs and shm_root.is_dir() and shutil.disk_usage(shm_root).free > 4 * args.size * MiB:
        b.shm = Path(tempfile.mkdtemp(prefix="amofs-bench-", dir=shm_root))
        disk = new_file_write_speed(tmp, args.size * MiB)
        mem = new_file_write_speed(b.shm, args.size * MiB)
        b.notes.append(
            f"new-file writes of {args.size} MiB (content cache, spool): {disk:.0f} MB/s in {tmp.parent} "
            f"(the default cache dir's disk), {mem:.0f} MB/s on tmpfs"
        )
    parts: dict[str, Callable[[Bench], None]] = {
        "rw": bench_read_write,
        "list": bench_listing,
        "demo": bench_demo,
        "7rps": bench_rate_limited,
    }
    failed = None
    try:
        with b.stack:
            for name, fn in parts.items():
                if args.only and name not in args.only:
                    continue
                log(f"running {name}")
                fn(b)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception as e:  # the rows measured so far are still worth printing
        failed = e
        import traceback

        traceback.print_exc()
    finally:
        for d in sorted(tmp.glob("*mnt*")):
            unmount(d)
        if b.shm is not None:
            shutil.rmtree(b.shm, ignore_errors=True)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(render(b, header, started))
    if failed is not None:
        print(f"bench stopped early: {type(failed).__name__}: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
