"""How the emulated service derives a file's name, extension, sanitized name, MIME type and kind from the
``file_name`` of an upload session.

Owns the readings of the spec that concern names (see docs/EMULATOR.md): the name/extension split at the
last dot, the ASCII ``sanitized_name`` (transliterated, used in download links), the MIME guess from the
extension (stdlib tables only, so the result does not depend on the machine's /etc/mime.types) and the
``type`` field (image|video|audio|document|file). Pure functions, no state.
"""

from __future__ import annotations

import functools
import mimetypes
import re

__all__ = ["file_type", "guess_mime", "sanitize", "shown_name", "split_name"]

_MIME = mimetypes.MimeTypes(filenames=())  # built-in table only: deterministic across machines
_EXTRA_MIME = {
    "md": "text/markdown",
    "csv": "text/csv",
    "json": "application/json",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "webp": "image/webp",
    "heic": "image/heic",
    "gz": "application/gzip",
    "tgz": "application/gzip",
    "bz2": "application/x-bzip2",
    "xz": "application/x-xz",
}
_DOCUMENT_EXTENSIONS = frozenset(
    {"pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp", "rtf", "pages", "numbers"}
)
_TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            "a", "b", "v", "g", "d", "e", "yo", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p",
            "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya",
        ],
        strict=True,
    )
)  # fmt: skip
_NOT_SAFE = re.compile(r"[^A-Za-z0-9-]+")


def split_name(file_name: str) -> tuple[str, str]:
    """Split an uploaded ``file_name`` into (name, extension) at the last dot.

    "contract.pdf" → ("contract", "pdf"); "a.tar.gz" → ("a.tar", "gz"); ".env" → (".env", "") (a leading dot
    alone is not an extension); "notes." → ("notes.", ""); "Акт 01/2024.pdf" → ("Акт 01/2024", "pdf"). A tail
    containing "/" or whitespace is not an extension either ("v1.0/readme" has none). The case is kept.
    """
    dot = file_name.rfind(".")
    if dot <= 0 or dot == len(file_name) - 1:
        return file_name, ""
    ext = file_name[dot + 1 :]
    if "/" in ext or any(c.isspace() for c in ext):
        return file_name, ""
    return file_name[:dot], ext


def shown_name(name: str, extension: str) -> str:
    """The inverse of ``split_name``: "name.ext", or just the name without an extension."""
    return f"{name}.{extension}" if extension else name


def sanitize(name: str) -> str:
    """ASCII ``sanitized_name``: Cyrillic transliterated, every run of other characters (``_`` included, as in
    the spec's "_96" → "-96") turned into one "-". Never empty ("file")."""
    out: list[str] = []
    for ch in name:
        low = ch.lower()
        if low in _TRANSLIT:
            t = _TRANSLIT[low]
            out.append(t.capitalize() if ch != low else t)
        else:
            out.append(ch)
    return _NOT_SAFE.sub("-", "".join(out)) or "file"


@functools.lru_cache(maxsize=1024)
def guess_mime(extension: str) -> str:
    """MIME type from the extension (case-insensitive); application/octet-stream when unknown."""
    ext = extension.lower()
    if not ext:
        return "application/octet-stream"
    if ext in _EXTRA_MIME:
        return _EXTRA_MIME[ext]
    mime, _ = _MIME.guess_type("x." + ext, strict=False)
    return mime or "application/octet-stream"


def file_type(mime_type: str, extension: str) -> str:
    """The model's ``type``: image|video|audio by MIME family, document for office/PDF files, else file."""
    family = mime_type.split("/", 1)[0]
    if family in ("image", "video", "audio"):
        return family
    if extension.lower() in _DOCUMENT_EXTENSIONS:
        return "document"
    return "file"
