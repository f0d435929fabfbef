"""The life of one mount: check the mount point, connect, mount, serve, unmount, and the daemon's readiness.

Owns: the start-up sequence (client → account check → ``AmoFS.start`` → ``nursery.start(fs.run)`` →
``pyfuse3.init`` → ``pyfuse3.main``), the one trio nursery everything long-running lives in, the teardown
order (an ``AsyncExitStack``: remove the pid file, unmount, ``fs.close()`` which waits for uploads in flight,
stop the background work, close the client), SIGINT/SIGTERM/SIGHUP → ``pyfuse3.terminate()``, the daemon fork and
its readiness pipe, the pid file ``amofs umount`` waits on, and the read-ahead of the mount's bdi.

Teardown unmounts *before* waiting for uploads: once ``pyfuse3.main`` has returned nobody answers the kernel,
so a mount left in place would hang every process that touches it while uploads finish.

Must not: print (the command line does; this module raises ``UsageError`` or ``AmoError`` with one-line
messages and logs), import the emulator (only ``amofs.cli`` may), or log a token.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pyfuse3
import trio

from amofs import __version__
from amofs.api.auth import TOKEN_PATH, OAuthTokens, StaticToken
from amofs.api.client import AmoClient, TokenSource
from amofs.config import ProfileTokens, Settings, UsageError, runtime_dir, save_tokens
from amofs.errors import AmoError, ApiError, AuthError, Blocked, Forbidden, NotFound, ProtocolError, Unavailable
from amofs.filesystem import AmoFS
from amofs.fuse_ops import Operations
from amofs.names import DEFAULT_LOCAL_PATTERNS

log = logging.getLogger(__name__)

FSNAME = "amofs"
READ_AHEAD_KB = 1024  # the kernel's default for FUSE is 128 KiB; downloads stream far better with more
READY = b"ready\n"


# --- the mount point --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mountpoint: str
    fstype: str
    major: int
    minor: int


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mounts() -> list[MountEntry]:
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            major, _, minor = fields[2].partition(":")
            out.append(MountEntry(_unescape(fields[4]), right.split()[0], int(major), int(minor)))
    return out


def find_mount(path: Path) -> MountEntry | None:
    """The topmost mount at exactly ``path``, or None."""
    found = [m for m in mounts() if m.mountpoint == str(path)]
    return found[-1] if found else None


def absolute(path: str | os.PathLike[str]) -> Path:
    """An absolute path with symlinks of its *parent* resolved, without touching the last component (which
    may be a dead FUSE mount that answers every stat with ENOTCONN)."""
    p = Path(os.path.abspath(path))
    return Path(os.path.realpath(p.parent)) / p.name if p.name else p


def check_mountpoint(path: str | os.PathLike[str]) -> Path:
    """The mount point as an absolute path, or UsageError saying in one line why it cannot be used."""
    p = absolute(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UsageError(f"mount point {p} does not exist (create it with: mkdir -p {p})") from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise _stale(p) from None
        raise UsageError(f"mount point {p}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"mount point {p} is not a directory")
    if find_mount(p) is not None:
        if _dead_connection(p):  # the kernel answered stat from its cache; statfs always asks the process
            raise _stale(p)
        raise UsageError(f"{p} is already mounted (unmount it first: amofs umount {p})")
    return p


def _stale(p: Path) -> UsageError:
    return UsageError(f"{p} is a stale FUSE mount (its process has ended); clear it with: fusermount3 -uz {p}")


def _dead_connection(p: Path) -> bool:
    try:
        os.statvfs(p)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


def check_fuse(device: str = "/dev/fuse") -> None:
    """UsageError in one line when this machine cannot mount FUSE filesystems at all."""
    if not os.path.exists(device):
        raise UsageError(
            f"FUSE is not available: {device} is missing (load the module: sudo modprobe fuse; in a container, "
            "run it with --device /dev/fuse --cap-add SYS_ADMIN)"
        )
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        raise UsageError("fusermount3 not found: install the fuse3 package (sudo apt-get install fuse3)")


def fuse_options(settings: Settings) -> set[str]:
    opts = {f"fsname={FSNAME}", f"subtype={FSNAME}", "default_permissions", "noatime"}
    if settings.allow_other:
        opts.add("allow_other")
    if settings.read_only:
        opts.add("ro")
    if settings.debug:
        opts.add("debug")
    return opts


def tune_read_ahead(path: Path, kb: int = READ_AHEAD_KB) -> None:
    """Raise the read-ahead of the mount's bdi (best effort: needs root or a writable sysfs)."""
    entry = find_mount(path)
    if entry is None:
        log.info("read-ahead not raised: %s is not in the mount table", path)
        return
    knob = Path(f"/sys/class/bdi/{entry.major}:{entry.minor}/read_ahead_kb")
    try:
        knob.write_text(f"{kb}\n")
    except OSError as e:
        log.info("read-ahead not raised (%s: %s)", knob, e.strerror)
    else:
        log.debug("read-ahead of %s set to %d KiB", path, kb)


# --- the pid file amofs umount waits on -------------------------------------------------------------------


def pidfile_path(mountpoint: Path) -> Path:
    digest = hashlib.sha256(os.fsencode(mountpoint)).hexdigest()[:16]
    return runtime_dir() / f"{digest}.pid"


def _write_pidfile(mountpoint: Path) -> Path | None:
    path = pidfile_path(mountpoint)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(f"{os.getpid()}\n{mountpoint}\n", encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        log.warning("cannot write the pid file %s (%s); amofs umount will not wait for uploads", path, e)
        return None
    return path


def _remove_pidfile(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def serving_pid(mountpoint: Path) -> int | None:
    """The pid of the amofs process serving ``mountpoint``, from its pid file (checked to still be amofs)."""
    try:
        pid_line, where = pidfile_path(mountpoint).read_text(errors="surrogateescape").splitlines()[:2]
        pid = int(pid_line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            alive_as_amofs = b"amofs" in f.read()
    except (OSError, ValueError):
        return None
    return pid if alive_as_amofs and where == str(mountpoint) else None


# --- serving ----------------------------------------------------------------------------------------------


def _auth(settings: Settings) -> TokenSource:
    if settings.has_oauth:
        assert settings.account_url and settings.client_id and settings.client_secret
        if not settings.redirect_uri:
            raise UsageError("OAuth refresh needs redirect_uri (the integration's redirect URL) in the profile")
        profile, path = settings.profile, settings.config_path

        def save(tokens: dict[str, Any]) -> None:
            # an answer without a refresh token leaves the saved one in place
            keep = {"token": tokens["access_token"]} | {k: v for k, v in tokens.items() if k == "refresh_token" and v}
            save_tokens(profile, keep, path=path)

        return OAuthTokens(
            settings.account_url,
            settings.client_id,
            settings.client_secret,
            settings.redirect_uri,
            settings.token or "",
            settings.refresh_token,
            save,
            shared=ProfileTokens(profile, path),  # other mounts of this profile spend the same refresh token
        )
    if settings.token:
        return StaticToken(settings.token)
    raise UsageError("no access token: give --token, set AMOFS_TOKEN, or put one in the config profile")


def _startup_failure(e: AmoError, settings: Settings) -> UsageError:
    """A start-up AmoError as one line that says what to check."""
    url = settings.account_url
    where = f"{e.method} {e.path}" if isinstance(e, ApiError) and e.method and e.path else "the service"
    status = f"HTTP {e.status}" if isinstance(e, ApiError) and e.status else type(e).__name__
    if isinstance(e, AuthError):
        cause = e.__cause__
        if isinstance(cause, AuthError) and cause.path == TOKEN_PATH:
            again = "amofs login" + (f" --profile {settings.profile}" if settings.profile else "")
            return UsageError(
                f"the refresh token was refused ({cause.method} {cause.path}: HTTP {cause.status}): it was revoked, "
                f"expired or already used; log in again: {again}"
            )
        return UsageError(
            f"the access token was refused ({where}: {status}); give a valid one with AMOFS_TOKEN, --token or "
            "the config file (or log in again)"
        )
    if isinstance(e, Blocked):
        return UsageError(
            f"{url} blocks this client ({where}: {status}): too many requests were made; the block stays until "
            "amoCRM's support lifts it (see docs/TROUBLESHOOTING.md)"
        )
    if isinstance(e, Forbidden):
        return UsageError(f"the token may not use the files API ({where}: {status}: {e.message})")
    if isinstance(e, NotFound | ProtocolError):
        return UsageError(f"{url} does not answer like an amoCRM account ({e}); check --account-url/--drive-url")
    if isinstance(e, Unavailable):
        on_drive = isinstance(e, ApiError) and (e.path or "").startswith("/v1.0") and settings.drive_url
        flag = "--drive-url" if on_drive else "--account-url"
        return UsageError(f"cannot reach {settings.drive_url if on_drive else url} ({e.message}); check {flag}")
    return UsageError(f"cannot start: {e}")


async def check_account(settings: Settings, auth: TokenSource) -> str:
    """One request that proves the URLs and the token before anything is mounted: the drive host's discovery
    (``GET /api/v4/account``), or with ``--drive-url`` the first page of the file list. Retries little, so a
    wrong URL fails in seconds. Returns the drive host's URL."""
    assert settings.account_url
    probe = AmoClient(settings.account_url, auth=auth, drive_url=settings.drive_url, rate=settings.rate, **_PROBE)
    try:
        with _quiet(logging.getLogger("amofs.api")):
            async with probe:
                drive = await probe.discover_drive_url()
                if settings.drive_url:
                    pages = probe.iter_files()
                    try:
                        async for _ in pages:
                            break
                    finally:
                        await cast("AsyncGenerator[object, None]", pages).aclose()
    except AmoError as e:
        raise _startup_failure(e, settings) from e
    log.debug("account %s, drive %s", settings.account_url, drive)
    return drive


_PROBE: dict[str, Any] = {"max_retries": 1, "timeout": 20.0}


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Keep a logger's retry warnings off the terminal while the failure itself becomes the one error line."""
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _watch_signals(signals: Any) -> None:
    first = True
    async for signum in signals:
        if first:
            log.info("%s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()
            first = False
        else:
            log.warning("still finishing uploads before exit; SIGKILL would lose what they carry")


async def serve(mountpoint: Path, settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Mount ``settings``' account at ``mountpoint`` and serve it until unmounted or signalled.

    ``ready`` is called once the kernel mount exists. Start-up failures raise UsageError (one line)."""
    assert settings.account_url, "load_settings/cli ensure an account URL"
    auth = _auth(settings)
    # A previous mount's index lets the first incremental sync (in fs.start) prove the URLs and the token,
    # so a remount makes ~2 requests before `ls` answers instead of a probe, the sync, and the listing.
    persisted = AmoFS.persisted(settings.cache_dir, settings.account_url)
    known_drive = settings.drive_url or (persisted or {}).get("drive_url")
    if persisted and persisted.get("files_complete") and known_drive:
        drive_url = str(known_drive)
    else:
        drive_url = await check_account(settings, auth)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            AmoClient(settings.account_url, auth=auth, drive_url=drive_url, rate=settings.rate)
        )
        patterns = DEFAULT_LOCAL_PATTERNS if settings.local_patterns is None else settings.local_patterns
        fs = AmoFS(
            client,
            cache_dir=settings.cache_dir,
            cache_ttl=settings.cache_ttl,
            local_patterns=patterns,
            poll_interval=settings.poll_interval,
        )
        fs.info.update(describe(mountpoint, settings, drive_url, fs.dirs.limit))
        try:
            with _quiet(logging.getLogger("amofs.api")):
                await fs.start(sync=True)
        except AmoError as e:
            raise _startup_failure(e, settings) from e

        # exits run bottom-up: unmount, then (signals still watched) wait for uploads, then stop the rest
        signals = stack.enter_context(trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(fs.run)
        watcher = trio.CancelScope()
        stack.callback(watcher.cancel)
        stack.push_async_callback(_close_fs, fs)

        uid, gid = settings.uid, settings.gid
        ops = Operations(
            fs,
            uid=os.getuid() if uid is None else uid,
            gid=os.getgid() if gid is None else gid,
            umask=_process_umask() if settings.umask is None else settings.umask,
        )
        try:
            pyfuse3.init(ops, str(mountpoint), fuse_options(settings))
        except RuntimeError as e:
            raise UsageError(f"cannot mount at {mountpoint} ({e}; see the message above)") from e
        stack.callback(_unmount_now, mountpoint)
        stack.callback(_remove_pidfile, _write_pidfile(mountpoint))

        async def watch() -> None:
            with watcher:
                await _watch_signals(signals)

        async def serving() -> None:
            # the kernel sets the bdi's read-ahead to the max_readahead agreed in INIT (128 KiB) when it
            # takes our answer (pyfuse3 sends it right after Operations.init): raising it earlier is undone
            with trio.move_on_after(30):
                await ops.initialized.wait()
            tune_read_ahead(mountpoint)
            log.info("mounted %s at %s", settings.account_url, mountpoint)
            if ready is not None:
                ready()
            elif sd_notify(f"READY=1\nSTATUS=mounted {settings.account_url} at {mountpoint}"):
                stack.callback(sd_notify, "STOPPING=1")  # LIFO: said first, before the unmount and the uploads

        nursery.start_soon(watch)
        nursery.start_soon(serving)
        await pyfuse3.main()
        log.info("unmounting %s", mountpoint)


def describe(mountpoint: Path, settings: Settings, drive_url: str, cache_limit: int) -> dict[str, Any]:
    """What the mount says about itself in ``.amofs/status`` besides the live counters (``amofs status``)."""
    return {
        "mountpoint": str(mountpoint),
        "profile": settings.profile,
        "drive": drive_url,
        "pid": os.getpid(),
        "version": __version__,
        "started_at": round(time.time(), 3),
        "rate_limit": settings.rate,
        "cache_dir": str(settings.cache_dir),
        "cache_limit_bytes": cache_limit,
        "cache_ttl": settings.cache_ttl,
        "poll_interval": settings.poll_interval,
        "read_only": settings.read_only,
        "log_file": str(settings.log_file) if settings.log_file else None,
    }


def sd_notify(state: str) -> bool:
    """Tell systemd (a ``Type=notify`` unit running ``amofs mount --foreground``) about the mount; False when
    not run by systemd. Best effort: a failure is logged, never raised."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), target)
    except OSError as e:
        log.info("cannot notify systemd (%s)", e.strerror)
        return False
    return True


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _unmount_now(mountpoint: Path) -> None:
    try:
        pyfuse3.close(unmount=True)
    except Exception:
        log.exception("unmounting %s failed", mountpoint)


async def _close_fs(fs: AmoFS) -> None:
    with trio.CancelScope(shield=True):
        await fs.close()
    log.debug("filesystem closed")


def run(mountpoint: Path, settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """``serve`` in a fresh trio run (blocking)."""
    trio.run(serve, mountpoint, settings, ready)


# --- daemon mode ------------------------------------------------------------------------------------------


def daemonize(child: Callable[[Callable[[], None]], int]) -> int:
    """Fork; the child runs ``child(ready)`` in a new session and never returns here; the parent returns 0
    once the child called ``ready()``, else the child's exit status (the child has printed its error line to
    the shared stderr). ``ready()`` detaches the child's stdin/stdout/stderr (use --log-file for logs)."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(r)
            os.setsid()
            os.chdir("/")
            code = child(lambda: _signal_ready(w))
        finally:
            os._exit(code)
    os.close(w)
    return _wait_ready(r, pid)


def _signal_ready(fd: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    os.close(null)
    os.write(fd, READY)
    os.close(fd)


def _wait_ready(fd: int, pid: int) -> int:
    try:
        with os.fdopen(fd, "rb") as f:
            said = f.read(len(READY))
        if said == READY:
            return 0
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code or 1
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        return 130


# --- amofs umount -----------------------------------------------------------------------------------------


def unmount(
    path: str | os.PathLike[str],
    *,
    wait: float = 3600.0,
    notice_after: float = 2.0,
    uploads_under_way: Callable[[Path], bool] = lambda p: False,
) -> None:
    """``fusermount3 -u`` an amofs mount, then wait until its process has finished (uploads included).
    ``uploads_under_way(mountpoint)`` (the CLI reads the mount's status) lets a mount kept busy by a writer
    still in ``close()`` be unmounted once that upload is done."""
    p = absolute(path)
    entry = find_mount(p)
    if entry is None:
        raise UsageError(f"{p} is not mounted")
    if entry.fstype != f"fuse.{FSNAME}":
        raise UsageError(f"{p} is not an amofs mount (it is {entry.fstype})")
    pid = serving_pid(p)
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:
        raise UsageError("fusermount3 not found (install the fuse3 package)")
    why = _fusermount_u(tool, p)
    if why is not None and "busy" in why.lower() and uploads_under_way(p):
        # a `cp` still in close(): its upload is what keeps the mount busy. Wait for the uploads, as this
        # command promises, then for the writer to let go of the file (a moment after its close returned)
        print("amofs: waiting for the uploads under way to finish before unmounting", file=sys.stderr, flush=True)
        deadline = time.monotonic() + wait
        idle_since: float | None = None
        for _ in _polls(deadline):
            if uploads_under_way(p):
                idle_since = None
                continue
            why = _fusermount_u(tool, p)
            if why is None or "busy" not in why.lower():
                break
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > BUSY_GRACE:
                break  # busy for another reason: a shell's cwd, an open file
    if why is not None:
        raise UsageError(f"cannot unmount {p}: {why}")
    if pid is not None:
        _wait_gone(pid, wait, notice_after)


BUSY_GRACE = 3.0  # seconds a mount may stay busy after its uploads ended before `amofs umount` gives up


def _fusermount_u(tool: str, p: Path) -> str | None:
    """``fusermount3 -u``; None when it worked, else its last line of error."""
    try:
        res = subprocess.run([tool, "-u", str(p)], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise UsageError(f"{tool} -u {p} did not finish in 120 s") from None
    if res.returncode == 0:
        return None
    return (res.stderr.strip().splitlines() or ["unknown error"])[-1]


def _wait_gone(pid: int, wait: float, notice_after: float) -> None:
    start = time.monotonic()
    noticed = False
    for _ in _polls(start + wait):
        if not _alive(pid):
            return
        if not noticed and time.monotonic() - start > notice_after:
            print(f"amofs: waiting for process {pid} to finish its uploads", file=sys.stderr, flush=True)
            noticed = True
    raise UsageError(f"unmounted, but process {pid} is still running after {wait:.0f} s")


def _polls(deadline: float) -> Iterator[None]:
    while time.monotonic() < deadline:
        yield
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"
