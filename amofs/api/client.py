"""AmoClient: one method per endpoint of the Files API, and the only retry/throttle policy in amofs.

INTERFACE STUB — bodies are filled in by the API-client work; signatures and docstrings are the contract the
semantics layer (amofs.filesystem, reader, writer, views) codes against. Do not change a signature without
updating its callers.

Owns: the two base URLs (account host for ``/api/v4``, drive host for ``/v1.0`` and downloads — never mixed),
Bearer auth with one refresh on 401 through a ``TokenSource``, one token bucket per account (default 7
requests/s across both hosts, upload parts and downloads included), bounded exponential back-off with jitter on
429/5xx/connection errors (``Retry-After`` honoured), the HTTP status → ``AmoError`` mapping (one function),
paging. Semantics code above never sleeps or retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from amofs.api.models import (
    DriveStats,
    EntityFileLink,
    FileModel,
    LinkedEntity,
    PartAccepted,
    UploadSession,
    VersionModel,
)


class TokenSource(Protocol):
    """Where the client gets its access token; ``refresh`` is called at most once per 401."""

    async def token(self) -> str: ...

    async def refresh(self, rejected: str) -> str:
        """A new token after ``rejected`` got a 401 (raise AuthError when none can be had)."""
        ...


@dataclass
class ClientStats:
    """Counters for ``amofs status`` and the tests: every HTTP request the client sent."""

    requests: int = 0
    throttled: int = 0  # 429 answers received
    retries: int = 0
    waited_for_bucket: float = 0.0  # seconds spent waiting on the own token bucket
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FileFilter:
    """Every filter of ``GET /v1.0/files``; ``None``/empty means not sent."""

    uuids: Sequence[str] = ()
    name: str | None = None
    extensions: Sequence[str] = ()
    term: str | None = None
    source_id: int | None = None
    deleted: bool = False
    size_unit: int | None = None
    size_from: int | None = None
    size_to: int | None = None
    date_type: str | None = None  # created_at | updated_at
    date_preset: str | None = None
    date_from: int | None = None
    date_to: int | None = None
    created_by: Sequence[int] = ()
    updated_by: Sequence[int] = ()


class Download(Protocol):
    """An open download body. ``start`` is the offset of the first byte the body carries: the asked start
    when the server answered 206, 0 when it ignored ``Range`` and answered 200 (the caller then skips)."""

    status: int
    start: int
    length: int | None  # Content-Length of this body, when sent

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` more bytes; b"" at the end. A body shorter than its Content-Length raises
        ProtocolError; a dropped connection raises Unavailable (the caller may reopen with Range)."""
        ...

    async def aclose(self) -> None: ...


class AmoClient:
    """The Files API on one account. Use as ``async with AmoClient(...) as client``."""

    stats: ClientStats

    def __init__(
        self,
        account_url: str,
        *,
        token: str | None = None,
        auth: TokenSource | None = None,
        drive_url: str | None = None,
        rate: float = 7.0,
        max_retries: int = 6,
        timeout: float = 60.0,
        page_size: int = 250,
        transport: object | None = None,
    ) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> AmoClient:
        raise NotImplementedError

    async def __aexit__(self, *exc: object) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    # --- account host -------------------------------------------------------------------------------------

    async def discover_drive_url(self) -> str:
        """``GET /api/v4/account?with=drive_url`` (once; cached). Returns the drive host's base URL."""
        raise NotImplementedError

    async def entity_files(self, kind: str, entity_id: int) -> list[EntityFileLink]:
        """All links of one entity (``before_id`` paging). NotFound when the entity does not exist."""
        raise NotImplementedError

    async def link_files(self, kind: str, entity_id: int, file_uuids: Sequence[str]) -> None:
        """``PUT /api/v4/{kind}/{id}/files`` → 202."""
        raise NotImplementedError

    async def unlink_files(self, kind: str, entity_id: int, file_uuids: Sequence[str]) -> None:
        """``DELETE /api/v4/{kind}/{id}/files`` → 202."""
        raise NotImplementedError

    async def file_links(self, file_uuid: str) -> list[LinkedEntity]:
        """``GET /api/v4/files/{uuid}/links``."""
        raise NotImplementedError

    # --- drive host ---------------------------------------------------------------------------------------

    def iter_files(self, flt: FileFilter | None = None) -> AsyncIterator[list[FileModel]]:
        """Pages of ``GET /v1.0/files`` (largest page), following ``_links.next``; 204 ends it."""
        raise NotImplementedError

    async def list_files(self, flt: FileFilter | None = None) -> list[FileModel]:
        raise NotImplementedError

    async def get_file(self, file_uuid: str) -> FileModel:
        raise NotImplementedError

    async def rename_file(self, file_uuid: str, name: str) -> FileModel:
        """``PATCH /v1.0/files/{uuid}`` with ``{name}`` (the name without extension)."""
        raise NotImplementedError

    async def set_active_version(self, file_uuid: str, version_uuid: str) -> FileModel:
        raise NotImplementedError

    async def delete_files(self, file_uuids: Sequence[str]) -> None:
        """``DELETE /v1.0/files`` → 204; the files go to the trash. Needs the files_delete scope."""
        raise NotImplementedError

    async def restore_files(self, file_uuids: Sequence[str]) -> list[FileModel]:
        raise NotImplementedError

    async def versions(self, file_uuid: str) -> list[VersionModel]:
        raise NotImplementedError

    async def drive_stats(self) -> DriveStats | None:
        """The undocumented ``GET /v1.0/files/stats``; None when the service refuses it or lacks it."""
        raise NotImplementedError

    async def create_session(
        self,
        file_name: str,
        file_size: int,
        *,
        file_uuid: str | None = None,
        content_type: str | None = None,
        with_preview: bool = False,
    ) -> UploadSession:
        raise NotImplementedError

    async def upload_part(self, url: str, data: bytes) -> PartAccepted | FileModel:
        """POST one part to ``url`` exactly as the service gave it. Never retried blindly once the body may
        have arrived; a 404 raises SessionGone."""
        raise NotImplementedError

    async def open_download(self, url: str, *, start: int = 0, end: int | None = None) -> Download:
        """GET a download link (redirects followed, Authorization dropped across hosts), with
        ``Range: bytes=start-end`` when start > 0 or end is given. The caller must ``aclose()`` it."""
        raise NotImplementedError
