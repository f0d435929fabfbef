"""HTTP/1.1 plumbing of the emulator: listeners, connection threads, request bodies, response writing.

Owns the sockets. Each ``Listener`` is one host of the emulated service (account, drive, upload, storage) on
its own port, with a thread per connection (keep-alive) and every open connection tracked, so that
``close()`` can cut them and join their threads. A ``Request`` reads its body lazily and never holds more than
one chunk in memory: ``chunks()`` streams (Content-Length or chunked transfer encoding), ``read()`` is for small
JSON bodies only. A ``Response`` is either bytes or a byte range of a file, sent with ``socket.sendfile``;
``cut_after`` ends the connection early on purpose (fault injection).

Knows nothing of the Files API: every request goes to the ``Handler`` callable it was built with, which
returns a Response and is told (``done``), just before the body goes out, how many body bytes it carries.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = ["ClientGone", "Handler", "Listener", "Request", "Response"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_MAX_DRAIN = 64 << 20  # a larger unread body closes the connection instead of being read and dropped


class ClientGone(Exception):
    """The client closed the connection (or broke the framing) before its request body was complete."""


@dataclass
class Response:
    """What to send: ``body`` bytes, or ``length`` bytes of ``file`` from ``offset`` (then ``body`` is unused)."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None
    offset: int = 0
    length: int = 0
    cut_after: int | None = None  # send only this many body bytes, then close the connection
    close: bool = False


class Handler(Protocol):
    def handle(self, request: Request) -> Response: ...

    def done(self, request: Request, response: Response, bytes_out: int) -> None: ...


class Request:
    """One parsed request; the body is read on demand and counted in ``bytes_in``."""

    def __init__(self, http: BaseHTTPRequestHandler, host: str) -> None:
        self._http = http
        self.host = host
        self.method = http.command
        split = urlsplit(http.path)
        self.path = split.path
        self.query = split.query
        self.headers: Message = http.headers
        self.bytes_in = 0
        self.arrived = time.monotonic()
        self.user: Any = None  # set by the application once authenticated
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        self.chunked = "chunked" in te
        cl = self.headers.get("Content-Length")
        try:
            self.content_length: int | None = None if self.chunked else int(cl or 0)
        except ValueError:
            self.content_length = 0
            self.bad_framing = True
        else:
            self.bad_framing = self.content_length is not None and self.content_length < 0
        self._remaining = self.content_length or 0
        self._chunk_left = 0
        self._eof = not self.chunked and self._remaining == 0

    @property
    def complete(self) -> bool:
        return self._eof

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes; raises ClientGone on a short or malformed body."""
        rfile = self._http.rfile
        while not self._eof:
            if self.chunked:
                if self._chunk_left == 0:
                    self._chunk_left = self._next_chunk_size()
                    if self._chunk_left == 0:
                        self._read_trailers()
                        self._eof = True
                        return
                want = min(size, self._chunk_left)
            else:
                want = min(size, self._remaining)
            try:
                data = rfile.read(want)
            except (OSError, ValueError) as e:
                raise ClientGone(str(e)) from None
            if not data:
                raise ClientGone("connection closed in the middle of the body")
            self.bytes_in += len(data)
            if self.chunked:
                self._chunk_left -= len(data)
                if self._chunk_left == 0 and self._readline() not in (b"\r\n", b"\n"):
                    raise ClientGone("bad chunk terminator")
            else:
                self._remaining -= len(data)
                self._eof = self._remaining == 0
            yield data

    def _readline(self) -> bytes:
        try:
            line = self._http.rfile.readline(1024)
        except (OSError, ValueError) as e:
            raise ClientGone(str(e)) from None
        if not line:
            raise ClientGone("connection closed in the middle of the body")
        return line

    def _next_chunk_size(self) -> int:
        line = self._readline().split(b";", 1)[0].strip()
        try:
            return int(line, 16)
        except ValueError:
            raise ClientGone("bad chunk size") from None

    def _read_trailers(self) -> None:
        while self._readline() not in (b"\r\n", b"\n"):
            pass

    def read(self, limit: int) -> bytes | None:
        """The whole body if it has at most ``limit`` bytes, else None (the rest is left unread)."""
        if self.content_length is not None and self.content_length > limit:
            return None
        parts: list[bytes] = []
        total = 0
        for piece in self.chunks():
            total += len(piece)
            if total > limit:
                return None
            parts.append(piece)
        return b"".join(parts)

    def drain(self) -> bool:
        """Read and drop what is left of the body; False when the connection must be closed instead."""
        if self._eof:
            return True
        if self.bad_framing or (self.content_length is not None and self._remaining > _MAX_DRAIN):
            return False
        try:
            total = 0
            for piece in self.chunks():
                total += len(piece)
                if total > _MAX_DRAIN:
                    return False
        except ClientGone:
            return False
        return True


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 60  # a connection idle (or stalled mid-body) this long is closed, as nginx does
    disable_nagle_algorithm = True  # else a small answer can wait 40 ms for the client's delayed ACK
    server: Listener

    def _dispatch(self) -> None:
        listener = self.server
        request = Request(self, listener.kind)
        app = listener.app
        try:
            response = app.handle(request)
        except ClientGone:
            self.close_connection = True
            app.done(request, Response(499), 0)
            return
        except Exception:
            log.exception("emulator: unhandled error for %s %s", self.command, self.path)
            response = Response(
                500,
                b'{"title":"Internal Server Error","status":500,"detail":"emulator bug"}',
                "application/json",
            )
        if not request.drain():
            response.close = True
        try:
            self._send(response, head=self.command == "HEAD", before_body=lambda n: app.done(request, response, n))
        except OSError:
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    def _send(self, r: Response, *, head: bool, before_body: Callable[[int], None]) -> None:
        """Write the answer. ``before_body(n)`` runs once the answer is final and before the client can have
        all of it (so a request is in the log before its client sees the answer); ``n`` is the number of body
        bytes about to be sent."""
        length = r.length if r.file is not None else len(r.body)
        todo = 0 if head else length if r.cut_after is None else min(length, r.cut_after)
        with contextlib.ExitStack() as stack:
            f = stack.enter_context(r.file.open("rb")) if r.file is not None and todo else None
            self.send_response(r.status)
            if r.content_type:
                self.send_header("Content-Type", r.content_type)
            for k, v in r.headers.items():
                self.send_header(k, v)
            if r.status != 204:  # RFC 9110 §8.6: no Content-Length on 204
                self.send_header("Content-Length", str(length))
            if r.close or r.cut_after is not None:
                self.send_header("Connection", "close")
                self.close_connection = True
            before_body(todo)
            self.end_headers()
            if todo == 0:
                return
            if f is None:
                self.wfile.write(r.body[:todo])
            else:
                self.connection.sendfile(f, r.offset, todo)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("emulator %s: " + format, self.server.kind, *args)


class Listener(ThreadingHTTPServer):
    """One emulated host on its own port; a thread per connection, all tracked for ``close()``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, kind: str, address: tuple[str, int], app: Handler) -> None:
        self.kind = kind
        self.app = app
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        self._serving: threading.Thread | None = None
        self._closing = False
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._wake_r, self._wake_w = socket.socketpair()  # closed by server_close(), also on a bind failure
        super().__init__(address, _HTTPHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"amofs-emulator-{self.kind}-conn",
            daemon=True,
        )
        with self._conns_lock:
            self._conns[request] = t
        t.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator %s: connection error from %s", self.kind, client_address, exc_info=True)

    def start(self) -> None:
        self._serving = threading.Thread(target=self._serve, name=f"amofs-emulator-{self.kind}", daemon=True)
        self._serving.start()

    def _serve(self) -> None:
        """Accept until ``close()``; woken at once by the wake-up socket (serve_forever would poll)."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.socket, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing:
                for key, _ in sel.select():
                    if key.fileobj is self.socket and not self._closing:
                        self._accept_one()

    def _accept_one(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut every open connection, join the threads."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._serving is not None:
            self._serving.join(timeout)
            self._serving = None
        self.server_close()
        with self._conns_lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in conns:
            if thread is not threading.current_thread():
                thread.join(timeout)
