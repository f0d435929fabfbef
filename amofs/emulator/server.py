"""Emulator: the public face of amofs.emulator — start/stop the four listeners, seed and inspect state from
Python, and ``main()`` for ``amofs emulator`` / ``python -m amofs.emulator``.

Listeners (each its own port on ``host``, 127.0.0.1 by default):
  account  ``/api/v4/…``, ``/oauth2/access_token``, control ``/_emulator/…``   (``port``)
  drive    ``/v1.0/…``, ``/download/…``                                          (``drive_port``)
  upload   ``/v1.0/sessions/upload/{token}`` when ``options.upload_host == "separate"``   (any free port)
  storage  presigned download URLs when ``options.redirect_downloads``        (any free port)

State lives in ``data_dir`` (see amofs.emulator.store) and survives ``stop()``: a new Emulator on the same
directory serves the same account, token and secrets. The direct methods (``seed_file``, ``files``,
``content``…) never go through HTTP and may be called before ``start()`` and from any thread.
"""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from amofs.emulator import render
from amofs.emulator.app import App
from amofs.emulator.endpoints import ALL_SCOPES, Context
from amofs.emulator.httpd import Listener
from amofs.emulator.options import EmulatorOptions, OptionError, add_option_flags, options_from_args
from amofs.emulator.store import ENTITY_KINDS, SeedItem, Store, StoreError
from amofs.emulator.traffic import Req, Traffic

__all__ = ["Emulator", "EmulatorOptions", "Req", "SeedItem", "main"]

log = logging.getLogger(__name__)

_KINDS = ("account", "drive", "upload", "storage")


class Emulator:
    """A running (after ``start()``) emulation of one amoCRM account and its Files API."""

    def __init__(
        self,
        data_dir: Path | str,
        options: EmulatorOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        drive_port: int = 0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.options = options if options is not None else EmulatorOptions()
        self.host = host
        self._ports = {"account": port, "drive": drive_port, "upload": 0, "storage": 0}
        self._store = Store(self.data_dir)
        secret = self._store.meta("secret", make=secrets.token_hex(32))
        # "emu-" first: a token beginning with "-" (1 in 64 of token_urlsafe's) reads as an option on a command line
        token = self.options.token or self._store.meta("main_token", make="emu-" + secrets.token_urlsafe(32))
        assert secret is not None and token is not None
        self.token: str = token
        self._store.add_token(token, ALL_SCOPES, self.options.user_id)
        account_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"amofs-emulator:{self.options.account_id}"))
        self._traffic = Traffic()
        self._ctx = Context(self._store, self.options, self._traffic, secret, token, account_uuid)
        self._app = App(self._ctx)
        self._listeners: dict[str, Listener] = {}
        self._state = "new"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve all listeners; returns once they accept connections."""
        if self._state != "new":
            raise RuntimeError(f"emulator already {self._state}")
        try:
            for kind in _KINDS:
                port = self._ports[kind]
                try:
                    listener = Listener(kind, (self.host, port), self._app)
                except OSError as e:
                    raise OSError(e.errno, f"cannot listen on {self.host}:{port}: {e.strerror}") from None
                self._listeners[kind] = listener
                self._ctx.bases[kind] = listener.url
        except BaseException:
            for listener in self._listeners.values():
                listener.server_close()
            self._listeners.clear()
            raise
        for listener in self._listeners.values():
            listener.start()
        self._state = "started"
        log.info("emulator started: account=%s drive=%s", self.account_url, self.drive_url)

    def stop(self) -> None:
        """Close the listeners and every open connection, join the threads, close the store (idempotent)."""
        if self._state == "stopped":
            return
        self._ctx.stopping.set()
        closers = [threading.Thread(target=listener.close) for listener in self._listeners.values()]
        for t in closers:
            t.start()
        for t in closers:
            t.join()
        self._store.close()
        self._state = "stopped"

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _base(self, kind: str) -> str:
        try:
            return self._ctx.bases[kind]
        except KeyError:
            raise RuntimeError("the emulator is not started") from None

    @property
    def account_url(self) -> str:
        return self._base("account")

    @property
    def drive_url(self) -> str:
        return self._base("drive")

    @property
    def upload_url(self) -> str:
        """Base URL of the upload listener (used when ``options.upload_host == "separate"``)."""
        return self._base("upload")

    @property
    def storage_url(self) -> str:
        """Base URL of the storage listener that serves presigned downloads."""
        return self._base("storage")

    @property
    def account_uuid(self) -> str:
        """The account uuid used in download links."""
        return self._ctx.account_uuid

    # -- traffic ---------------------------------------------------------------------------------------------

    @property
    def log(self) -> list[Req]:
        """Every answered request so far (control requests excluded), oldest first; a copy."""
        return self._traffic.entries()

    def count(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        host: str | None = None,
        status: int | None = None,
    ) -> int:
        return self._traffic.count(method, path_prefix, host, status)

    def reset_log(self) -> None:
        self._traffic.reset_log()

    def unblock(self) -> None:
        """Lift a ``block_after`` block, forget violations and refill the rate-limit bucket."""
        self._traffic.unblock()

    def state(self) -> dict[str, Any]:
        """Counts: files, trashed, versions, entities, links, sessions_open, requests, violations, blocked."""
        t = self._traffic
        return self._store.counts() | {"requests": len(t), "violations": t.violations, "blocked": t.blocked}

    # -- tokens, OAuth, entities ------------------------------------------------------------------------------

    def add_token(self, token: str, scopes: Iterable[str], expires_at: float | None = None) -> None:
        """Accept another access token with the given scopes (e.g. {"files"} without "files_delete"), until
        ``expires_at`` (a time.time() value; None = forever), after which it gets 401."""
        self._store.add_token(token, set(scopes), self.options.user_id, expires_at)

    def revoke_token(self, token: str) -> None:
        """Make a token unknown (its next use gets 401)."""
        self._store.revoke_token(token)

    def add_oauth_client(
        self, client_id: str, client_secret: str, redirect_uri: str, scopes: Iterable[str] = ALL_SCOPES
    ) -> None:
        self._store.add_oauth_client(client_id, client_secret, redirect_uri, scopes)

    def issue_auth_code(self, client_id: str, ttl: float = 1200) -> str:
        """A single-use authorization code for ``client_id`` (as if the user had approved the integration)."""
        if self._store.oauth_client(client_id) is None:
            raise KeyError(f"unknown OAuth client {client_id!r}")
        code = "def50200" + secrets.token_hex(32)
        self._store.add_grant(code, "code", client_id, time.time() + ttl)
        return code

    def add_entity(self, kind: str, entity_id: int, name: str) -> None:
        """Create (or rename) a lead/contact/company/customer that files can be linked to."""
        self._store.add_entity(kind, entity_id, name)

    # -- files -----------------------------------------------------------------------------------------------

    def seed_file(
        self,
        name_with_ext: str,
        data: bytes,
        *,
        linked: Sequence[tuple[str, int]] = (("leads", 1),),
        trashed: bool = False,
        created_at: int | None = None,
        created_by: int | None = None,
    ) -> str:
        """Store a file directly (no HTTP) and return its uuid; missing linked entities are created."""
        item = SeedItem(name_with_ext, data, linked, trashed, created_at, created_by)
        return self._store.seed([item], self.options.user_id)[0]

    def seed_many(self, items: Iterable[SeedItem | tuple[str, bytes]]) -> list[str]:
        """Store many files in one transaction (100,000 in a few seconds); ``(name, data)`` tuples get
        ``seed_file``'s defaults. Identical contents share one blob."""
        seeds = [i if isinstance(i, SeedItem) else SeedItem(i[0], i[1]) for i in items]
        return self._store.seed(seeds, self.options.user_id)

    def add_version(self, file_uuid: str, name_with_ext: str, data: bytes, *, created_at: int | None = None) -> str:
        """Store ``data`` as the new active version of a file (no HTTP); returns the version uuid. The file
        takes the version's name and extension, and ``updated_at`` = ``created_at`` (default: now)."""
        try:
            return self._store.add_version(file_uuid, name_with_ext, data, self.options.user_id, created_at)
        except StoreError:
            raise KeyError(file_uuid) from None

    def files(self, trashed: bool | None = None) -> list[dict[str, Any]]:
        """File models as the API renders them, oldest first; trashed None = all, True/False = only those."""
        urls = self._ctx.urls
        return [render.file_model(r, urls) for r in self._store.all_files(trashed)]

    def file(self, file_uuid: str) -> dict[str, Any]:
        row = self._store.get_file(file_uuid)
        if row is None:
            raise KeyError(file_uuid)
        return render.file_model(row, self._ctx.urls)

    def content(self, file_uuid: str, version_uuid: str | None = None) -> bytes:
        """The bytes of the active version (or of ``version_uuid``)."""
        row = self._store.get_file(file_uuid)
        if row is None:
            raise KeyError(file_uuid)
        version = self._store.get_version(version_uuid or row.version_uuid)
        if version is None or version.file_uuid != file_uuid:
            raise KeyError(version_uuid)
        return self._store.blob_path(version.blob).read_bytes()

    def versions(self, file_uuid: str) -> list[dict[str, Any]]:
        """Version models, newest first (as GET /v1.0/files/{uuid}/versions)."""
        row = self._store.get_file(file_uuid)
        if row is None:
            raise KeyError(file_uuid)
        urls = self._ctx.urls
        return [render.version_model(v, row.version_uuid, urls) for v in self._store.versions(file_uuid)]

    def links(self, kind: str, entity_id: int) -> list[str]:
        """Uuids of the files linked to an entity, oldest link first (trashed files included)."""
        if kind not in ENTITY_KINDS:
            raise ValueError(f"entity kind must be one of {ENTITY_KINDS}")
        return self._store.all_links(kind, entity_id)

    def sessions_open(self) -> int:
        """Upload sessions neither completed nor expired."""
        return self._store.sessions_open()


# -- command line ------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amofs emulator",
        description="Serve an emulated amoCRM account and its Files API on 127.0.0.1 (for tests and demos).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="account host port (default: any free port)")
    p.add_argument("--drive-port", type=int, default=0, help="drive host port (default: any free port)")
    p.add_argument(
        "--data", type=Path, default=None, help="data directory, kept (default: a temporary one, removed at exit)"
    )
    p.add_argument("--demo-data", action="store_true", help="seed sample files when the data directory is empty")
    p.add_argument("--token", default=None, help="access token to accept, all scopes (default: made up)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    add_option_flags(p, skip=frozenset({"token"}))
    return p


def main(argv: list[str] | None = None) -> int:
    """``amofs emulator [...]``: serve until SIGINT/SIGTERM, exit 0; one-line errors, never a traceback."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except OptionError as e:
        parser.error(str(e))
    options.token = args.token
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    tmp: tempfile.TemporaryDirectory[str] | None = None
    emu: Emulator | None = None
    try:
        if args.data is None:
            tmp = tempfile.TemporaryDirectory(prefix="amofs-emulator-")
        data = Path(tmp.name) if tmp is not None else args.data
        emu = Emulator(data, options, args.host, args.port, args.drive_port)
        if args.demo_data:
            from amofs.emulator.demo import seed_demo

            st = emu.state()
            if st["files"] + st["trashed"] + st["entities"] == 0:
                seed_demo(emu)
        emu.start()
        print(f"amofs emulator: account={emu.account_url} drive={emu.drive_url} token={emu.token}", flush=True)
        while not stop.wait(0.5):
            pass
        return 0
    except (OSError, sqlite3.Error) as e:
        print(f"amofs emulator: error: {e}", file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # a bug: still one line for the user, the details in the log
        log.debug("emulator failed", exc_info=True)
        print(f"amofs emulator: internal error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if emu is not None:
            emu.stop()
        if tmp is not None:
            tmp.cleanup()
        for s, handler in previous.items():
            signal.signal(s, handler)


def restartable_port(host: str = "127.0.0.1") -> int:
    """A free port below the ephemeral range, for an emulator that is stopped and started again on the same
    ports (a service outage): no outgoing connection takes it while the emulator is down."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
