"""The one exception tree of amofs and the one errno table.

Owns: every error type that crosses a layer boundary, and ``ERRNO``, the only mapping from an error to the
errno value a user sees. Imports nothing from amofs and nothing outside the standard library (no httpx, no
pyfuse3): the API layer raises these, the semantics layer raises and passes them on, the FUSE adapter turns
them into ``FUSEError(errno_of(exc))``.

    AmoError                      anything amofs reports to a caller
    ├── ApiError                  the service answered, and the answer was a failure
    │   ├── BadRequest            400: the request was refused as malformed          → EINVAL
    │   ├── AuthError             401: token missing, expired, revoked               → EACCES
    │   ├── Forbidden             403 (JSON): a scope or right is missing            → EACCES
    │   │   └── Blocked           403 with a non-JSON body: the IP is blocked        → EACCES
    │   ├── NotFound              404                                                → ENOENT
    │   │   └── SessionGone       404 on an upload part: the session expired         → EIO
    │   ├── Conflict              409                                                → EEXIST
    │   ├── TooLarge              413, or a size over max_file_size                  → EFBIG
    │   ├── RateLimited           429 after every retry                              → EAGAIN
    │   └── Unavailable           5xx or no connection after every retry             → EIO
    ├── ProtocolError             an answer we cannot use (bad JSON, HTML with 200,
    │                             a missing field, a short body)                     → EIO
    └── FsError                   a filesystem rule, decided without the service
        ├── NoEntry               no such name here                                  → ENOENT
        ├── Exists                the name is taken                                  → EEXIST
        ├── NotPermitted          the account cannot do this (mkdir, symlink, …)     → EPERM
        ├── ReadOnly              this folder cannot be written (search/, versions/) → EROFS
        ├── CrossDevice           a rename between folders the API cannot join       → EXDEV
        ├── IsADirectory          a file operation on a folder                       → EISDIR
        ├── NotADirectory         a folder operation on a file                       → ENOTDIR
        ├── NotEmpty              rmdir of a folder that has files                   → ENOTEMPTY
        ├── NameTooLong           a name over 255 bytes                              → ENAMETOOLONG
        ├── InvalidName           a name the account cannot hold                     → EINVAL
        ├── NoAttribute           no such extended attribute                         → ENODATA
        ├── NotSupported          an operation that has no meaning here              → ENOTSUP
        ├── BadHandle             a file handle that is not open                     → EBADF
        ├── FileTooBig            a write past max_file_size                         → EFBIG
        └── LocalIOError          the cache dir failed (disk full, unreadable)       → EIO

``ApiError`` carries the HTTP status, the method and path (never a token or a signed URL's query) and the
problem detail the server sent, so a log line can say what went wrong.
"""

from __future__ import annotations

import errno


class AmoError(Exception):
    """Base of every error amofs reports."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        self.message = message or (self.__class__.__doc__ or self.__class__.__name__).strip()


class ApiError(AmoError):
    """The service answered with a failure."""

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        detail: object = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else ""
        code = f"HTTP {self.status}" if self.status is not None else ""
        head = " ".join(p for p in (where, code) if p)
        return f"{head}: {self.message}" if head else self.message


class BadRequest(ApiError):
    """The service refused the request as malformed (400)."""


class AuthError(ApiError):
    """Authentication failed (401): the token is missing, expired or revoked."""


class Forbidden(ApiError):
    """The token lacks a scope or right for this operation (403)."""


class Blocked(Forbidden):
    """The service blocked this client (403 with a non-JSON page); requests stop until support lifts it."""


class NotFound(ApiError):
    """Not found (404)."""


class SessionGone(NotFound):
    """The upload session is gone (404 on a part); the upload must start again with a new session."""


class Conflict(ApiError):
    """The service reported a conflict (409)."""


class TooLarge(ApiError):
    """The file is larger than the service accepts."""


class RateLimited(ApiError):
    """The service kept answering 429 after every retry."""


class Unavailable(ApiError):
    """The service could not be reached or kept failing after every retry."""


class ProtocolError(AmoError):
    """The service's answer could not be used (malformed JSON, an HTML page, a missing field, a short body)."""


class FsError(AmoError):
    """A filesystem rule, decided without asking the service."""


class NoEntry(FsError):
    """No such file or folder."""


class Exists(FsError):
    """The name is already taken."""


class NotPermitted(FsError):
    """The account has no way to do this."""


class ReadOnly(FsError):
    """This folder is read-only."""


class CrossDevice(FsError):
    """This rename would join folders the API cannot join."""


class IsADirectory(FsError):
    """This is a folder."""


class NotADirectory(FsError):
    """This is not a folder."""


class NotEmpty(FsError):
    """The folder is not empty."""


class NameTooLong(FsError):
    """The name is longer than 255 bytes."""


class InvalidName(FsError):
    """The account cannot hold this name."""


class NoAttribute(FsError):
    """No such extended attribute."""


class NotSupported(FsError):
    """The operation has no meaning on this filesystem."""


class BadHandle(FsError):
    """The file handle is not open."""


class FileTooBig(FsError):
    """The write would make the file larger than the account's max_file_size."""


class LocalIOError(FsError):
    """The cache dir on local disk failed."""


#: The one errno table. Lookup walks the MRO (see ``errno_of``), so a subclass without its own row takes its
#: parent's; ``tests/unit/test_errors.py`` still requires a row for every class, so each choice is explicit.
ERRNO: dict[type[AmoError], int] = {
    AmoError: errno.EIO,
    ApiError: errno.EIO,
    BadRequest: errno.EINVAL,
    AuthError: errno.EACCES,
    Forbidden: errno.EACCES,
    Blocked: errno.EACCES,
    NotFound: errno.ENOENT,
    SessionGone: errno.EIO,
    Conflict: errno.EEXIST,
    TooLarge: errno.EFBIG,
    RateLimited: errno.EAGAIN,
    Unavailable: errno.EIO,
    ProtocolError: errno.EIO,
    FsError: errno.EIO,
    NoEntry: errno.ENOENT,
    Exists: errno.EEXIST,
    NotPermitted: errno.EPERM,
    ReadOnly: errno.EROFS,
    CrossDevice: errno.EXDEV,
    IsADirectory: errno.EISDIR,
    NotADirectory: errno.ENOTDIR,
    NotEmpty: errno.ENOTEMPTY,
    NameTooLong: errno.ENAMETOOLONG,
    InvalidName: errno.EINVAL,
    NoAttribute: errno.ENODATA,
    NotSupported: errno.ENOTSUP,
    BadHandle: errno.EBADF,
    FileTooBig: errno.EFBIG,
    LocalIOError: errno.EIO,
}


def errno_of(exc: BaseException) -> int:
    """The errno for an exception: its class's row in ``ERRNO``, or the nearest ancestor's; EIO otherwise."""
    for cls in type(exc).__mro__:
        if cls in ERRNO:
            return ERRNO[cls]
    return errno.EIO
