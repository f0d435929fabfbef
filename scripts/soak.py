#!/usr/bin/env python3
"""Soak test: a real amofs mount against the emulator with faults switched on, for a bounded time, then proof
that nothing was lost.

    .venv/bin/python scripts/soak.py                 # 5 minutes
    .venv/bin/python scripts/soak.py --seconds 20    # a smoke run
    .venv/bin/python scripts/soak.py --json out.json # figures as JSON too

Everything runs on loopback: the emulator (in this process, 127.0.0.1, the real service's 7 requests/s limit)
and ``amofs mount --foreground`` (a child process) on a temporary mount point, both removed at the end.

Workers (threads doing plain file I/O on the mount):
  writers (4)  each owns the names ``wN-K.bin``: new files and overwrites (cp-style, O_TRUNC), rsync-style
               writes (a temp name renamed over the target), renames (also onto an existing name), rm (to
               the trash) and restores (mv trash/X files/X). Every content is self-describing — a header
               ``name|seq|size`` and bytes generated from it — so any reader can tell a whole content from a
               torn, short or foreign one. A write whose close() succeeded is *acknowledged*; one that
               failed is retried, and its content counts as "maybe stored" (its outcome may be unknown).
  readers (4)  read whole files and random ranges of other writers' names and compare every byte with the
               content the name must hold (the acknowledged one, or a maybe-stored one).
  lister (1)   lists files/ and trash/, stats entries, reads the mount's status file.
  faults (1)   every few seconds: upload parts answering 500 (a few, or more than the client retries),
               requests failing with 500/502/503, downloads cut mid-body, 200 ms latency, 429 storms (the
               limit dropped below the mount's budget), garbled listings (cut JSON, HTML with 200), and once
               a minute the emulator stopped and started again.

At the end the faults stop, the mount is unmounted cleanly (pending uploads finish), and the emulator's
storage is checked: every live file of the account is one of the writers' names and holds exactly the bytes
last written there (or a maybe-stored content), every acknowledged content is in the account (as the active
version of its name, or as an older version or a trashed file), and every stored version of every file is
a whole, self-consistent content (no half files). Exit status 0 when files lost = 0 and no reader saw wrong
bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amofs.emulator.server import Emulator, EmulatorOptions, restartable_port  # noqa: E402
from amofs.mount import find_mount  # noqa: E402

PART = 128 * 1024
HEADER = re.compile(rb"^(w\d+-\d+\.bin)\|(\d+)\|(\d+)\n")
SUFFIX = re.compile(r" \([0-9a-f]{8}\)(?=\.bin$)")


# --- contents ------------------------------------------------------------------------------------------------


Cid = tuple[str, int, int]  # (name it was written under, seq, size): identifies one content


def content(cid: Cid) -> bytes:
    name, seq, size = cid
    head = f"{name}|{seq}|{size}\n".encode()
    if size <= len(head):
        return head[:size] if size else b""
    out = bytearray(head)
    block = hashlib.sha256(head).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:size])


def cid_of(data: bytes) -> Cid | None:
    """The content id a byte string claims (None for an empty or headerless one)."""
    m = HEADER.match(data)
    if m is None:
        return None
    return (m.group(1).decode(), int(m.group(2)), int(m.group(3)))


def whole(data: bytes) -> Cid | None:
    """The content id of ``data`` when it is exactly that content, else None."""
    cid = cid_of(data)
    return cid if cid is not None and content(cid) == data else None


# --- shared state ---------------------------------------------------------------------------------------------


@dataclass
class Name:
    """What a writer's name holds: ``acked`` (None = not live), and states it may hold instead because an
    operation's outcome is unknown (a write whose close() failed may still have arrived). ``unsure``: a rename,
    rm or restore on it failed, so its state stays open to every possibility seen since."""

    acked: Cid | None = None
    maybe: set[Cid | None] = field(default_factory=set)
    unsure: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allowed(self) -> set[Cid | None]:
        return {self.acked, *self.maybe}


@dataclass
class Figures:
    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    bytes_written: int = 0
    bytes_read: int = 0
    acked: set[Cid] = field(default_factory=set)
    maybe: set[Cid] = field(default_factory=set)
    wrong_reads: list[str] = field(default_factory=list)
    listing_problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    journal: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """One line of the run's journal (kept with --keep): what a worker did and saw, and when."""
        now = time.time()
        line = f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now * 1000) % 1000:03d} "
        with self.lock:
            self.journal.append(f"{line}{threading.current_thread().name} {text}")

    def op(self, kind: str, n: int = 1, detail: str = "") -> None:
        with self.lock:
            self.ops[kind] += n
        if detail:
            self.note(f"{kind} {detail}")

    def err(self, kind: str, e: BaseException) -> None:
        code = errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else type(e).__name__
        with self.lock:
            self.errors[f"{kind}:{code}"] += 1
        self.note(f"{kind} failed: {e}")

    def wrong(self, text: str) -> None:
        with self.lock:
            self.wrong_reads.append(text)
        self.note(f"WRONG {text}")


# --- the run --------------------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="amofs-soak-"))
        self.mnt = self.tmp / "mnt"
        self.mnt.mkdir()
        self.cache = self.tmp / "cache"
        self.log_file = self.tmp / "mount.log"
        self.options = EmulatorOptions(max_part_size=PART, rate_limit=7.0)
        self.ports = (restartable_port(), restartable_port())
        self.emu = Emulator(self.tmp / "emu", self.options, port=self.ports[0], drive_port=self.ports[1])
        self.emu_lock = threading.Lock()  # held while the emulator is being restarted
        self.restarts = 0
        self.names: dict[str, Name] = {}
        for w in range(args.writers):
            for k in range(args.files):
                self.names[f"w{w}-{k}.bin"] = Name()
        self.fig = Figures()
        self.stop = threading.Event()
        self.faults_off = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.status: dict[str, Any] = {}
        self.req_total = 0
        self.req_429 = 0
        self.req_5xx = 0

    # --- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.emu.start()
        env = dict(os.environ, AMOFS_TOKEN=self.emu.token)
        for k in list(env):
            if k.startswith("AMOFS_") and k != "AMOFS_TOKEN":
                del env[k]
        env["XDG_CONFIG_HOME"] = str(self.tmp / "config")
        env["XDG_RUNTIME_DIR"] = str(self.tmp)
        cmd = [
            sys.executable, "-m", "amofs", "mount", str(self.mnt), "--foreground",
            "--account-url", self.emu.account_url, "--drive-url", self.emu.drive_url,
            "--cache-dir", str(self.cache), "--cache-ttl", "5", "--log-file", str(self.log_file),
        ]  # fmt: skip
        if self.args.debug:
            cmd.append("--debug")
        self.out = open(self.tmp / "mount.out", "wb")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            entry = find_mount(self.mnt)
            if entry is not None and entry.fstype == "fuse.amofs":
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"the mount exited with {self.proc.returncode}: {self.tail()}")
            time.sleep(0.05)
        raise RuntimeError("the mount did not come up in 30 s")

    def tail(self, n: int = 20) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return "\n".join(text.splitlines()[-n:])

    def unmount(self) -> int:
        """Unmount cleanly (uploads in flight and pending finish first); returns the mount's exit status."""
        assert self.proc is not None
        if self.proc.poll() is None and find_mount(self.mnt) is not None:
            subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True, timeout=60)
        try:
            return self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)

    def cleanup(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.unmount()
        finally:
            if find_mount(self.mnt) is not None:
                subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True, timeout=30)
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
            with contextlib.suppress(Exception):
                self.emu.stop()
            with contextlib.suppress(Exception):
                self.out.close()
            if self.args.keep:
                (self.tmp / "journal.txt").write_text("\n".join(self.fig.journal) + "\n")
                print(f"soak: kept {self.tmp}", file=sys.stderr)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)

    # --- workers ------------------------------------------------------------------------------------------
    def p(self, *parts: str) -> Path:
        return self.mnt.joinpath(*parts)

    def size(self, rng: random.Random) -> int:
        r = rng.random()
        if r < 0.05:
            return 0
        if r < 0.6:
            return rng.randrange(30, 8_000)
        if r < 0.9:
            return rng.randrange(8_000, PART + 1)
        return rng.randrange(PART, 4 * PART)

    def write_file(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            step = 64 * 1024
            for off in range(0, len(data), step):
                os.write(fd, data[off : off + step])
        finally:
            os.close(fd)  # the upload's outcome arrives here

    def writer(self, w: int) -> None:
        rng = random.Random(self.args.seed * 1000 + w)
        mine = [n for n in self.names if n.startswith(f"w{w}-")]
        seq = 0
        while not self.stop.is_set():
            name = rng.choice(mine)
            st = self.names[name]
            r = rng.random()
            with st.lock:
                try:
                    if r < 0.45 or (st.acked is None and r < 0.75):
                        seq += 1
                        self.overwrite(name, (name, seq, self.size(rng)), rsync=rng.random() < 0.3)
                    elif r < 0.62:
                        self.rename(name, rng.choice([n for n in mine if n != name]))
                    elif r < 0.75:
                        self.unlink(name)
                    else:
                        self.restore(w, rng)
                except OSError as e:
                    self.fig.err("writer", e)
            time.sleep(rng.uniform(0, 0.2))

    def overwrite(self, name: str, cid: Cid, *, rsync: bool) -> None:
        st = self.names[name]
        data = content(cid)
        for attempt in range(3):
            try:
                if rsync:
                    tmp = self.p("files", f".{name}.{random.randbytes(3).hex()}")
                    self.write_file(tmp, data)
                    os.rename(tmp, self.p("files", name))  # the upload happens here
                else:
                    self.write_file(self.p("files", name), data)
            except OSError as e:
                self.fig.err("write", e)
                st.maybe.add(cid)  # it may have arrived (a lost answer), or not
                with self.fig.lock:
                    self.fig.maybe.add(cid)
                if rsync:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                time.sleep(1 + attempt)
                continue
            st.acked = cid
            if not st.unsure:
                st.maybe.clear()  # a whole new version: what came before no longer matters
            with self.fig.lock:
                self.fig.acked.add(cid)
                self.fig.bytes_written += len(data)
            self.fig.op("write-rsync" if rsync else "write", detail=f"{name} = {cid}")
            return

    def rename(self, src: str, dst: str) -> None:
        a, b = self.names[src], self.names[dst]
        if a.acked is None or a.maybe or b.maybe:
            return
        if not b.lock.acquire(timeout=5):
            return
        try:
            os.rename(self.p("files", src), self.p("files", dst))
        except OSError as e:
            # the outcome is unknown: either state may be what the account has
            self.fig.err("rename", e)
            b.maybe.add(a.acked)
            a.maybe.add(None)
            a.unsure = b.unsure = True
            return
        finally:
            b.lock.release()
        self.fig.op("rename-over" if b.acked is not None else "rename", detail=f"{src} -> {dst} ({a.acked})")
        b.acked, a.acked = a.acked, None

    def unlink(self, name: str) -> None:
        st = self.names[name]
        if st.acked is None or st.maybe:
            return
        try:
            os.unlink(self.p("files", name))
        except OSError as e:
            self.fig.err("rm", e)
            st.maybe.add(None)
            st.unsure = True
            return
        st.acked = None
        self.fig.op("rm", detail=name)

    def restore(self, w: int, rng: random.Random) -> None:
        try:
            trashed = [n for n in os.listdir(self.p("trash")) if n.startswith(f"w{w}-")]
        except OSError as e:
            self.fig.err("ls-trash", e)
            return
        if not trashed:
            return
        shown = rng.choice(trashed)
        plain = SUFFIX.sub("", shown)
        st = self.names.get(plain)
        if st is None or st.acked is not None or st.maybe or not st.lock.acquire(timeout=5):
            return
        try:
            try:
                with open(self.p("trash", shown), "rb") as f:
                    data = f.read()
            except OSError as e:
                self.fig.err("read-trash", e)
                return
            cid = whole(data) or (cid_of(data) if data == b"" else None)
            if cid is None:
                if data:
                    self.fig.wrong(f"trash/{shown}: not a whole content ({len(data)} bytes)")
                return  # an empty file: which content it was cannot be told
            try:
                os.rename(self.p("trash", shown), self.p("files", plain))
            except OSError as e:
                self.fig.err("restore", e)
                st.maybe.add(cid)
                st.unsure = True
                return
            st.acked = cid
            self.fig.op("restore", detail=f"trash/{shown} -> {plain} ({cid})")
        finally:
            st.lock.release()

    def reader(self, r: int) -> None:
        rng = random.Random(self.args.seed * 2000 + r)
        names = sorted(self.names)
        while not self.stop.is_set():
            name = rng.choice(names)
            st = self.names[name]
            if not st.lock.acquire(timeout=2):
                continue
            try:
                allowed = st.allowed()
                self.read_one(name, allowed, rng)
            finally:
                st.lock.release()
            time.sleep(rng.uniform(0, 0.1))

    def read_one(self, name: str, allowed: set[Cid | None], rng: random.Random) -> None:
        path = self.p("files", name)
        try:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                if size > 1000 and rng.random() < 0.3:  # random ranges (Range requests)
                    head = os.pread(f.fileno(), 200, 0)
                    cid = cid_of(head)
                    if cid is None or cid not in allowed:
                        self.fig.wrong(f"{name}: header {head[:40]!r}, allowed {allowed}")
                        return
                    want = content(cid)
                    for _ in range(3):
                        off = rng.randrange(0, max(1, size))
                        n = rng.randrange(1, 300_000)
                        got = os.pread(f.fileno(), n, off)
                        if got != want[off : off + n]:
                            self.fig.wrong(f"{name}: bytes {off}+{n} differ from {cid}")
                        self.fig.bytes_read += len(got)
                    self.fig.op("read-range")
                    return
                data = f.read()
        except FileNotFoundError:
            if None not in allowed:
                self.fig.wrong(f"{name}: ENOENT, but it holds {allowed}")
            self.fig.op("read-absent")
            return
        except OSError as e:
            self.fig.err("read", e)
            return
        self.fig.bytes_read += len(data)
        cid = whole(data)
        if cid is None and data == b"" and any(c is not None and c[2] == 0 for c in allowed):
            cid = next(c for c in allowed if c is not None and c[2] == 0)
        if cid not in allowed:
            self.fig.wrong(f"{name}: read {len(data)} bytes ({cid_of(data)}), allowed {allowed}")
        self.fig.op("read")

    def lister(self) -> None:
        while not self.stop.is_set():
            try:
                listed = os.listdir(self.p("files"))
                if len(listed) != len(set(listed)):
                    self.fig.listing_problems.append(f"duplicates in files/: {sorted(listed)}")
                for n in listed[:20]:
                    with contextlib.suppress(FileNotFoundError):
                        os.stat(self.p("files", n))
                os.listdir(self.p("trash"))
                json.loads(self.p(".amofs", "status").read_bytes())
                self.fig.op("list")
            except OSError as e:
                self.fig.err("list", e)
            time.sleep(0.5)

    # --- faults -------------------------------------------------------------------------------------------
    def faults(self) -> None:
        rng = random.Random(self.args.seed * 3000)
        o = self.options
        last_restart = time.monotonic()
        while not self.stop.wait(rng.uniform(2, 5)):
            if self.faults_off.is_set():
                continue
            kind = rng.choice(
                ["parts", "parts", "parts-exhaust", "requests", "requests", "drop", "drop", "latency", "storm",
                 "garble", "garble"]
            )  # fmt: skip
            if time.monotonic() - last_restart > 60 and self.args.seconds >= 60:
                kind = "restart"
                last_restart = time.monotonic()
            self.fig.faults[kind] += 1
            if kind == "parts":
                o.fail_parts = rng.randint(1, 3)
            elif kind == "parts-exhaust":
                o.fail_parts = 12  # more than the client's 5 retries of one part: that upload fails
            elif kind == "requests":
                o.fail_requests_match = rng.choice(["", "^/v1.0/files", "^/download/", "^/v1.0/sessions", "^/api/v4"])
                o.fail_requests_status = rng.choice([500, 502, 503])
                o.fail_requests = rng.randint(1, 3)
            elif kind == "drop":
                o.drop_download_after = rng.randrange(0, 200_000)
                o.drop_downloads = rng.randint(1, 3)
            elif kind == "latency":
                o.latency = 0.2
                self.stop.wait(3)
                o.latency = 0.0
            elif kind == "storm":
                o.rate_limit = 2.0
                self.stop.wait(5)
                o.rate_limit = 7.0
            elif kind == "garble":
                o.garble_match = r"^/v1\.0/files$"  # listings (reads): their outcome is known
                o.garble_mode = rng.choice(["json", "html"])
                o.garble_next = 1
            elif kind == "restart":
                self.restart(rng.uniform(0.5, 2.0))

    def restart(self, down: float) -> None:
        with self.emu_lock:
            self.count_traffic()
            self.emu.stop()
            time.sleep(down)
            self.emu = Emulator(self.tmp / "emu", self.options, port=self.ports[0], drive_port=self.ports[1])
            self.emu.start()
            self.restarts += 1

    def clear_faults(self) -> None:
        o = self.options
        o.fail_parts = o.fail_requests = o.garble_next = 0
        o.drop_download_after = None
        o.latency = 0.0
        o.rate_limit = 7.0
        with contextlib.suppress(Exception):
            self.emu.unblock()

    def count_traffic(self) -> None:
        self.req_total += len(self.emu.log)
        self.req_429 += self.emu.count(status=429)
        self.req_5xx += sum(1 for r in self.emu.log if r.status >= 500)
        self.emu.reset_log()

    # --- verification -------------------------------------------------------------------------------------
    def verify(self) -> dict[str, Any]:
        emu = self.emu
        problems: list[str] = []
        stored: set[Cid] = set()
        versions_checked = 0
        live: dict[str, list[str]] = {}
        files = emu.files(trashed=None)
        for f in files:
            ext = (f.get("metadata") or {}).get("extension") or ""
            shown = f"{f['name']}.{ext}" if ext else f["name"]
            if not f["is_trashed"]:
                live.setdefault(shown, []).append(f["uuid"])
            for v in emu.versions(f["uuid"]):
                data = emu.content(f["uuid"], v["uuid"])
                versions_checked += 1
                cid = whole(data)
                if cid is None and data:
                    problems.append(f"{shown} version {v['uuid']}: not a whole content ({len(data)} bytes)")
                elif cid is not None:
                    stored.add(cid)
                elif data == b"":
                    stored.update(c for c in self.fig.acked | self.fig.maybe if c[2] == 0)
        for shown, uuids in live.items():
            if shown not in self.names:
                problems.append(f"files/{shown}: a name no writer made (a temp or half file?)")
            if len(uuids) > 1:
                problems.append(f"files/{shown}: {len(uuids)} live files share the name")
        files_verified = 0
        lost: list[str] = []
        for name, st in self.names.items():
            uuids = live.get(name, [])
            allowed = st.allowed()
            if not uuids:
                if None not in allowed:
                    lost.append(f"{name}: missing from the account; it holds {st.acked}")
                continue
            data = emu.content(uuids[0])
            cid = whole(data)
            if cid is None and data == b"":
                cid = next((c for c in allowed if c is not None and c[2] == 0), None)
            files_verified += 1
            if cid not in allowed:
                lost.append(f"{name}: holds {cid_of(data)} ({len(data)} bytes); the last written was {st.acked}")
        for cid in sorted(self.fig.acked - stored):
            lost.append(f"acknowledged content {cid} is nowhere in the account")
        return {
            "files_in_account": len(files),
            "live_files": sum(len(u) for u in live.values()),
            "files_verified": files_verified,
            "versions_verified": versions_checked,
            "acknowledged_writes": len(self.fig.acked),
            "maybe_writes": len(self.fig.maybe - self.fig.acked),
            "files_lost": len(lost),
            "lost": lost,
            "problems": problems,
        }

    # --- main ---------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        self.start()
        threads = [threading.Thread(target=self.writer, args=(w,), name=f"writer{w}") for w in range(self.args.writers)]
        threads += [
            threading.Thread(target=self.reader, args=(r,), name=f"reader{r}") for r in range(self.args.readers)
        ]
        threads.append(threading.Thread(target=self.lister, name="lister"))
        injector = threading.Thread(target=self.faults, name="faults")
        for t in [*threads, injector]:
            t.daemon = True
            t.start()
        deadline = t0 + self.args.seconds
        last = 0.0
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            if not self.args.quiet and time.monotonic() - last > 30:
                last = time.monotonic()
                print(f"soak: {time.monotonic() - t0:5.0f} s  ops {sum(self.fig.ops.values())}  "
                      f"faults {sum(self.fig.faults.values())}  errors {sum(self.fig.errors.values())}",
                      file=sys.stderr, flush=True)  # fmt: skip
        self.faults_off.set()
        self.stop.set()
        injector.join(timeout=30)
        with self.emu_lock:
            self.clear_faults()
        for t in threads:
            t.join(timeout=300)
        stuck = [t.name for t in threads if t.is_alive()]
        with contextlib.suppress(OSError):
            self.status = json.loads(self.p(".amofs", "status").read_bytes())
        code = self.unmount()
        self.count_traffic()
        run_s = time.monotonic() - t0
        result = self.verify()
        failed_dir = self.cache / "failed"
        fig = self.fig
        return {
            "seconds": round(run_s, 1),
            "operations": sum(fig.ops.values()),
            "operations_by_kind": dict(sorted(fig.ops.items())),
            "bytes_written": fig.bytes_written,
            "bytes_read": fig.bytes_read,
            "faults_injected": sum(fig.faults.values()),
            "faults_by_kind": dict(sorted(fig.faults.items())),
            "emulator_restarts": self.restarts,
            "requests": self.req_total,
            "answers_429": self.req_429,
            "answers_5xx": self.req_5xx,
            "client_requests": self.status.get("requests"),
            "client_retries": self.status.get("retries"),
            "client_throttled": self.status.get("throttled"),
            "upload_failures": self.status.get("upload_failures"),
            "failed_uploads_kept": len(list(failed_dir.iterdir())) if failed_dir.exists() else 0,
            "errors_seen_by_workers": sum(fig.errors.values()),
            "errors_by_kind": dict(sorted(fig.errors.items())),
            "wrong_reads": len(fig.wrong_reads),
            "wrong_read_examples": fig.wrong_reads[:10],
            "listing_problems": fig.listing_problems[:10],
            "stuck_workers": stuck,
            "mount_exit_status": code,
            **result,
        }


def _kinds(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def report(r: dict[str, Any]) -> str:
    lines = [
        f"soak run of {r['seconds']} s against the emulator (loopback), faults on",
        f"  operations          {r['operations']}  ({_kinds(r['operations_by_kind'])})",
        f"  bytes written/read  {r['bytes_written']:,} / {r['bytes_read']:,}",
        f"  faults injected     {r['faults_injected']}  ({_kinds(r['faults_by_kind'])})",
        f"  emulator restarts   {r['emulator_restarts']}",
        f"  requests            {r['requests']} at the emulator ({r['answers_429']} × 429, {r['answers_5xx']} × 5xx)",
        f"  client retries      {r['client_retries']} (429 seen: {r['client_throttled']}; "
        f"upload failures {r['upload_failures']}, kept in failed/: {r['failed_uploads_kept']})",
        f"  errors to workers   {r['errors_seen_by_workers']}  ({_kinds(r['errors_by_kind'])})",
        f"  files verified      {r['files_verified']} names, {r['versions_verified']} stored versions, "
        f"{r['acknowledged_writes']} acknowledged writes ({r['maybe_writes']} more of unknown outcome)",
        f"  wrong reads         {r['wrong_reads']}",
        f"  files lost          {r['files_lost']}",
    ]  # fmt: skip
    for key in ("lost", "problems", "wrong_read_examples", "listing_problems", "stuck_workers"):
        if r.get(key):
            lines.append(f"  {key}: " + "; ".join(map(str, r[key][:10])))
    if r["mount_exit_status"] != 0:
        lines.append(f"  the mount exited with status {r['mount_exit_status']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=300.0, help="how long the workers run (default 300)")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--files", type=int, default=6, help="names per writer (default 6)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, emulator data)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--debug", action="store_true", help="run the mount with --debug (a large log; with --keep)")
    args = ap.parse_args(argv)
    if not (os.access("/dev/fuse", os.R_OK | os.W_OK) and shutil.which("fusermount3")):
        print("soak: needs FUSE (/dev/fuse and fusermount3)", file=sys.stderr)
        return 2
    soak = Soak(args)
    try:
        result = soak.run()
    except BaseException:
        print(f"soak: aborted; the mount's log ends:\n{soak.tail()}", file=sys.stderr)
        raise
    finally:
        soak.cleanup()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    ok = result["files_lost"] == 0 and result["wrong_reads"] == 0 and not result["problems"]
    ok = ok and not result["stuck_workers"] and result["mount_exit_status"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
