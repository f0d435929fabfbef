"""RemoteReader: the bytes of one remote content (a file's active version, or one version) for one open handle.

Owns, per handle:
- one streaming GET kept open across kernel reads (never a request per read), received in buffers of
  ``CHUNK`` bytes aligned to file offsets, so a kernel read (1 MiB, aligned, once the mount's read-ahead is
  raised) is answered with a slice of one buffer and no copy;
- a sliding **window** of the most recent buffers (at most ``WINDOW`` bytes): the kernel's read-ahead sends
  concurrent, slightly out-of-order reads, and a read a little behind the stream is served from the window
  instead of re-opening the download; a read in the window is answered without waiting for the stream;
- ``Range`` re-opens for a read outside the window and more than ``SKIP_MAX`` ahead (random access), and to
  resume a download that dropped mid-body (``RESUMES`` times per read at most; a GET that fails is not
  resumed, the client already retried it);
- the tee into the content cache: a stream read from byte 0 to the end is written to a partial file (by a
  worker thread, so disk writes overlap the download) and committed under the version uuid when the handle
  closes, so the next open of that version reads from local disk with no request.
  A cached content is read through a read-only ``mmap``: a read is a slice of the mapping, no copy here.

When the server ignores ``Range`` (answers 200), the reader skips up to the offset and keeps teeing, so even
then a file is downloaded at most once per pass. Never retries on its own beyond resuming a dropped stream;
errors surface as AmoError to the caller (EIO).

Memory per open handle with a stream: the window (``WINDOW`` + ``CHUNK``), up to ``POOL`` spare buffers, and
buffers waiting for the cache file (``TEE_QUEUE``): about 17 MiB at most; nothing for a cached content (the
mapping is the page cache's).

Concurrency: reads of one handle arrive as concurrent trio tasks. A read found in the window (or the cache)
returns at once; the others take ``_lock`` one at a time to move the stream forward. The window is changed
only between awaits, and buffers are never written once in it, so a slice handed out stays valid.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from amofs.api.client import AmoClient, Download
from amofs.errors import AmoError, ProtocolError, Unavailable
from amofs.localfiles import CacheDir

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # most bytes per receive buffer (the kernel reads at most 1 MiB at a time)
WINDOW = 4 << 20  # bytes of recent buffers kept for reads behind the stream's position
SKIP_MAX = 4 << 20  # a forward jump up to this many bytes is read through rather than re-requested
RESUMES = 3
POOL = 4  # spare receive buffers kept per handle
TEE_QUEUE = 8 << 20  # bytes waiting for the cache file before the stream waits for the disk

Bytes = bytes | memoryview


class RemoteReader:
    def __init__(
        self,
        client: AmoClient,
        cache: CacheDir,
        *,
        url: Callable[[], Awaitable[str]],
        size: int,
        version_uuid: str,
    ) -> None:
        self._client = client
        self._cache = cache
        self._url = url
        self.size = size
        self._version = version_uuid
        self._lock = trio.Lock()
        self._dl: Download | None = None
        self._window: deque[tuple[int, bytearray, int]] = deque()  # (offset, buffer, length), oldest first
        self._pool = _Pool()
        self._window_bytes = 0
        self._end = 0  # offset of the next byte the stream gives (the window ends here)
        self._tee: _Tee | None = None  # the partial content-cache file while the stream is contiguous from 0
        self._teed = False  # the content was committed to the cache by this handle
        self._map: mmap.mmap | None = None  # the cached content
        self._local = False
        #: counters for tests and the status file: GETs opened, reads served from the window
        self.opens = 0
        self.window_hits = 0
        path = cache.cached(version_uuid, size)
        if path is not None:
            self._local = True
            if size > 0:
                fd = os.open(path, os.O_RDONLY)
                try:
                    self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
                finally:
                    os.close(fd)

    @property
    def from_cache(self) -> bool:
        return self._local

    async def read(self, offset: int, length: int) -> Bytes:
        if offset >= self.size or length <= 0:
            return b""
        length = min(length, self.size - offset)
        if self._local:
            assert self._map is not None
            return memoryview(self._map)[offset : offset + length]
        hit = self._from_window(offset, length)
        if hit is not None:
            self.window_hits += 1
            return hit
        async with self._lock:
            return await self._read_stream(offset, length)

    # --- the window ---------------------------------------------------------------------------------------
    def _from_window(self, offset: int, length: int) -> Bytes | None:
        """``[offset, offset+length)`` when the window holds all of it: a slice of one buffer, or a join of
        the few it spans."""
        if not self._window or offset < self._window[0][0] or offset + length > self._end:
            return None
        parts: list[memoryview] = []
        for start, buf, n in self._window:
            stop = start + n
            if stop <= offset:
                continue
            lo = max(offset, start) - start
            hi = min(offset + length, stop) - start
            parts.append(memoryview(buf)[lo:hi])
            if stop >= offset + length:
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _window_start(self) -> int:
        return self._window[0][0] if self._window else self._end

    def _keep(self, start: int, buf: bytearray, n: int) -> None:
        self._window.append((start, buf, n))
        self._window_bytes += n
        self._end = start + n
        while self._window_bytes - self._window[0][2] >= WINDOW:
            _, old, m = self._window.popleft()
            self._window_bytes -= m
            self._pool.put(old)

    def _clear_window(self, at: int) -> None:
        for _, buf, _ in self._window:
            self._pool.put(buf)
        self._window.clear()
        self._window_bytes = 0
        self._end = at

    # --- the stream ---------------------------------------------------------------------------------------
    async def _read_stream(self, offset: int, length: int) -> Bytes:
        resumes = 0
        while True:
            hit = self._from_window(offset, length)  # another task may have brought it in meanwhile
            if hit is not None:
                return hit
            opening = True
            try:
                near = self._window_start() <= offset <= self._end + SKIP_MAX
                if self._dl is None:
                    # from where the window ends when the read is near it: a first read a little into the
                    # file reads through from 0 (so reads behind it, and the tee, follow), a resume goes on
                    await self._open(self._end if near else offset)
                elif not near:
                    await self._open(offset)  # behind the window or far ahead: re-request from there
                opening = False
                while self._end < offset + length:
                    # buffers end where reads start or end, so a sequential read is one buffer (no join)
                    if not await self._fill(offset if self._end < offset else offset + length):
                        raise ProtocolError(f"download ended at byte {self._end} of {self.size}")
            except (Unavailable, ProtocolError) as e:
                resumes += 1
                await self._drop_stream()
                if opening or resumes > RESUMES:
                    raise  # a failed GET was already retried by the client: no second round on top

                log.info("download dropped at byte %d (%s); resuming with Range", self._end, e)

    async def _fill(self, until: int) -> bool:
        """Receive the next buffer (up to ``until``, at most CHUNK bytes) into the window and the tee. False
        at the end of the body."""
        assert self._dl is not None
        start = self._end
        want = min(until - start, CHUNK, self.size - start)
        if want <= 0:
            return False
        buf = self._pool.get()
        with memoryview(buf) as view:
            got = await self._dl.receive_into(view[:want])
        if got == 0:
            self._pool.put(buf)
            return False
        self._keep(start, buf, got)
        if self._tee is not None:
            await self._tee.put(start, memoryview(buf)[:got])
            if start + got == self.size:
                self._tee.whole = True  # committed at close: the last read does not wait for the disk
        return True

    async def _open(self, offset: int) -> None:
        """A GET from ``offset`` (from 0 when the server ignores Range: bytes before ``offset`` are read
        through, teed, and kept in the window as they pass)."""
        await self._drop_stream()
        if self._tee is not None and self._tee.whole:
            await self._commit_tee()
        url = await self._url()
        dl = await self._client.open_download(url, start=offset)
        self.opens += 1
        self._dl = dl
        if dl.start != self._end or not self._window:
            self._clear_window(dl.start)
        if dl.start == 0 and self._tee is None and not self._teed and 0 < self.size <= self._cache.limit:
            self._tee = _Tee(self._cache.new_partial())
        elif dl.start != 0 and not self._tee_contiguous(dl.start):
            await self._abandon_tee()

    def _tee_contiguous(self, start: int) -> bool:
        """A resumed stream that starts where the teed bytes end keeps the tee going."""
        return self._tee is not None and start == self._end and bool(self._window)

    async def _commit_tee(self) -> None:
        assert self._tee is not None
        tee, self._tee = self._tee, None
        self._teed = True
        error = await tee.finish()
        try:
            if error is not None:
                raise error
            self._cache.commit(tee.path, self._version)
        except OSError as e:
            log.warning("could not keep a downloaded content in the cache: %s", e)
            with contextlib.suppress(OSError):
                os.unlink(tee.path)

    async def _abandon_tee(self) -> None:
        if self._tee is not None:
            tee, self._tee = self._tee, None
            await tee.finish()
            with contextlib.suppress(OSError):
                os.unlink(tee.path)

    async def _drop_stream(self) -> None:
        if self._dl is not None:
            dl, self._dl = self._dl, None
            with contextlib.suppress(AmoError):
                await dl.aclose()

    async def close(self) -> None:
        await self._drop_stream()
        if self._tee is not None and self._tee.whole:
            await self._commit_tee()
        await self._abandon_tee()
        self._clear_window(self._end)
        if self._map is not None:
            m, self._map = self._map, None
            with contextlib.suppress(BufferError):  # a slice is still referenced: the mapping goes with it
                m.close()


class _Tee:
    """The partial content-cache file of one stream, written by a worker thread in arrival order, so disk
    writes overlap the download and the kernel's reads instead of taking turns with them on the event loop.
    Holds references to the stream's buffers (never written once received), not copies; at most
    ``TEE_QUEUE`` bytes wait, beyond which ``put`` waits for the disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, memoryview] | None] = deque()
        self._queued = 0
        self._error: OSError | None = None
        self.whole = False  # every byte of the content was queued
        self._thread = threading.Thread(target=self._run, name="amofs-tee", daemon=True)
        self._thread.start()

    async def put(self, offset: int, buf: memoryview) -> None:
        """Queue ``buf`` (a view the writer releases once written, so the buffer can be reused)."""
        with self._cond:
            self._queue.append((offset, buf))
            self._queued += len(buf)
            self._cond.notify()
            full = self._queued > TEE_QUEUE
        if full:
            await trio.to_thread.run_sync(self._wait_below, TEE_QUEUE // 2)

    def _wait_below(self, limit: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._queued <= limit)

    async def finish(self) -> OSError | None:
        """Wait for the queued writes and close the file; the first write error, if any."""
        with self._cond:
            self._queue.append(None)
            self._cond.notify()
        await trio.to_thread.run_sync(self._thread.join)
        return self._error

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: bool(self._queue))
                    item = self._queue.popleft()
                if item is None:
                    return
                offset, buf = item
                size = len(buf)
                if self._error is None:
                    try:
                        os.pwrite(self._fd, buf, offset)
                    except OSError as e:
                        self._error = e
                buf.release()
                with self._cond:
                    self._queued -= size
                    self._cond.notify_all()
        finally:
            os.close(self._fd)


class _Pool:
    """Receive buffers of ``CHUNK`` bytes, reused once nothing refers to their bytes: a fresh 1 MiB buffer
    costs page faults on every 4 KiB of it, which showed as a tenth of a cold read's time."""

    def __init__(self) -> None:
        self._free: list[bytearray] = []

    def get(self) -> bytearray:
        for i, buf in enumerate(self._free):
            if _unshared(buf):
                return self._free.pop(i)
        return bytearray(CHUNK)

    def put(self, buf: bytearray) -> None:
        if len(self._free) < POOL:
            self._free.append(buf)


def _unshared(buf: bytearray) -> bool:
    """No view of ``buf`` exists (a slice on its way to the kernel, the tee's pending write): CPython refuses
    to resize a buffer with views, so a resize that succeeds proves it (and is undone at once)."""
    try:
        last = buf.pop()
    except BufferError:
        return False
    buf.append(last)
    return True
