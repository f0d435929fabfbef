"""Shown names: how an account file's ``name`` and ``metadata.extension`` become one Unix file name, and back.

Owns: the reversible escape of characters a Unix name cannot hold, the split of a shown name into the
service's name and extension, the stable names given to files whose shown names collide, and the rules for
names that stay local (editor lock and temp files). Pure functions; no I/O, no caching.

Escape (the scheme rclone's encoder uses, so names look natural):
    "/"  → "／" (U+FF0F FULLWIDTH SOLIDUS)
    NUL  → "␀" (U+2400 SYMBOL FOR NULL)
    "." or ".." as a whole name → "．" / "．．" (U+FF0E FULLWIDTH FULL STOP)
    a literal "／", "␀", "．" (whole-name case) or "‛" in the original is prefixed with "‛" (U+201B), so
    ``unescape(escape(s)) == s`` for every string.

Collisions: files whose shown names are equal keep the plain name for the oldest (``created_at``, then uuid);
every other one is shown as ``NAME (UUID8).EXT`` (UUID8: the first 8 hex digits of its uuid). A suffixed name
depends only on the file's own uuid, so it never changes while the file exists.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

from amofs.errors import InvalidName, NameTooLong

NAME_MAX = 255

_SLASH = "\uff0f"
_NUL = "\u2400"
_DOT = "\uff0e"
_QUOTE = "\u201b"

DEFAULT_LOCAL_PATTERNS: tuple[str, ...] = (
    ".~lock.*#",  # LibreOffice lock files
    "~$*",  # Microsoft Office owner files
    ".*.swp",  # vim
    ".*.swx",
    ".*.swo",
    ".*.swn",
    "4913",  # vim's probe that the folder is writable, made and removed on every save
    "#*#",  # emacs auto-save
    "*~",  # emacs, gedit backups
    ".#*",  # emacs lock links
    ".goutputstream-*",  # GLib/GIO atomic-replace temp files
    ".DS_Store",
    "._*",  # macOS resource forks
    "Thumbs.db",
    "desktop.ini",
    ".directory",  # KDE Dolphin
)

# Temp names of tools that write a temp file and rename it over the target: rsync (.NAME.XXXXXX),
# GIO (.goutputstream-XXXXXX), `sed -i` (sedXXXXXX), `perl -i` (XXXXXXXX, mkstemp fills the last six), and
# the common "*.tmp"/"*.part" of download managers and editors.
_RENAME_TEMP = re.compile(
    r"^\..+\.[A-Za-z0-9]{6}$|^\.goutputstream-[A-Za-z0-9]+$|^(sed|XX)[A-Za-z0-9]{6}$|.+\.(tmp|part|crdownload)$"
)


def escape(name: str) -> str:
    """Make a service name safe as one Unix path component (reversible)."""
    if name in (".", ".."):
        return _DOT * len(name)
    if set(name) == {_DOT}:
        return _QUOTE + name
    out: list[str] = []
    for ch in name:
        if ch == "/":
            out.append(_SLASH)
        elif ch == "\0":
            out.append(_NUL)
        elif ch in (_SLASH, _NUL, _QUOTE):
            out.append(_QUOTE + ch)
        else:
            out.append(ch)
    return "".join(out)


def unescape(shown: str) -> str:
    """Invert ``escape``."""
    if shown in (_DOT, _DOT * 2):
        return "." * len(shown)
    out: list[str] = []
    quoted = False
    for ch in shown:
        if quoted:
            out.append(ch)
            quoted = False
        elif ch == _QUOTE:
            quoted = True
        elif ch == _SLASH:
            out.append("/")
        elif ch == _NUL:
            out.append("\0")
        else:
            out.append(ch)
    if quoted:  # a trailing lone quote stands for itself
        out.append(_QUOTE)
    return "".join(out)


def join(name: str, extension: str) -> str:
    """The service's name and extension as one unescaped file name."""
    return f"{name}.{extension}" if extension else name


def split(full: str) -> tuple[str, str]:
    """An unescaped file name as the service's (name, extension): split at the last dot.

    A leading dot does not start an extension (".env" has none), and neither does a trailing one.
    """
    base, dot, ext = full.rpartition(".")
    if not dot or not base or not ext:
        return full, ""
    return base, ext


def shown(name: str, extension: str) -> str:
    """The plain shown name of a file (escaped, before collision handling)."""
    return escape(join(name, extension))


def with_suffix(shown_name: str, extension: str, uuid: str) -> str:
    """The collision name ``NAME (UUID8).EXT`` of a shown name."""
    tag = f" ({uuid.replace('-', '')[:8]})"
    ext = escape(extension)
    if extension and shown_name.endswith("." + ext):
        return shown_name[: -len(ext) - 1] + tag + "." + ext
    return shown_name + tag


def fit(shown_name: str, extension: str, uuid: str) -> str:
    """A shown name cut to NAME_MAX bytes when the service's name is longer than Unix allows.

    The cut name carries the uuid tag so that it stays unique and stable.
    """
    if not shown_name:  # a file the service calls "" (no name, no extension) still needs a name here
        return f"({uuid.replace('-', '')[:8]})"
    if len(shown_name.encode()) <= NAME_MAX:
        return shown_name
    ext = ("." + escape(extension)) if extension else ""
    tag = f" ({uuid.replace('-', '')[:8]})"
    room = NAME_MAX - len((tag + ext).encode())
    stem = shown_name[: -len(ext)] if ext and shown_name.endswith(ext) else shown_name
    cut = stem.encode()[:room].decode(errors="ignore")
    return cut + tag + ext


class Named(Protocol):
    @property
    def uuid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def extension(self) -> str: ...
    @property
    def created_at(self) -> int: ...


def assign(files: Iterable[Named], taken: Iterable[str] = ()) -> dict[str, str]:
    """Shown names for a folder's files: ``{shown_name: uuid}``, collisions resolved as documented above.

    ``taken`` are names already used in the folder by something else (a local file): those stay with it and
    a file that would collide with one is suffixed. Linear in the number of files.
    """
    groups: dict[str, list[Named]] = {}
    seen: set[str] = set()
    for f in files:
        if f.uuid in seen:
            continue  # listed twice (a listing that grew while it was paged): one file, one name
        seen.add(f.uuid)
        plain = fit(shown(f.name, f.extension), f.extension, f.uuid)
        groups.setdefault(plain, []).append(f)
    used = set(taken)
    out: dict[str, str] = {}
    # plain names first, so a suffixed name can never take a plain one's place
    for plain, members in groups.items():
        if len(members) > 1:
            members.sort(key=lambda m: (m.created_at, m.uuid))
        if plain not in used:
            out[plain] = members[0].uuid
            used.add(plain)
            members[:] = members[1:]
    for plain, members in groups.items():
        for m in members:
            name = with_suffix(plain, m.extension, m.uuid)
            if name in used:  # an astronomically unlikely clash: fall back to the whole uuid
                name = with_suffix(plain, m.extension, m.uuid.replace("-", "") + "-")
            out[name] = m.uuid
            used.add(name)
    return out


def is_local_only(shown_name: str, patterns: Sequence[str]) -> bool:
    """Whether a name is an editor lock/temp file that stays in the cache dir and never reaches the account."""
    return any(fnmatch.fnmatchcase(shown_name, p) for p in patterns)


def is_rename_temp(shown_name: str) -> bool:
    """Whether a name looks like a temp file a tool will rename over its target (rsync, GIO, editors)."""
    return _RENAME_TEMP.match(shown_name) is not None


def check_component(shown_name: str) -> None:
    """Raise when a user-given name cannot be a file name in the account."""
    if len(shown_name.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise NameTooLong(f"name longer than {NAME_MAX} bytes")
    if not shown_name or shown_name in (".", ".."):
        raise InvalidName("empty name")
    try:
        shown_name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName("the name is not valid UTF-8; the account stores names as UTF-8") from None
