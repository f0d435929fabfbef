"""AmoClient: one method per endpoint of the Files API, and the only retry/throttle policy in amofs.

Signatures and docstrings are the contract the semantics layer (amofs.filesystem, reader, writer, views)
codes against. Do not change a signature without updating its callers.

Owns: the two base URLs (account host for ``/api/v4``, drive host for ``/v1.0`` and downloads — never mixed),
Bearer auth with one refresh on 401 through a ``TokenSource``, one token bucket per client (default 7
requests/s across both hosts, upload parts, downloads and redirect hops included), bounded exponential
back-off with full jitter on 429/5xx/connection errors (``Retry-After`` honoured), the HTTP status →
``AmoError`` mapping (one function: ``error_for_status``), paging. Semantics code above never sleeps or
retries.

Caches: the drive URL once discovered; the page size the service accepted; the last session's
``max_file_size``; whether ``/v1.0/files/stats`` was refused (then never asked again). Nothing else.

Rules:
- ``Authorization`` goes only to the origins of the account host and the drive host. Upload URLs and
  download redirects on any other origin get no token (a part URL carries its own signed token; httpx drops
  ``Authorization`` on a cross-origin redirect, which ``tests/api`` checks).
- A 403 whose body is not JSON is the service's IP block page: the client logs one line, raises Blocked and
  from then on fails every request at once with Blocked — no request is sent again.
- A request whose outcome is unknown (the connection broke after the body may have arrived) is retried only
  when replaying it is harmless (everything except upload parts). 429 and 5xx are answers — the service did
  not act — so they are retried, parts included.
- Log lines carry method and path only: never a token, never a signed URL's query (``safe_path``).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import quote

import httpcore
import httpx
import trio

from amofs.api.auth import StaticToken
from amofs.api.models import (
    ENTITY_KINDS,
    DriveStats,
    EntityFileLink,
    FileModel,
    LinkedEntity,
    PartAccepted,
    UploadSession,
    VersionModel,
    parse_part_reply,
)
from amofs.errors import (
    AmoError,
    ApiError,
    AuthError,
    BadRequest,
    Blocked,
    Conflict,
    Forbidden,
    NotFound,
    ProtocolError,
    RateLimited,
    SessionGone,
    TooLarge,
    Unavailable,
)

log = logging.getLogger(__name__)

#: smallest ``limit`` the client falls back to when the service refuses larger pages with 400
MIN_PAGE_SIZE = 25
#: error bodies are read up to this many bytes (problem details are small; HTML pages are cut)
_ERROR_BODY_MAX = 64 * 1024


class TokenSource(Protocol):
    """Where the client gets its access token; ``refresh`` is called at most once per 401."""

    async def token(self) -> str: ...

    async def refresh(self, rejected: str) -> str:
        """A new token after ``rejected`` got a 401 (raise AuthError when none can be had)."""
        ...


@dataclass
class ClientStats:
    """Counters for ``amofs status`` and the tests: every HTTP request the client sent."""

    requests: int = 0  # HTTP requests sent, retries and redirect hops included
    throttled: int = 0  # 429 answers received
    retries: int = 0
    waited_for_bucket: float = 0.0  # seconds spent waiting on the own token bucket
    by_kind: dict[str, int] = field(default_factory=dict)  # attempts per endpoint kind
    refreshes: int = 0  # token refreshes the client asked its TokenSource for


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

    def params(self) -> list[tuple[str, str]]:
        """The query parameters, in the bracket syntax of the spec page (``filter[deleted]`` sent as 1)."""
        p: list[tuple[str, str]] = []
        if self.uuids:
            p.append(("filter[uuid]", ",".join(self.uuids)))
        if self.name is not None:
            p.append(("filter[name]", self.name))
        p.extend(("filter[extensions][]", e) for e in self.extensions)
        if self.term is not None:
            p.append(("filter[term]", self.term))
        if self.source_id is not None:
            p.append(("filter[source_id]", str(self.source_id)))
        if self.deleted:
            p.append(("filter[deleted]", "1"))
        for key, val in (("unit", self.size_unit), ("from", self.size_from), ("to", self.size_to)):
            if val is not None:
                p.append((f"filter[size][{key}]", str(val)))
        dates: tuple[tuple[str, str | int | None], ...] = (
            ("type", self.date_type),
            ("date_preset", self.date_preset),
            ("from", self.date_from),
            ("to", self.date_to),
        )
        for key, dval in dates:
            if dval is not None:
                p.append((f"filter[date][{key}]", str(dval)))
        p.extend(("filter[created_by][]", str(u)) for u in self.created_by)
        p.extend(("filter[updated_by][]", str(u)) for u in self.updated_by)
        return p


class Download(Protocol):
    """An open download body. ``start`` is the offset of the first byte the body carries: the asked start
    when the server answered 206, 0 when it ignored ``Range`` and answered 200 (the caller then skips)."""

    status: int
    start: int
    length: int | None  # Content-Length of this body, when sent

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` more bytes; b"" at the end. A body shorter than its Content-Length raises
        ProtocolError or Unavailable (dropped connection); the caller may reopen with Range."""
        ...

    async def receive_into(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer``: ``len(buffer)`` bytes unless the body ends or fails first; 0 at the end. Bytes
        received before a failure are returned first, the error (as for ``receive``) on the next call."""
        ...

    async def aclose(self) -> None: ...


# --- the one status → error mapping -------------------------------------------------------------------------

_JWT_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}$")


def safe_path(url: str | httpx.URL) -> str:
    """The path of ``url`` fit for a log line or an error: no query (signed URLs carry their signature
    there), and every segment that looks like a token (a JWT, anything after ``/sessions/upload/``, or a
    segment over 128 characters) replaced by ``<redacted>``."""
    try:
        path = httpx.URL(url).path
    except (httpx.InvalidURL, TypeError):
        return "<unparsable url>"
    out: list[str] = []
    redact_rest = False
    prev = ""
    for seg in path.split("/"):
        if redact_rest or _JWT_SEGMENT.match(seg) or len(seg) > 128:
            out.append("<redacted>" if seg else seg)
        else:
            out.append(seg)
        if prev == "sessions" and seg == "upload":
            redact_rest = True
        prev = seg
    return "/".join(out)


_NOT_JSON = object()


def _parse_json_body(body: bytes) -> object:
    """The JSON value of ``body``, or ``_NOT_JSON``."""
    if not body.strip():
        return _NOT_JSON
    try:
        return cast(object, json.loads(body))
    except ValueError:
        return _NOT_JSON


def _problem_message(problem: object) -> str:
    if isinstance(problem, Mapping):
        parts = []
        for key in ("title", "detail", "message", "hint"):
            val = problem.get(key)
            if isinstance(val, str) and val and val not in parts:
                parts.append(val)
        errs = problem.get("validation-errors") or problem.get("errors")
        if errs:
            parts.append(json.dumps(errs, ensure_ascii=False)[:300])
        return "; ".join(parts)
    return ""


_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    429: RateLimited,
}


def error_for_status(status: int, method: str, path: str, body: bytes = b"", *, part: bool = False) -> ApiError:
    """The one mapping from an HTTP failure to an ``AmoError``: 400 BadRequest, 401 AuthError, 403 Forbidden
    (Blocked when the body is not JSON: the nginx block page), 404 NotFound (SessionGone on an upload
    ``part``), 409 Conflict, 413 TooLarge, 429 RateLimited, 5xx Unavailable, any other 4xx BadRequest.
    ``path`` must already be safe (``safe_path``); ``detail`` is the problem document when the body is
    JSON, else None."""
    problem = _parse_json_body(body)
    detail = None if problem is _NOT_JSON else problem
    cls: type[ApiError]
    if status == 403 and problem is _NOT_JSON and body.strip():
        cls = Blocked
        message = (
            "the service answered 403 with a non-JSON page: this client's IP looks blocked by amoCRM; "
            "no further requests will be sent (ask amoCRM support to lift the block)"
        )
    else:
        if status >= 500:
            cls = Unavailable
        elif status == 404 and part:
            cls = SessionGone
        else:
            cls = _STATUS_ERRORS.get(status, BadRequest)
        message = _problem_message(detail) or (cls.__doc__ or cls.__name__).strip()
    return cls(message, status=status, method=method, path=path, detail=detail)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _mentions_size(exc: ApiError) -> bool:
    text = (json.dumps(exc.detail, ensure_ascii=False) if exc.detail is not None else "") + exc.message
    text = text.lower()
    about_size = any(w in text for w in ("size", "размер"))
    too_much = any(w in text for w in ("exceed", "large", "big", "max", "limit", "превыш", "больш"))
    return about_size and too_much


# --- politeness --------------------------------------------------------------------------------------------


class TokenBucket:
    """``rate`` requests per second with bursts of at most ``burst``, on trio's clock (so MockClock drives
    it). FIFO: ``trio.Lock`` is fair, so waiters are served in arrival order."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._stamp: float | None = None
        self._lock = trio.Lock()

    def _refill(self, now: float) -> None:
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self) -> float:
        """Wait for one token; returns the seconds waited."""
        if self.rate <= 0 or self.rate == float("inf"):
            return 0.0
        async with self._lock:
            self._refill(trio.current_time())
            waited = 0.0
            if self._tokens < 1.0:
                waited = (1.0 - self._tokens) / self.rate
                await trio.sleep(waited)
                self._refill(trio.current_time())
            self._tokens -= 1.0
            return waited

    def drain(self) -> None:
        """Forget any saved-up burst (after a 429: the service thinks we are too fast)."""
        self._tokens = min(self._tokens, 0.0)


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return (u.scheme, u.host, port)


def _base(url: str) -> str:
    u = httpx.URL(url)
    if u.scheme not in ("http", "https") or not u.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return str(url).rstrip("/")


def _q(segment: str) -> str:
    return quote(segment, safe="")


# --- downloads ---------------------------------------------------------------------------------------------


class HttpDownload:
    """A streamed download body (``Download``).

    Two ways to the bytes, chosen per response:

    - **direct** (HTTP/1.1 with ``Content-Length`` framing and at least ``DIRECT_MIN`` bytes left after the
      first chunk): the first chunk comes through httpx as usual, which empties h11's buffer of the bytes that
      arrived with the headers; the rest is read straight from the connection — ``recv_into`` the caller's
      buffer on a plain TCP socket, ``read()`` of httpcore's network stream under TLS — in reads as large as
      the caller asks, counted against ``Content-Length``. httpx still did the request: redirects (with
      ``Authorization`` dropped across hosts), TLS and the pool. As h11 never sees the end of such a body,
      closing it closes the connection instead of returning it to the pool: one TCP (and TLS) set-up per
      large download, nothing next to its transfer time.
    - **through httpx** otherwise (small or chunked bodies, or a transport without a network stream, such as
      ``httpx.MockTransport``): ``response.aiter_raw()`` chunks, gathered.

    Why: httpcore reads a socket at most 64 KiB per ``recv`` and each chunk goes through h11, httpcore and
    httpx, awaits included; on loopback that held a download to 0.3-0.5x curl, and with every extra layer of
    the read path on the same thread, a ``cat`` through the mount to 0.14x. Read directly, 1 MiB per call, the
    body arrives at about curl's speed (measurements in docs/PERFORMANCE.md).

    ``receive_into(buffer)`` fills the caller's buffer completely unless the body ends or fails first, so a
    reader can keep buffers aligned to file offsets; ``receive(max_bytes)`` returns up to ``max_bytes`` as a
    new object.

    Failures: the connection dropping, stalling past the read timeout, or ending before Content-Length →
    Unavailable; a body running past its Content-Length → ProtocolError. Bytes received before a failure are
    returned first; the error comes on the next call, so the caller knows exactly where to resume with Range.
    """

    status: int
    start: int
    length: int | None

    def __init__(self, response: httpx.Response, start: int, method: str, path: str) -> None:
        self.status = response.status_code
        self.start = start
        self.length = _body_length(response)
        self._resp = response
        self._it: AsyncIterator[bytes] | None = _raw_chunks(response)
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._received = 0  # bytes of the body taken from the connection so far
        self._error: AmoError | None = None
        self._eof = False
        self._method = method
        self._path = path
        self._direct: _Direct | None = None
        self._may_go_direct = self.length is not None and _direct_capable(response)

    @classmethod
    def empty(cls, response: httpx.Response, start: int, method: str, path: str) -> HttpDownload:
        d = cls(response, start, method, path)
        d.length = 0
        d._eof = True
        d._may_go_direct = False
        return d

    # --- through httpx --------------------------------------------------------------------------------------
    async def _pull(self) -> bytes | None:
        """The next raw chunk from httpx, or None at the end; a failure is parked in ``_error``."""
        assert self._it is not None
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            self._eof = True
            if self.length is not None and self._received < self.length:
                self._error = ProtocolError(
                    f"{self._method} {self._path}: body ended after {self._received} of "
                    f"{self.length} bytes (Content-Length)"
                )
            return None
        except httpx.TransportError as exc:
            self._eof = True
            self._error = self._dropped(type(exc).__name__)
            return None
        self._received += len(chunk)
        if self.length is not None and self._received > self.length:
            self._eof = True
            self._error = ProtocolError(
                f"{self._method} {self._path}: body runs past its Content-Length of {self.length} bytes"
            )
            return None
        return chunk

    def _dropped(self, why: str) -> Unavailable:
        return Unavailable(
            f"download dropped after {self._received} bytes ({why})", method=self._method, path=self._path
        )

    async def _prime(self) -> None:
        """Before the first read: take the first chunk through httpx (it carries the bytes h11 holds), then
        decide whether the rest is read directly."""
        if self._may_go_direct:
            self._may_go_direct = False
            chunk = await self._pull()
            if chunk:
                self._pending.append(chunk)
                self._pending_len += len(chunk)
            assert self.length is not None
            if not self._eof and self._error is None and self.length - self._received >= DIRECT_MIN:
                self._direct = _Direct.of(self._resp)

    # --- direct ---------------------------------------------------------------------------------------------
    async def _direct_into(self, view: memoryview) -> int:
        """Read straight from the connection into ``view`` until full or the body's end; errors parked."""
        assert self._direct is not None and self.length is not None
        want = min(len(view), self.length - self._received)
        got = 0
        while got < want:
            try:
                n = await self._direct.read_into(view[got:want])
            except _StreamFailed as exc:
                self._eof = True
                self._error = self._dropped(str(exc))
                break
            if n == 0:
                self._eof = True
                self._error = self._dropped("connection closed before Content-Length")
                break
            got += n
            self._received += n
        if self._received == self.length:
            self._eof = True
        return got

    # --- the Download protocol ------------------------------------------------------------------------------
    async def receive_into(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` from the body: ``len(buffer)`` bytes unless the body ends or fails first (then
        fewer; 0 at the end). A failure after some bytes returns those; the next call raises."""
        with memoryview(buffer) as view:
            want = len(view)
            if want == 0:
                return 0
            await self._prime()
            got = 0
            while self._pending and got < want:  # bytes already taken from the connection come first
                head = self._pending[0]
                n = min(len(head), want - got)
                view[got : got + n] = head[:n] if n < len(head) else head
                got += n
                self._pending_len -= n
                if n == len(head):
                    self._pending.pop(0)
                else:
                    self._pending[0] = head[n:]
            while got < want and not self._eof:
                if self._direct is not None:
                    got += await self._direct_into(view[got:])
                    break
                chunk = await self._pull()
                if chunk:
                    n = min(len(chunk), want - got)
                    view[got : got + n] = chunk[:n] if n < len(chunk) else chunk
                    got += n
                    if n < len(chunk):
                        self._pending.append(chunk[n:])
                        self._pending_len += len(chunk) - n
            if got == 0 and self._error is not None:
                raise self._error
            return got

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` more bytes; b"" at the end (see the class docstring for failures)."""
        if max_bytes <= 0:
            return b""
        await self._prime()
        if self._direct is not None:
            assert self.length is not None
            buf = bytearray(min(max_bytes, self._pending_len + self.length - self._received))
            got = await self.receive_into(buf) if buf else 0
            if got == 0 and self._error is not None:
                raise self._error
            return bytes(memoryview(buf)[:got])
        while self._pending_len < max_bytes and not self._eof:
            chunk = await self._pull()
            if chunk:
                self._pending.append(chunk)
                self._pending_len += len(chunk)
        if not self._pending:
            if self._error is not None:
                raise self._error
            return b""
        if self._pending_len <= max_bytes:
            out = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
            return out
        # take max_bytes, keep the tail of the last chunk
        joined = b"".join(self._pending)
        out, rest = joined[:max_bytes], joined[max_bytes:]
        self._pending = [rest]
        self._pending_len = len(rest)
        return out

    async def aclose(self) -> None:
        it, self._it = self._it, None
        self._direct = None
        if it is not None and hasattr(it, "aclose"):
            await it.aclose()
        await self._resp.aclose()

    async def __aenter__(self) -> HttpDownload:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


#: a body with at least this many bytes left after its first chunk is read straight from the connection
DIRECT_MIN = 256 * 1024


class _StreamFailed(Exception):
    """The connection under a direct read failed or stalled (the message says how)."""


def _direct_capable(response: httpx.Response) -> bool:
    """Whether the rest of ``response``'s body can be read from its connection: HTTP/1.1, Content-Length
    framing (no Transfer-Encoding), identity coding, and httpcore's network stream in the extensions."""
    if response.http_version != "HTTP/1.1" or "transfer-encoding" in response.headers:
        return False
    stream = response.extensions.get("network_stream")
    return isinstance(stream, httpcore.AsyncNetworkStream)


class _Direct:
    """Reads of a response's connection past httpcore: ``recv_into`` on a plain TCP trio socket, else the
    network stream's ``read`` (TLS decrypts there) copied into the caller's buffer. ``timeout`` (the
    request's read timeout) bounds each read."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, timeout: float | None) -> None:
        self._stream = stream
        self._timeout = float("inf") if timeout is None else timeout
        sock = None
        if stream.get_extra_info("ssl_object") is None:
            with contextlib.suppress(Exception):  # a backend without a trio socket: fall back to read()
                sock = stream.get_extra_info("socket")
        self._sock = sock if isinstance(sock, trio.socket.SocketType) else None

    @classmethod
    def of(cls, response: httpx.Response) -> _Direct:
        timeouts = response.request.extensions.get("timeout", {})
        return cls(response.extensions["network_stream"], timeouts.get("read"))

    async def read_into(self, view: memoryview) -> int:
        try:
            if self._sock is not None:
                with trio.fail_after(self._timeout):
                    return await self._sock.recv_into(view)
            data = await self._stream.read(len(view), timeout=self._timeout)
        except trio.TooSlowError:
            raise _StreamFailed(f"no data for {self._timeout:.0f} s") from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _StreamFailed(type(exc).__name__) from None
        except (httpcore.NetworkError, httpcore.TimeoutException) as exc:
            raise _StreamFailed(type(exc).__name__) from None
        view[: len(data)] = data
        return len(data)


class _OneShotBody(httpx.AsyncByteStream):
    """A request body handed to the transport once and then let go.

    httpx keeps a finished Response in a reference cycle with its stream (``BoundAsyncStream``), and the
    Response holds its Request, so a plain ``bytes`` body would stay alive until the next cyclic GC: a few
    parts' worth of memory during an upload. This stream drops its reference as soon as it was sent."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        data, self._data = self._data, b""
        if data:
            yield data


def _body_length(response: httpx.Response) -> int | None:
    if response.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
        return None
    raw = response.headers.get("content-length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


# --- the client --------------------------------------------------------------------------------------------


class AmoClient:
    """The Files API on one account. Use as ``async with AmoClient(...) as client``.

    Throttle: ``rate`` requests/s with bursts of ``burst`` (default rate/2). The burst is kept below the
    service's own (the limit is 7/s; its bucket is assumed to hold about a second's worth) so that the
    service's bucket never runs dry at our steady rate: network jitter between our send times and its arrival
    times then eats into that reserve instead of drawing a 429 (measured against the emulator: burst = rate
    draws occasional 429s at a matching rate, burst = rate/2 none).

    Keyword additions beyond the original contract (all optional): ``burst`` (bucket size),
    ``backoff_base``/``backoff_cap`` (seconds; full jitter: a retry waits uniform(0, min(cap, base·2^n)), and
    after a 429 without Retry-After at least min(1 s, cap), as the limit is per second), ``max_retry_after`` (a
    longer Retry-After gives up at once), ``part_retries`` (retries of a part answered 429/5xx), ``rng`` (a
    ``random.Random`` for the jitter).
    """

    stats: ClientStats
    #: the ``max_file_size`` of the latest upload session, so uploads can refuse before sending anything
    max_file_size: int | None
    #: the ``max_part_size`` of the latest upload session (for ``amofs status``' time-left estimates)
    max_part_size: int | None

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
        burst: float | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 120.0,
        part_retries: int = 5,
        rng: random.Random | None = None,
    ) -> None:
        if auth is None:
            if token is None:
                raise ValueError("AmoClient needs a token or a TokenSource")
            auth = StaticToken(token)
        self._auth: TokenSource = auth
        self._account = _base(account_url)
        self._drive: str | None = _base(drive_url) if drive_url else None
        self._trusted: set[tuple[str, str, int | None]] = {_origin(self._account)}
        if self._drive:
            self._trusted.add(_origin(self._drive))
        self._max_retries = max(0, max_retries)
        self._part_retries = max(0, part_retries)
        self._page_size = max(1, page_size)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._rng = rng or random.Random()
        self._bucket = TokenBucket(rate, max(1.0, rate / 2) if burst is None else burst)
        self._blocked: Blocked | None = None
        self._stats_refused = False
        self._refresh_lock = trio.Lock()
        self._drive_lock = trio.Lock()
        self.stats = ClientStats()
        self.max_file_size = None
        self.max_part_size = None
        self._auth_dead = False  # the token was refused and could not be refreshed (logged once)
        self._http = httpx.AsyncClient(
            transport=cast("httpx.AsyncBaseTransport | None", transport),
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            event_hooks={"request": [self._on_request]},
            headers={"User-Agent": "amofs", "Accept": "application/json"},
        )

    async def __aenter__(self) -> AmoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def account_url(self) -> str:
        return self._account

    @property
    def drive_url(self) -> str | None:
        """The drive host's base URL, once given or discovered."""
        return self._drive

    @property
    def blocked(self) -> bool:
        return self._blocked is not None

    # --- plumbing -----------------------------------------------------------------------------------------

    async def _on_request(self, request: httpx.Request) -> None:
        """httpx request hook: runs for every request sent, redirect hops included."""
        if self._blocked is not None:
            raise self._blocked_again(request.method, safe_path(request.url))
        waited = await self._bucket.take()
        self.stats.waited_for_bucket += waited
        self.stats.requests += 1

    def _blocked_again(self, method: str, path: str) -> Blocked:
        assert self._blocked is not None
        return Blocked(self._blocked.message, status=403, method=method, path=path, detail=None)

    def _is_trusted(self, url: str | httpx.URL) -> bool:
        return _origin(url) in self._trusted

    async def _backoff(self, attempt: int, retry_after: float | None, floor: float = 0.0) -> float:
        if retry_after is not None:
            delay = retry_after
        else:
            ceiling = min(self._backoff_cap, self._backoff_base * (2 ** (attempt - 1)))
            delay = max(floor, self._rng.uniform(0.0, ceiling))
        self.stats.retries += 1
        await trio.sleep(delay)
        return delay

    async def _refresh(self, rejected: str) -> None:
        """One refresh however many requests got a 401 with the same token."""
        async with self._refresh_lock:
            current = await self._auth.token()
            if current != rejected:
                return
            log.info("access token rejected (401); refreshing it")
            self.stats.refreshes += 1
            try:
                new = await self._auth.refresh(rejected)
            except AuthError as e:
                if not self._auth_dead:  # one line in the log, not one per request that meets it
                    log.error("%s", e.message)
                    self._auth_dead = True
                raise
            if new == rejected:
                raise AuthError("the token source gave back the rejected token", status=401)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        kind: str,
        params: Sequence[tuple[str, str | int]] | None = None,
        json_body: object = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        replay_safe: bool = True,
        refresh_on_401: bool = True,
        stream: bool = False,
        follow_redirects: bool = False,
        pass_statuses: frozenset[int] = frozenset(),
        max_retries: int | None = None,
        part: bool = False,
        one_shot_body: bool = False,
    ) -> httpx.Response:
        """Send one logical request with the whole policy; returns a 2xx response (or one in
        ``pass_statuses``), read unless ``stream`` (the caller then closes it). Raises AmoError only."""
        # parsed once: httpx checks every character of a URL on each parse, and a part's signed URL is long
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ProtocolError(f"{method} {safe_path(url)}: unusable URL ({exc})") from exc
        path = safe_path(parsed)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ProtocolError(f"{method} {path}: not an absolute http(s) URL")
        trusted = self._is_trusted(parsed)
        retries = self._max_retries if max_retries is None else max_retries
        attempt = 0
        refreshed = False
        while True:
            if self._blocked is not None:
                raise self._blocked_again(method, path)
            hdrs = dict(headers or {})
            token: str | None = None
            if trusted:
                token = await self._auth.token()
                hdrs["Authorization"] = f"Bearer {token}"
            body: bytes | _OneShotBody | None = content
            if one_shot_body and content is not None:
                body = _OneShotBody(content)
                hdrs["Content-Length"] = str(len(content))  # a fixed length, not chunked
            request = self._http.build_request(
                method,
                parsed,
                params=list(params) if params is not None else None,
                json=json_body,
                content=body,
                headers=hdrs,
            )
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
            try:
                resp = await self._http.send(request, stream=True, follow_redirects=follow_redirects)
            except Blocked:
                raise
            except httpx.TooManyRedirects as exc:
                raise ProtocolError(f"{method} {path}: too many redirects") from exc
            except httpx.TransportError as exc:
                nothing_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                if (replay_safe or nothing_sent) and attempt < retries:
                    attempt += 1
                    delay = await self._backoff(attempt, None)
                    log.warning(
                        "%s %s: %s; retry %d/%d after %.1fs",
                        method,
                        path,
                        type(exc).__name__,
                        attempt,
                        retries,
                        delay,
                    )
                    continue
                raise Unavailable(
                    f"no answer from the service ({type(exc).__name__})"
                    + ("" if nothing_sent or replay_safe else "; the outcome is unknown"),
                    method=method,
                    path=path,
                ) from exc
            except httpx.HTTPError as exc:  # anything else httpx may raise (invalid URL, decoding …)
                raise ProtocolError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

            status = resp.status_code
            if status < 300 or status in pass_statuses:
                if stream:
                    return resp
                try:
                    await resp.aread()
                except httpx.TransportError as exc:
                    await resp.aclose()
                    if replay_safe and attempt < retries:
                        attempt += 1
                        delay = await self._backoff(attempt, None)
                        log.warning("%s %s: body cut (%s); retry after %.1fs", method, path, type(exc).__name__, delay)
                        continue
                    raise Unavailable(
                        f"the answer was cut off ({type(exc).__name__})", method=method, path=path
                    ) from exc
                finally:
                    await resp.aclose()
                _check_length(resp, method, path)
                return resp

            # a failure (or an unexpected redirect): read a bounded body, then decide
            try:
                body = await _read_bounded(resp, _ERROR_BODY_MAX)
            except httpx.TransportError:
                body = b""
            finally:
                await resp.aclose()
            if 300 <= status < 400:
                raise ProtocolError(f"{method} {path}: unexpected redirect (HTTP {status})")

            if status == 401 and refresh_on_401 and token is not None and not refreshed:
                refreshed = True
                try:
                    await self._refresh(token)
                except AuthError as exc:
                    first = error_for_status(status, method, path, body)
                    raise AuthError(
                        f"{first.message} — {exc.message}",
                        status=status,
                        method=method,
                        path=path,
                        detail=first.detail,
                    ) from exc
                continue

            err = error_for_status(status, method, path, body, part=part)
            if isinstance(err, Blocked):
                self._blocked = err
                log.error("%s %s: HTTP 403 with a non-JSON page: IP blocked; stopping all requests", method, path)
                raise err

            if status == 429 or status >= 500:
                if status == 429:
                    self.stats.throttled += 1
                    self._bucket.drain()
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
                if attempt < retries and (retry_after is None or retry_after <= self._max_retry_after):
                    attempt += 1
                    delay = await self._backoff(
                        attempt, retry_after, floor=min(1.0, self._backoff_cap) if status == 429 else 0.0
                    )
                    log.warning(
                        "%s %s: HTTP %d; retry %d/%d after %.1fs",
                        method,
                        path,
                        status,
                        attempt,
                        retries,
                        delay,
                    )
                    continue
                if retry_after is not None and retry_after > self._max_retry_after:
                    err.message = f"{err.message} (Retry-After {retry_after:.0f}s is too long to wait)"
                elif retries:
                    err.message = f"{err.message} (after {attempt} retries)"
            raise err

    def _json(self, resp: httpx.Response, method: str, url: str) -> object:
        """The JSON body of a successful answer; anything else is a ProtocolError naming the request."""
        body = resp.content
        ctype = resp.headers.get("content-type", "").lower()
        if not body.strip():
            raise ProtocolError(f"{method} {safe_path(url)}: HTTP {resp.status_code} with an empty body, JSON expected")
        if "html" in ctype or body.lstrip()[:1] == b"<":
            raise ProtocolError(
                f"{method} {safe_path(url)}: HTTP {resp.status_code} answered an HTML page, JSON expected"
            )
        try:
            return cast(object, json.loads(body))
        except ValueError as exc:
            raise ProtocolError(
                f"{method} {safe_path(url)}: malformed JSON in the answer ({getattr(exc, 'msg', type(exc).__name__)})"
            ) from exc

    async def _get_json(self, url: str, *, kind: str, **kw: Any) -> object | None:
        """GET → parsed JSON, or None on 204."""
        resp = await self._send("GET", url, kind=kind, **kw)
        if resp.status_code == 204:
            return None
        return self._json(resp, "GET", url)

    async def _drive_base(self) -> str:
        if self._drive is None:
            await self.discover_drive_url()
        assert self._drive is not None
        return self._drive

    # --- account host -------------------------------------------------------------------------------------

    async def discover_drive_url(self) -> str:
        """``GET /api/v4/account?with=drive_url`` (once; cached). Returns the drive host's base URL."""
        async with self._drive_lock:
            if self._drive is not None:
                return self._drive
            url = f"{self._account}/api/v4/account"
            data = await self._get_json(url, kind="account", params=[("with", "drive_url")])
            if not isinstance(data, Mapping):
                raise ProtocolError("GET /api/v4/account: expected a JSON object")
            drive = data.get("drive_url")
            if not isinstance(drive, str) or not drive:
                raise ProtocolError("GET /api/v4/account?with=drive_url: field 'drive_url' missing")
            try:
                self._drive = _base(drive)
            except (ValueError, httpx.InvalidURL) as exc:
                raise ProtocolError(f"GET /api/v4/account: drive_url is not an http(s) URL: {exc}") from exc
            self._trusted.add(_origin(self._drive))
            log.info("drive host discovered: %s", self._drive)
            return self._drive

    def _entity_url(self, kind: str, entity_id: int) -> str:
        if kind not in ENTITY_KINDS:
            raise ValueError(f"unknown entity kind {kind!r} (one of {', '.join(ENTITY_KINDS)})")
        return f"{self._account}/api/v4/{kind}/{int(entity_id)}/files"

    async def entity_files(self, kind: str, entity_id: int) -> list[EntityFileLink]:
        """All links of one entity (``before_id`` paging). NotFound when the entity does not exist.

        Asks ``limit`` (the page size) and keeps asking with ``before_id`` = the smallest id seen while a
        full page came back; 204 means no (more) links."""
        url = self._entity_url(kind, entity_id)
        limit = min(self._page_size, 250)
        before_id: int | None = None
        out: list[EntityFileLink] = []
        seen: set[int] = set()
        while True:
            params: list[tuple[str, str | int]] = [("limit", limit)]
            if before_id is not None:
                params.append(("before_id", before_id))
            try:
                data = await self._get_json(url, kind="entity_files", params=params)
            except BadRequest:
                if before_id is None and limit // 2 >= MIN_PAGE_SIZE:
                    log.warning("GET %s: limit=%d refused with 400; trying %d", safe_path(url), limit, limit // 2)
                    limit //= 2
                    continue
                raise
            if data is None:
                break
            items = _embedded(data, "files", "GET", url)
            page = [EntityFileLink.from_json(x) for x in items]
            out.extend(link for link in page if link.id not in seen)
            seen.update(link.id for link in page)
            if len(page) < limit:
                break
            smallest = min(link.id for link in page)
            if before_id is not None and smallest >= before_id:
                raise ProtocolError(f"GET {safe_path(url)}: before_id paging does not advance")
            before_id = smallest
        return out

    async def link_files(self, kind: str, entity_id: int, file_uuids: Sequence[str]) -> None:
        """``PUT /api/v4/{kind}/{id}/files`` → 202."""
        await self._send(
            "PUT",
            self._entity_url(kind, entity_id),
            kind="link",
            json_body=[{"file_uuid": u} for u in file_uuids],
        )

    async def unlink_files(self, kind: str, entity_id: int, file_uuids: Sequence[str]) -> None:
        """``DELETE /api/v4/{kind}/{id}/files`` → 202."""
        await self._send(
            "DELETE",
            self._entity_url(kind, entity_id),
            kind="unlink",
            json_body=[{"file_uuid": u} for u in file_uuids],
        )

    async def file_links(self, file_uuid: str) -> list[LinkedEntity]:
        """``GET /api/v4/files/{uuid}/links``."""
        url = f"{self._account}/api/v4/files/{_q(file_uuid)}/links"
        data = await self._get_json(url, kind="file_links")
        if data is None:
            return []
        if not isinstance(data, Mapping):
            raise ProtocolError(f"GET {safe_path(url)}: expected a JSON object")
        entities = data.get("entities")
        if entities is None:
            embedded = data.get("_embedded")
            entities = embedded.get("entities") if isinstance(embedded, Mapping) else None
        if entities is None:
            return []
        if not isinstance(entities, list):
            raise ProtocolError(f"GET {safe_path(url)}: field 'entities' is not a list")
        return [LinkedEntity.from_json(e) for e in entities]

    # --- drive host ---------------------------------------------------------------------------------------

    async def iter_files(self, flt: FileFilter | None = None) -> AsyncIterator[list[FileModel]]:
        """Pages of ``GET /v1.0/files`` (largest page), following ``_links.next``; 204 ends it.

        The first request asks ``limit`` = page size (default 250); a 400 to it halves the limit (down to
        ``MIN_PAGE_SIZE``, logged) and the accepted size is kept for later listings. Later pages are fetched
        from ``_links.next`` exactly as given (same origin as the drive host, else ProtocolError)."""
        drive = await self._drive_base()
        base_params: list[tuple[str, str | int]] = list((flt or FileFilter()).params())
        url = f"{drive}/v1.0/files"
        first = True
        seen: set[str] = set()
        while True:
            try:
                if first:
                    params = [*base_params, ("limit", self._page_size)]
                    resp = await self._send("GET", url, kind="list", params=params)
                else:
                    resp = await self._send("GET", url, kind="list")
            except BadRequest:
                if first and self._page_size // 2 >= MIN_PAGE_SIZE:
                    log.warning(
                        "GET /v1.0/files: limit=%d refused with 400; trying %d",
                        self._page_size,
                        self._page_size // 2,
                    )
                    self._page_size //= 2
                    continue
                raise
            if resp.status_code == 204:
                return
            data = self._json(resp, "GET", url)
            first = False
            files = [FileModel.from_json(f) for f in _embedded(data, "files", "GET", url)]
            if files:
                yield files
            nxt = _next_link(data)
            if nxt is None or not files:
                return
            nxt_url = str(resp.request.url.join(nxt))
            if _origin(nxt_url) != _origin(drive):
                raise ProtocolError("GET /v1.0/files: _links.next points to another host; not followed")
            if nxt_url in seen:
                raise ProtocolError("GET /v1.0/files: _links.next repeats a page already read")
            seen.add(str(resp.request.url))
            seen.add(nxt_url)
            url = nxt_url

    async def list_files(self, flt: FileFilter | None = None) -> list[FileModel]:
        """Every file matching ``flt`` (all pages)."""
        out: list[FileModel] = []
        async for page in self.iter_files(flt):
            out.extend(page)
        return out

    async def get_file(self, file_uuid: str) -> FileModel:
        """``GET /v1.0/files/{uuid}``; NotFound when unknown."""
        url = f"{await self._drive_base()}/v1.0/files/{_q(file_uuid)}"
        data = await self._get_json(url, kind="get")
        if data is None:
            raise ProtocolError(f"GET {safe_path(url)}: HTTP 204, a file model expected")
        return FileModel.from_json(data)

    async def _patch(self, file_uuid: str, body: dict[str, str], kind: str) -> FileModel:
        url = f"{await self._drive_base()}/v1.0/files/{_q(file_uuid)}"
        resp = await self._send("PATCH", url, kind=kind, json_body=body)
        return FileModel.from_json(self._json(resp, "PATCH", url))

    async def rename_file(self, file_uuid: str, name: str) -> FileModel:
        """``PATCH /v1.0/files/{uuid}`` with ``{name}`` (the name without extension)."""
        return await self._patch(file_uuid, {"name": name}, "rename")

    async def set_active_version(self, file_uuid: str, version_uuid: str) -> FileModel:
        """``PATCH /v1.0/files/{uuid}`` with ``{version_uuid}``: that version becomes the active one."""
        return await self._patch(file_uuid, {"version_uuid": version_uuid}, "set_version")

    async def delete_files(self, file_uuids: Sequence[str]) -> None:
        """``DELETE /v1.0/files`` → 204; the files go to the trash. Needs the files_delete scope."""
        url = f"{await self._drive_base()}/v1.0/files"
        await self._send("DELETE", url, kind="delete", json_body=[{"uuid": u} for u in file_uuids])

    async def restore_files(self, file_uuids: Sequence[str]) -> list[FileModel]:
        """``POST /v1.0/files/restore`` → the restored files (an empty list when the service says 204)."""
        url = f"{await self._drive_base()}/v1.0/files/restore"
        resp = await self._send("POST", url, kind="restore", json_body=[{"uuid": u} for u in file_uuids])
        if resp.status_code == 204 or not resp.content.strip():
            return []
        data = self._json(resp, "POST", url)
        return [FileModel.from_json(f) for f in _embedded(data, "files", "POST", url)]

    async def versions(self, file_uuid: str) -> list[VersionModel]:
        """``GET /v1.0/files/{uuid}/versions`` (all of them; ``_links.next`` followed if ever sent)."""
        url = f"{await self._drive_base()}/v1.0/files/{_q(file_uuid)}/versions"
        out: list[VersionModel] = []
        seen = {url}
        while True:
            resp = await self._send("GET", url, kind="versions")
            if resp.status_code == 204:
                return out
            data = self._json(resp, "GET", url)
            out.extend(VersionModel.from_json(v) for v in _embedded(data, "versions", "GET", url))
            nxt = _next_link(data)
            if nxt is None:
                return out
            url = str(resp.request.url.join(nxt))
            if url in seen or not self._is_trusted(url):
                return out
            seen.add(url)

    async def drive_stats(self) -> DriveStats | None:
        """The undocumented ``GET /v1.0/files/stats``; None when the service refuses it or lacks it.

        A refusal (400/401/403 JSON/404/405) is remembered: the endpoint is not asked again by this client,
        and a 401 there never triggers a token refresh (integration tokens may simply not be allowed)."""
        if self._stats_refused:
            return None
        url = f"{await self._drive_base()}/v1.0/files/stats"
        try:
            data = await self._get_json(url, kind="stats", refresh_on_401=False)
            if data is None:
                raise ProtocolError("GET /v1.0/files/stats: HTTP 204")
            return DriveStats.from_json(data)
        except Blocked:
            raise
        except (BadRequest, AuthError, Forbidden, NotFound, ProtocolError) as exc:
            self._stats_refused = True
            log.info("GET /v1.0/files/stats unavailable (%s); no quota will be shown", type(exc).__name__)
            return None

    async def create_session(
        self,
        file_name: str,
        file_size: int,
        *,
        file_uuid: str | None = None,
        content_type: str | None = None,
        with_preview: bool = False,
    ) -> UploadSession:
        """``POST /v1.0/sessions``. A 400 that speaks of the size (or 413) raises TooLarge."""
        url = f"{await self._drive_base()}/v1.0/sessions"
        body: dict[str, object] = {"file_name": file_name, "file_size": file_size}
        if content_type:
            body["content_type"] = content_type
        if file_uuid:
            body["file_uuid"] = file_uuid
        if with_preview:
            body["with_preview"] = True
        try:
            resp = await self._send("POST", url, kind="session", json_body=body)
        except BadRequest as exc:
            if _mentions_size(exc):
                raise TooLarge(
                    f"the service refused a {file_size}-byte file: {exc.message}",
                    status=exc.status,
                    method=exc.method,
                    path=exc.path,
                    detail=exc.detail,
                ) from exc
            raise
        session = UploadSession.from_json(self._json(resp, "POST", url))
        self.max_file_size = session.max_file_size
        self.max_part_size = session.max_part_size
        return session

    async def upload_part(self, url: str, data: bytes) -> PartAccepted | FileModel:
        """POST one part to ``url`` exactly as the service gave it. Never retried blindly once the body may
        have arrived; a 404 raises SessionGone.

        Retried (same URL, back-off): 429 and 5xx answers (the service refused the part; the amoCRM web
        uploader does the same) and connection failures before anything was sent. A connection lost after
        the body went out raises Unavailable with ``status`` None: the caller decides (upload_file starts a
        new session). ``Authorization`` is sent only when ``url`` is on the account or drive host's origin."""
        resp = await self._send(
            "POST",
            url,
            kind="part",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            replay_safe=False,
            max_retries=self._part_retries,
            part=True,
            one_shot_body=True,
        )
        return parse_part_reply(self._json(resp, "POST", url))

    async def open_download(self, url: str, *, start: int = 0, end: int | None = None) -> Download:
        """GET a download link (redirects followed, Authorization dropped across hosts), with
        ``Range: bytes=start-end`` when start > 0 or end is given. The caller must ``aclose()`` it.

        ``end`` is inclusive, as in HTTP. 206 → ``start`` is the asked start (checked against
        Content-Range); 200 → ``start`` = 0 and the caller skips; 416 (start at or past the end) → an empty
        body at ``start``. A relative ``url`` is taken against the drive host."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range {start}-{end}")
        if not url.startswith(("http://", "https://")):
            url = str(httpx.URL(await self._drive_base()).join(url))
        headers = {"Accept-Encoding": "identity", "Accept": "*/*"}
        ranged = start > 0 or end is not None
        if ranged:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        resp = await self._send(
            "GET",
            url,
            kind="download",
            headers=headers,
            stream=True,
            follow_redirects=True,
            pass_statuses=frozenset({416}) if ranged else frozenset(),
        )
        path = safe_path(url)
        if resp.status_code == 416:
            return HttpDownload.empty(resp, start, "GET", path)
        if resp.status_code == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("content-range", ""))
            if m is None or int(m.group(1)) != start:
                await resp.aclose()
                raise ProtocolError(
                    f"GET {path}: HTTP 206 with Content-Range {resp.headers.get('content-range')!r}, "
                    f"asked bytes={start}-{'' if end is None else end}"
                )
            return HttpDownload(resp, start, "GET", path)
        return HttpDownload(resp, 0, "GET", path)


# --- small helpers -----------------------------------------------------------------------------------------


async def _read_bounded(resp: httpx.Response, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in _raw_chunks(resp):
        buf += chunk
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


def _raw_chunks(resp: httpx.Response) -> AsyncIterator[bytes]:
    """``resp.aiter_raw()``, or the body itself when it was already read (a response built in memory)."""
    try:
        content = resp.content
    except httpx.ResponseNotRead:
        return resp.aiter_raw()
    return _once(content)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


def _check_length(resp: httpx.Response, method: str, path: str) -> None:
    expected = _body_length(resp)
    if expected is not None and len(resp.content) != expected:
        raise ProtocolError(f"{method} {path}: body is {len(resp.content)} bytes, Content-Length says {expected}")


def _embedded(data: object, key: str, method: str, url: str) -> list[object]:
    """``data["_embedded"][key]`` as a list; a missing ``_embedded`` is an empty list only when
    ``_count`` says 0."""
    where = f"{method} {safe_path(url)}"
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{where}: expected a JSON object")
    emb = data.get("_embedded")
    if emb is None:
        if data.get("_count") == 0:
            return []
        raise ProtocolError(f"{where}: field '_embedded' missing")
    if not isinstance(emb, Mapping):
        raise ProtocolError(f"{where}: field '_embedded' is not an object")
    items = emb.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ProtocolError(f"{where}: field '_embedded.{key}' is not a list")
    return items


def _next_link(data: object) -> str | None:
    if not isinstance(data, Mapping):
        return None
    links = data.get("_links")
    if not isinstance(links, Mapping):
        return None
    nxt = links.get("next")
    if not isinstance(nxt, Mapping):
        return None
    href = nxt.get("href")
    return href if isinstance(href, str) and href else None
