"""Typed, immutable models of the Files API's answers, and their parsers.

Owns: ``FileModel``, ``VersionModel``, ``UploadSession``, ``PartAccepted``, ``EntityFileLink``,
``LinkedEntity``, ``DriveStats`` and their ``from_json`` constructors. Parsers accept unknown fields (ignored)
and ``null`` where the spec allows it; a field the rest of amofs cannot work without (a file's ``uuid``, a
session's ``upload_url``) missing or of the wrong type raises ``ProtocolError`` naming it. Nothing here does
I/O or imports httpx.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from amofs.errors import ProtocolError

ENTITY_KINDS: tuple[str, ...] = ("leads", "contacts", "companies", "customers")


def _obj(data: object, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(v: str) -> str:
    """A JSON string may carry lone surrogates ("\\ud800"), which are not Unicode: no file name, UTF-8 store or
    log line can hold one. Each becomes U+FFFD here, at the edge, so nothing further in has to care.
    (``isascii`` is a flag check: uuids, URLs and most names skip the scan, a tenth of a cold listing.)"""
    return v if v.isascii() else _SURROGATE.sub("\ufffd", v)


def _str(d: Mapping[str, Any], key: str, what: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise ProtocolError(f"{what}: field {key!r} missing or not a string")
    return _text(v)


def _opt_str(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    return _text(v) if isinstance(v, str) else None


def _int(d: Mapping[str, Any], key: str, what: str) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError(f"{what}: field {key!r} missing or not an integer")
    return v


def _size(d: Mapping[str, Any], what: str) -> int:
    size = _int(d, "size", what)
    if size < 0:  # shown as 0 it would read as an empty file: a silently wrong one
        raise ProtocolError(f"{what}: field 'size' is negative")
    return size


def _opt_int(d: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        return default
    return v


def _link(d: Mapping[str, Any], name: str) -> str | None:
    links = d.get("_links")
    if not isinstance(links, Mapping):
        return None
    entry = links.get(name)
    if not isinstance(entry, Mapping):
        return None
    href = entry.get("href")
    return _text(href) if isinstance(href, str) and href else None


def _meta(d: Mapping[str, Any]) -> tuple[str, str]:
    meta = d.get("metadata")
    if not isinstance(meta, Mapping):
        return "", ""
    ext = meta.get("extension")
    mime = meta.get("mime_type")
    return (_text(ext) if isinstance(ext, str) else ""), (_text(mime) if isinstance(mime, str) else "")


@dataclass(frozen=True, slots=True)
class FileModel:
    """A file of the account as the service describes it (the active version's properties)."""

    uuid: str
    version_uuid: str
    name: str
    extension: str
    mime_type: str
    size: int
    type: str
    is_trashed: bool
    has_multiple_versions: bool
    created_at: int
    updated_at: int
    deleted_at: int | None
    source_id: int | None
    sanitized_name: str
    download_url: str | None
    download_version_url: str | None

    @classmethod
    def from_json(cls, data: object) -> FileModel:
        d = _obj(data, "file")
        what = "file"
        uuid = _str(d, "uuid", what)
        ext, mime = _meta(d)
        name = d.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"file {uuid}: field 'name' missing or not a string")
        created = _opt_int(d, "created_at", 0) or 0
        return cls(
            uuid=uuid,
            version_uuid=_opt_str(d, "version_uuid") or "",
            name=_text(name),
            extension=ext,
            mime_type=mime,
            size=_size(d, f"file {uuid}"),
            type=_opt_str(d, "type") or "file",
            is_trashed=bool(d.get("is_trashed", False)),
            has_multiple_versions=bool(d.get("has_multiple_versions", False)),
            created_at=created,
            updated_at=_opt_int(d, "updated_at", created) or created,
            deleted_at=_opt_int(d, "deleted_at"),
            source_id=_opt_int(d, "source_id"),
            sanitized_name=_opt_str(d, "sanitized_name") or _text(name),
            download_url=_link(d, "download"),
            download_version_url=_link(d, "download_version"),
        )


@dataclass(frozen=True, slots=True)
class VersionModel:
    """One version of a file."""

    uuid: str
    file_uuid: str
    name: str
    extension: str
    mime_type: str
    size: int
    is_main: bool
    created_at: int
    updated_at: int
    download_url: str | None

    @classmethod
    def from_json(cls, data: object) -> VersionModel:
        d = _obj(data, "version")
        uuid = _str(d, "uuid", "version")
        what = f"version {uuid}"
        ext, mime = _meta(d)
        name = d.get("name")
        created = _opt_int(d, "created_at", 0) or 0
        return cls(
            uuid=uuid,
            file_uuid=_str(d, "file_uuid", what),
            name=_text(name) if isinstance(name, str) else "",
            extension=ext,
            mime_type=mime,
            size=_size(d, what),
            is_main=bool(d.get("is_main", False)),
            created_at=created,
            updated_at=_opt_int(d, "updated_at", created) or created,
            download_url=_link(d, "download"),
        )


@dataclass(frozen=True, slots=True)
class UploadSession:
    """An upload session: where to send the first part, and the limits that hold for it."""

    session_id: int
    upload_url: str
    max_file_size: int
    max_part_size: int

    @classmethod
    def from_json(cls, data: object) -> UploadSession:
        d = _obj(data, "upload session")
        what = "upload session"
        part = _int(d, "max_part_size", what)
        if part <= 0:
            raise ProtocolError("upload session: max_part_size must be positive")
        return cls(
            session_id=_int(d, "session_id", what),
            upload_url=_str(d, "upload_url", what),
            max_file_size=_int(d, "max_file_size", what),
            max_part_size=part,
        )


@dataclass(frozen=True, slots=True)
class PartAccepted:
    """An intermediate part was accepted; the next one goes to ``next_url``."""

    session_id: int | None
    next_url: str


def parse_part_reply(data: object) -> PartAccepted | FileModel:
    """A part's reply: the file model when the file is complete, else where the next part goes.

    The end is told by the body (a ``uuid`` and no ``next_url``), never by the status code: the real service
    answers 202 to intermediate parts where its page says 200.
    """
    d = _obj(data, "upload part reply")
    next_url = d.get("next_url")
    if isinstance(next_url, str) and next_url:
        return PartAccepted(session_id=_opt_int(d, "session_id"), next_url=_text(next_url))
    if "uuid" in d:
        return FileModel.from_json(d)
    raise ProtocolError("upload part reply: neither next_url nor a file model")


@dataclass(frozen=True, slots=True)
class EntityFileLink:
    """One entity ↔ file link as listed by ``GET /api/v4/{kind}/{id}/files``."""

    id: int
    file_uuid: str

    @classmethod
    def from_json(cls, data: object) -> EntityFileLink:
        d = _obj(data, "entity file link")
        return cls(id=_int(d, "id", "entity file link"), file_uuid=_str(d, "file_uuid", "entity file link"))


@dataclass(frozen=True, slots=True)
class LinkedEntity:
    """An entity a file is linked to, from ``GET /api/v4/files/{uuid}/links``."""

    id: int
    entity_type: str
    name: str

    @classmethod
    def from_json(cls, data: object) -> LinkedEntity:
        d = _obj(data, "linked entity")
        name = d.get("name")
        return cls(
            id=_int(d, "id", "linked entity"),
            entity_type=_str(d, "entity_type", "linked entity"),
            name=_text(name) if isinstance(name, str) else "",
        )


@dataclass(frozen=True, slots=True)
class DriveStats:
    """The account's storage quota (undocumented ``GET /v1.0/files/stats``), in bytes."""

    limit: int
    used: int

    @classmethod
    def from_json(cls, data: object) -> DriveStats:
        d = _obj(data, "stats")
        return cls(limit=_int(d, "limit", "stats"), used=_int(d, "used", "stats"))
