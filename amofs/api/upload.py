"""Upload of a whole local file through an upload session.

INTERFACE STUB — filled in by the API-client work.

Owns: ``upload_file``: POST /v1.0/sessions, then parts of at most the session's ``max_part_size``, read from
disk one part at a time (memory bounded by one part whatever the file's size), posted strictly in order to
``upload_url`` and then each ``next_url`` exactly as returned. A part answered 500 is retried (the service
rejected it, the outcome is known); a part whose outcome is unknown (connection dropped after sending) or a
404 (SessionGone) restarts the whole upload with a new session, a bounded number of times. A file larger than
``max_file_size`` raises TooLarge before any byte is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from amofs.api.client import AmoClient
from amofs.api.models import FileModel


async def upload_file(
    client: AmoClient,
    src: BinaryIO,
    file_name: str,
    size: int,
    *,
    file_uuid: str | None = None,
    content_type: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> FileModel:
    """Upload ``size`` bytes of ``src`` (a seekable binary file, read from offset 0) as ``file_name`` (the full
    shown name, extension included). With ``file_uuid`` the bytes become that file's new active version.
    ``progress(bytes_sent_total)`` is called after each accepted part."""
    raise NotImplementedError
