"""The cache dir on local disk: the content cache, the spool files of writes, and failed uploads kept.

Layout under ``--cache-dir``:
    content/VERSION_UUID      whole downloaded contents, keyed by version uuid (a new version never serves
                              old bytes); least recently used evicted past ``limit`` bytes
    content/.part-*           a download being teed into the cache; renamed into place only when complete
    spool/N                   bytes of files being written through the mount (removed once uploaded)
    failed/STAMP NAME         uploads that failed: the local bytes are kept here for the user, and logged
    lock                      flock'ed by the mount using the dir (its pid inside): one mount per cache dir

Owns the paths and the byte budget; knows nothing of the service or FUSE. Filesystem calls here are quick
local ones made straight from the event loop (a rename, a stat); bulk copies are done by callers in threads.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import time
from pathlib import Path

from amofs.config import UsageError, try_flock

log = logging.getLogger(__name__)


class CacheDir:
    def __init__(self, root: Path, content_limit: int) -> None:
        self.root = root
        self.content = root / "content"
        self.spool = root / "spool"
        self.failed = root / "failed"
        self.limit = content_limit
        self._seq = itertools.count(1)
        self._used = 0
        self._lock_fd: int | None = None

    def prepare(self) -> list[Path]:
        """Create the layout (0700), take the cache dir for this process, and clear what a previous run left
        half done. Spool files a previous run left behind (it was killed) may hold bytes that never reached
        the account: they are moved to failed/ as ``recovered …`` (empty ones are dropped). Returns the
        recovered paths. Raises UsageError when another live mount uses this cache dir: its spool files are
        not leftovers, and two indexes would overwrite each other."""
        for d in (self.root, self.content, self.spool, self.failed):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(d, 0o700)
        self._take()
        recovered = []
        for p in self.spool.iterdir():
            st = p.stat()
            if st.st_size == 0:
                p.unlink(missing_ok=True)
                continue
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(st.st_mtime))
            dest = self.failed / f"{stamp} recovered {p.name}"
            os.replace(p, dest)
            recovered.append(dest)
            log.warning("a previous run left unsent bytes; kept at %s", dest)
        used = 0
        for p in self.content.iterdir():
            if p.name.startswith(".part-"):
                p.unlink(missing_ok=True)
            else:
                used += p.stat().st_size
        self._used = used
        return recovered

    def _take(self) -> None:
        """An exclusive ``flock`` on ``lock`` (holding the owner's pid), held until ``release`` or the process
        ends (the kernel drops it with a killed process, so a crash never leaves the cache dir locked)."""
        if self._lock_fd is not None:
            return
        fd = try_flock(self.root / "lock")
        if fd is None:
            owner = ""
            with contextlib.suppress(OSError):
                owner = (self.root / "lock").read_text(errors="replace").strip()
            raise UsageError(
                f"the cache dir {self.root} is in use by another amofs mount (pid {owner or '?'}); "
                "give this mount its own with --cache-dir"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def release(self) -> None:
        """Let another mount use this cache dir (at unmount)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- spool files --------------------------------------------------------------------------------------
    def new_spool(self) -> Path:
        path = self.spool / f"{os.getpid()}-{next(self._seq)}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        return path

    def keep_failed(self, spool: Path, name: str) -> Path:
        """Keep a failed upload's bytes under failed/ (a hard link: the spool may still change)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        safe = name.replace("/", "_") or "unnamed"
        dest = self.failed / f"{stamp} {safe}"
        n = 1
        while dest.exists():
            n += 1
            dest = self.failed / f"{stamp} {safe} ({n})"
        try:
            os.link(spool, dest)
        except OSError:
            shutil.copyfile(spool, dest)
        return dest

    def failed_files(self) -> list[Path]:
        return sorted(self.failed.iterdir()) if self.failed.exists() else []

    # --- content cache ------------------------------------------------------------------------------------
    def cached(self, version_uuid: str, size: int) -> Path | None:
        """The cached content of a version, when present and of the expected size."""
        if not version_uuid:
            return None
        path = self.content / version_uuid
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if st.st_size != size:
            path.unlink(missing_ok=True)
            self._used -= st.st_size
            return None
        os.utime(path)  # mark as recently used
        return path

    def new_partial(self) -> Path:
        return self.content / f".part-{os.getpid()}-{next(self._seq)}"

    def commit(self, partial: Path, version_uuid: str) -> None:
        """Move a complete download into the cache and evict past the limit."""
        size = partial.stat().st_size
        if size > self.limit:
            partial.unlink(missing_ok=True)
            return
        os.replace(partial, self.content / version_uuid)
        self._used += size
        if self._used > self.limit:
            self._evict()

    def _evict(self) -> None:
        entries = []
        for p in self.content.iterdir():
            if p.name.startswith(".part-"):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        entries.sort()
        used = sum(e[1] for e in entries)
        for _, size, p in entries:
            if used <= self.limit * 0.9:
                break
            p.unlink(missing_ok=True)
            used -= size
        self._used = used

    @property
    def content_bytes(self) -> int:
        return self._used
