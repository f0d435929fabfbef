"""RemoteReader: the bytes of one remote content (a file's active version, or one version) for one open handle.

Owns, per handle: one streaming GET kept open across kernel reads (never a request per read), a read buffer
filled in large socket reads, ``Range`` re-opens for random access (and to resume a download that dropped),
and the tee into the content cache: a stream read from byte 0 to the end is written to a partial file and
committed under the version uuid, so the next open of that version reads from local disk with no request.

When the server ignores ``Range`` (answers 200), the reader skips up to the offset and keeps teeing, so even
then a file is downloaded at most once per pass. Never retries on its own beyond resuming a dropped stream a
bounded number of times; errors surface as AmoError to the caller (EIO).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from amofs.api.client import AmoClient, Download
from amofs.errors import AmoError, ProtocolError, Unavailable
from amofs.localfiles import CacheDir

log = logging.getLogger(__name__)

SOCKET_READ = 1 << 20  # bytes asked of the download per receive
SKIP_MAX = 4 << 20  # a forward jump up to this many bytes is read through rather than re-requested
RESUMES = 3


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
        self._pos = 0  # offset of self._buf[0]
        self._buf = bytearray()
        self._tee: int | None = None  # fd of the partial content-cache file while the stream is contiguous
        self._tee_path: Path | None = None
        self._local: int | None = None  # fd of the cached content
        path = cache.cached(version_uuid, size)
        if path is not None:
            self._local = os.open(path, os.O_RDONLY)

    @property
    def from_cache(self) -> bool:
        return self._local is not None

    async def read(self, offset: int, length: int) -> bytes:
        if offset >= self.size or length <= 0:
            return b""
        length = min(length, self.size - offset)
        if self._local is not None:
            return os.pread(self._local, length, offset)
        async with self._lock:
            return await self._read_stream(offset, length)

    async def _read_stream(self, offset: int, length: int) -> bytes:
        resumes = 0
        while True:
            try:
                if self._dl is None or offset < self._pos or offset > self._pos + len(self._buf) + SKIP_MAX:
                    await self._open(offset)
                # drop what lies before the offset
                while offset > self._pos + len(self._buf):
                    self._pos += len(self._buf)
                    self._buf.clear()
                    await self._fill()
                del self._buf[: offset - self._pos]
                self._pos = offset
                while len(self._buf) < length:
                    if not await self._fill():
                        raise ProtocolError(f"download ended at byte {self._pos + len(self._buf)} of {self.size}")
                data = bytes(self._buf[:length])
                del self._buf[:length]
                self._pos += length
                return data
            except (Unavailable, ProtocolError) as e:
                resumes += 1
                await self._drop_stream()
                if resumes > RESUMES:
                    raise
                log.info("download dropped at byte %d (%s); resuming with Range", self._pos, e)

    async def _fill(self) -> bool:
        """Receive the next chunk into the buffer (and the tee). False at the end of the body."""
        assert self._dl is not None
        chunk = await self._dl.receive(SOCKET_READ)
        if not chunk:
            return False
        end = self._pos + len(self._buf)
        if end + len(chunk) > self.size:
            raise ProtocolError(f"download longer than the file's size {self.size}")
        if self._tee is not None:
            os.pwrite(self._tee, chunk, end)
            if end + len(chunk) == self.size:
                self._commit_tee()
        self._buf += chunk
        return True

    async def _open(self, offset: int) -> None:
        await self._drop_stream()
        url = await self._url()
        dl = await self._client.open_download(url, start=offset)
        self._dl = dl
        self._pos = dl.start
        self._buf.clear()
        if dl.start == 0 and self._tee is None and self.size > 0:
            path = self._cache.new_partial()
            self._tee = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            self._tee_path = path
        elif dl.start != 0:
            self._abandon_tee()

    def _commit_tee(self) -> None:
        assert self._tee is not None and self._tee_path is not None
        os.close(self._tee)
        self._tee = None
        try:
            self._cache.commit(self._tee_path, self._version)
        except OSError as e:
            log.warning("could not keep a downloaded content in the cache: %s", e)
        self._tee_path = None

    def _abandon_tee(self) -> None:
        if self._tee is not None:
            os.close(self._tee)
            self._tee = None
        if self._tee_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tee_path)
            self._tee_path = None

    async def _drop_stream(self) -> None:
        if self._dl is not None:
            dl, self._dl = self._dl, None
            with contextlib.suppress(AmoError):
                await dl.aclose()

    async def close(self) -> None:
        await self._drop_stream()
        self._abandon_tee()
        if self._local is not None:
            os.close(self._local)
            self._local = None
