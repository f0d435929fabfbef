"""Files being written through the mount: LocalFile (the bytes, in a spool file) and Uploader (to the account).

A LocalFile holds one file's bytes while it is written: every handle open for writing on that file shares it,
so two writers see one another's bytes (last write to a byte wins, as on a local disk). It knows its upload
target: a new file (``target_uuid`` None) or a new version of an existing one. A generation counter tells
whether bytes changed since the last successful upload; ``dirty`` is that test.

Uploader turns a dirty LocalFile into bytes in the account (``api.upload.upload_file``: one session, parts in
order) and reports the new FileModel through ``on_uploaded`` (the facade updates its caches and tree — the
callback keeps this module from knowing the facade). On failure the bytes are kept under ``failed/`` in the
cache dir, the log says where, and the error goes back to the caller (``close()`` sees it).

Memory: nothing here holds file content; the spool is on disk and uploads read one part at a time.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import time
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path

import trio

from amofs.api.client import AmoClient
from amofs.api.models import FileModel
from amofs.api.upload import upload_file
from amofs.errors import AmoError, FileTooBig, LocalIOError
from amofs.localfiles import CacheDir

log = logging.getLogger(__name__)

Key = tuple[Hashable, ...]

DEFAULT_MAX_FILE_SIZE = 314_572_800  # the spec's example; replaced by what upload sessions report


class LocalFile:
    def __init__(
        self,
        spool: Path,
        *,
        name: str,
        parent: Key,
        target_uuid: str | None,
        size: int = 0,
        loaded: bool = True,
        local_only: bool = False,
    ) -> None:
        self.spool = spool
        self.name = name  # the unescaped full name (with extension) the upload will carry
        self.parent = parent  # the folder it was created in (files/ or an entity folder)
        self.target_uuid = target_uuid
        self.size = size
        self.loaded = loaded  # False: an existing file whose bytes are not fetched yet (fetched on demand)
        self.local_only = local_only  # an editor lock/temp file: never uploaded
        self.handles = 0
        self.unlinked = False
        self.model: FileModel | None = None
        self.failed_path: Path | None = None
        self.mtime_ns = 0
        self._gen = 0
        self._uploaded_gen = 0 if target_uuid is not None else -1  # a new file is dirty even when empty
        self._fd = os.open(spool, os.O_RDWR)
        self.lock = trio.Lock()

    @property
    def dirty(self) -> bool:
        return not self.local_only and self._gen != self._uploaded_gen

    def touch(self) -> None:
        self._gen += 1
        self.mtime_ns = time.time_ns()

    def write(self, offset: int, data: bytes) -> int:
        n = os.pwrite(self._fd, data, offset)
        self.size = max(self.size, offset + n)
        self.touch()
        return n

    def read(self, offset: int, length: int) -> bytes:
        if offset >= self.size:
            return b""
        return os.pread(self._fd, min(length, self.size - offset), offset)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self.size = size
        self.loaded = True if size == 0 else self.loaded
        self.touch()

    async def ensure_loaded(self, fetch: Callable[[int], Awaitable[int]]) -> None:
        """Fetch the existing content into the spool before a partial overwrite or a read."""
        if self.loaded:
            return
        async with self.lock:
            if self.loaded:
                return
            self.size = await fetch(self._fd)
            self.loaded = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self.spool.unlink(missing_ok=True)

    def mark_uploaded(self, gen: int, model: FileModel) -> None:
        self._uploaded_gen = gen
        self.model = model
        self.target_uuid = model.uuid

    @property
    def generation(self) -> int:
        return self._gen


class Uploader:
    """Uploads LocalFiles, one at a time per file, any number of files at once (the client's bucket paces)."""

    def __init__(
        self,
        client: AmoClient,
        cache: CacheDir,
        on_uploaded: Callable[[LocalFile, FileModel], Awaitable[None]],
    ) -> None:
        self._client = client
        self._cache = cache
        self._on_uploaded = on_uploaded
        self.max_file_size = DEFAULT_MAX_FILE_SIZE
        # id → (name, bytes sent, total, wall time started) for `amofs status`
        self.in_flight: dict[int, tuple[str, int, int, float]] = {}
        self.uploaded = 0
        self.failed = 0

    def check_size(self, end: int) -> None:
        # the limit the account gave in its latest upload session, once there was one; until then the default
        limit = self._client.max_file_size or self.max_file_size
        if end > limit:
            raise FileTooBig(f"the account takes files of at most {limit} bytes")

    async def upload(self, lf: LocalFile) -> FileModel | None:
        """Upload ``lf`` if it has changed since its last upload; return the new model (None if clean)."""
        async with lf.lock:
            if not lf.dirty:
                return lf.model
            gen = lf.generation
            size = lf.size
            key = id(lf)
            self.in_flight[key] = (lf.name, 0, size, time.time())
            ctype = mimetypes.guess_type(lf.name)[0]
            try:
                with open(lf.spool, "rb") as src:
                    model = await upload_file(
                        self._client,
                        src,
                        lf.name,
                        size,
                        file_uuid=lf.target_uuid,
                        content_type=ctype,
                        progress=lambda sent: self._progress(key, lf.name, sent, size),
                    )
            except AmoError as e:
                self.failed += 1
                lf.failed_path = self._cache.keep_failed(lf.spool, lf.name)
                log.error("upload of %r failed: %s; its bytes are kept at %s", lf.name, e, lf.failed_path)
                raise
            except OSError as e:  # the spool itself failed (disk error, removed from under us)
                self.failed += 1
                log.error("upload of %r failed: its local bytes at %s are unreadable: %s", lf.name, lf.spool, e)
                raise LocalIOError(f"the local copy of {lf.name!r} is unreadable: {e.strerror}") from e
            finally:
                self.in_flight.pop(key, None)
            self.uploaded += 1
            lf.mark_uploaded(gen, model)
            if lf.failed_path is not None:  # an earlier failure is now mended
                lf.failed_path.unlink(missing_ok=True)
                lf.failed_path = None
            log.debug("uploaded %r (%d bytes) as %s", lf.name, size, model.uuid)
        await self._on_uploaded(lf, model)
        return model

    def _progress(self, key: int, name: str, sent: int, total: int) -> None:
        started = self.in_flight.get(key, (name, 0, total, time.time()))[3]
        self.in_flight[key] = (name, sent, total, started)
