"""JSON shapes of the emulated API: the file model, the version model, entity objects, problem bodies.

Owns the exact field sets and link formats of the spec (files-api.ru.md): ``_links.download`` (active version)
``/download/{account_uuid}/{file_uuid}/{sanitized_name}.{ext}``, ``_links.download_version``
``/download/{account_uuid}/{file_uuid}/{version_uuid}/{sanitized_name}.{ext}`` and ``_links.self``, all absolute
URLs on the drive host. Pure functions of store rows and base URLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from amofs.emulator.filenames import file_type, sanitize
from amofs.emulator.store import EntityRow, FileRow, VersionRow

__all__ = ["Urls", "download_url", "entity_model", "file_model", "problem", "title", "user", "version_model"]

_STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Urls:
    account: str
    drive: str
    account_uuid: str


def title(status: int) -> str:
    return _STATUS_TITLES.get(status, "Error")


def problem(status: int, detail: str) -> dict[str, Any]:
    return {"title": title(status), "type": f"https://httpstatus.es/{status}", "status": status, "detail": detail}


def user(user_id: int | None) -> dict[str, Any] | None:
    """created_by/updated_by/deleted_by: -1 client, 0 robot, >0 internal user."""
    if user_id is None:
        return None
    kind = "internal" if user_id > 0 else ("robot" if user_id == 0 else "client")
    return {"type": kind, "id": user_id}


def _link_name(name: str, extension: str) -> str:
    shown = sanitize(name) + (f".{sanitize(extension)}" if extension else "")
    return quote(shown)


def download_url(urls: Urls, file_uuid: str, name: str, extension: str, version_uuid: str | None = None) -> str:
    middle = f"{file_uuid}/{version_uuid}" if version_uuid else file_uuid
    return f"{urls.drive}/download/{urls.account_uuid}/{middle}/{_link_name(name, extension)}"


def file_model(f: FileRow, urls: Urls, session_id: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "_links": {
            "download": {"href": download_url(urls, f.uuid, f.name, f.extension)},
            "download_version": {"href": download_url(urls, f.uuid, f.name, f.extension, f.version_uuid)},
            "self": {"href": f"{urls.drive}/v1.0/files/{f.uuid}"},
        },
        "created_at": f.created_at,
        "created_by": user(f.created_by),
        "deleted_at": f.deleted_at,
        "deleted_by": user(f.deleted_by),
        "has_multiple_versions": f.nversions > 1,
        "is_trashed": f.trashed,
        "metadata": {"extension": f.extension, "mime_type": f.mime_type},
        "name": f.name,
        "previews": None,
        "sanitized_name": sanitize(f.name),
        "size": f.size,
        "source_id": f.source_id,
        "type": file_type(f.mime_type, f.extension),
        "updated_at": f.updated_at,
        "updated_by": user(f.updated_by),
        "uuid": f.uuid,
        "version_uuid": f.version_uuid,
    }
    if session_id is not None:
        out["session_id"] = session_id
    return out


def version_model(v: VersionRow, active_version_uuid: str, urls: Urls) -> dict[str, Any]:
    return {
        "_links": {
            "download": {"href": download_url(urls, v.file_uuid, v.name, v.extension, v.uuid)},
            "self": {"href": f"{urls.drive}/v1.0/files/{v.file_uuid}/versions/{v.uuid}"},
        },
        "created_at": v.created_at,
        "created_by": user(v.created_by),
        "file_uuid": v.file_uuid,
        "is_main": v.uuid == active_version_uuid,
        "metadata": {"extension": v.extension, "mime_type": v.mime_type},
        "name": v.name,
        "previews": None,
        "sanitized_name": sanitize(v.name),
        "size": v.size,
        "source_id": v.source_id,
        "type": file_type(v.mime_type, v.extension),
        "updated_at": v.updated_at,
        "updated_by": user(v.updated_by),
        "uuid": v.uuid,
    }


def entity_model(entity: EntityRow, user_id: int) -> dict[str, Any]:
    """An entity as ``GET /api/v4/files/{uuid}/links`` shows it (the lead-like fields of the spec's example)."""
    out: dict[str, Any] = {
        "id": entity.id,
        "name": entity.name,
        "created_by": 0,
        "main_user_id": user_id,
        "date_create": entity.created_at,
        "date_update": entity.created_at,
        "updated_by": None,
        "entity_type": entity.kind,
        "closest_task_at": None,
    }
    if entity.kind == "leads":
        out.update(price=0, pipeline_id=3858604, status_id=37066879)
    return out
