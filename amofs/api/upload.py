"""Upload of a whole local file through an upload session.

Owns: ``upload_file``: POST /v1.0/sessions, then parts of at most the session's ``max_part_size``, read from
disk one part at a time (memory bounded by one part whatever the file's size; the reads run in a worker
thread so the event loop never blocks on disk), posted strictly in order to ``upload_url`` and then each
``next_url`` exactly as returned (the upload host may differ from the drive host). The end is told by the
reply's body (``models.parse_part_reply``), never by its status (intermediate parts answer 200 or 202).

Failure handling:
- a file larger than ``max_file_size`` raises TooLarge before any part is sent: checked against the limit
  the client learned from an earlier session (then not even a session is opened), else against the new
  session's reply; a session refused with 400 over the size is mapped to TooLarge by the client;
- a part answered 429/5xx is retried on the same URL by the client (bounded, back-off): the service refused
  it, so the outcome is known;
- a 404 on a part (SessionGone), or a connection lost while an *intermediate* part was in flight (outcome
  unknown), restarts the whole upload with a new session from offset 0, at most ``max_restarts`` times;
  the abandoned session never completes, so it never becomes a file;
- the *last* part's outcome unknown is not retried: a new session could create a second copy of a file
  that was in fact created. Unavailable is raised and says so.
The service creates the file only when the last part is accepted, so a failed upload leaves no half file.

Authorization on part URLs: the client sends the token only to the account and drive hosts' origins. A part
URL on another host (the service may hand out a different upload host) carries its own signed per-part
token in its path, which is what authorizes it; the access token is not spread to hosts we did not
configure or discover.

Must not: hold more than one part in memory, sleep or retry anything itself except the session restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import BinaryIO

import trio

from amofs.api.client import AmoClient
from amofs.api.models import FileModel, PartAccepted, UploadSession
from amofs.errors import AmoError, ProtocolError, SessionGone, TooLarge, Unavailable

log = logging.getLogger(__name__)


def _read_at(src: BinaryIO, offset: int, n: int) -> bytes:
    src.seek(offset)
    data = src.read(n)
    return data if data is not None else b""


def _too_large(size: int, limit: int) -> TooLarge:
    return TooLarge(f"the file is {size} bytes; the account accepts at most {limit} bytes per file")


async def upload_file(
    client: AmoClient,
    src: BinaryIO,
    file_name: str,
    size: int,
    *,
    file_uuid: str | None = None,
    content_type: str | None = None,
    progress: Callable[[int], None] | None = None,
    max_restarts: int = 3,
) -> FileModel:
    """Upload ``size`` bytes of ``src`` (a seekable binary file, read from offset 0) as ``file_name`` (the
    full shown name, extension included). With ``file_uuid`` the bytes become that file's new active version.
    ``progress(bytes_sent_total)`` is called after each accepted part (it starts again from 0 when the upload
    restarts with a new session). ``max_restarts`` bounds the new sessions opened after SessionGone or a lost
    connection."""
    if size < 0:
        raise ValueError("size must not be negative")
    if client.max_file_size is not None and size > client.max_file_size:
        raise _too_large(size, client.max_file_size)
    restarts = 0
    while True:
        session = await client.create_session(file_name, size, file_uuid=file_uuid, content_type=content_type)
        if size > session.max_file_size:
            raise _too_large(size, session.max_file_size)
        try:
            return await _send_parts(client, session, src, size, progress)
        except (SessionGone, _LostPart) as exc:
            cause = exc.__cause__ if isinstance(exc, _LostPart) else exc
            if restarts >= max_restarts:
                if isinstance(exc, _LostPart):
                    assert isinstance(cause, Unavailable)
                    raise cause from None
                raise
            restarts += 1
            log.warning(
                "upload of %d bytes: %s; starting again with a new session (%d/%d)",
                size,
                type(cause).__name__,
                restarts,
                max_restarts,
            )


class _LostPart(Exception):
    """An intermediate part's connection broke: the session is unusable, the file was not created."""


async def _send_parts(
    client: AmoClient,
    session: UploadSession,
    src: BinaryIO,
    size: int,
    progress: Callable[[int], None] | None,
) -> FileModel:
    url = session.upload_url
    part_size = session.max_part_size
    offset = 0
    n = 0
    while True:
        want = min(part_size, size - offset)
        data = await trio.to_thread.run_sync(_read_at, src, offset, want)
        if len(data) != want:
            raise AmoError(f"the local file gave {len(data)} bytes at offset {offset}, {want} expected")
        last = offset + want >= size
        n += 1
        try:
            reply = await client.upload_part(url, data)
        except Unavailable as exc:
            if exc.status is None and not last:
                raise _LostPart() from exc
            if exc.status is None:
                exc.message = (
                    f"{exc.message}; the last part's outcome is unknown, so the file may or may not have "
                    "been created: not retried, to avoid a duplicate"
                )
            raise
        del data
        offset += want
        if isinstance(reply, FileModel):
            if offset < size:
                log.warning("upload finished after %d of %d bytes (part %d)", offset, size, n)
            if progress is not None:
                progress(offset)
            log.debug("upload done: %d bytes in %d parts", size, n)
            return reply
        assert isinstance(reply, PartAccepted)
        if progress is not None:
            progress(offset)
        if offset >= size:
            raise ProtocolError(f"upload: the service asked for part {n + 1} after all {size} bytes were sent")
        url = reply.next_url
