"""The command line: ``amofs mount | umount | status | login | emulator``, and ``mount.fuse.amofs``.

Owns: argument parsing and help, logging set-up (levels, the log file, and a formatter that blanks every
secret), the ``--demo`` emulator (the only place outside the emulator package that imports it), the mount
helper that mount(8) and /etc/fstab run (``mount_helper``: ``SOURCE MOUNTPOINT -o OPTIONS`` → ``amofs mount``),
and the rule that every failure ends as one ``amofs: error: …`` line on stderr with a non-zero exit status,
never a traceback (``--debug`` logs the traceback of an unexpected error).

Exit status: 0 success, 1 an error, 2 bad usage (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from amofs import __version__
from amofs.config import (
    Settings,
    UsageError,
    default_cache_dir,
    demo_data_dir,
    load_settings,
    parse_mount_options,
    replace,
)
from amofs.errors import AmoError

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

log = logging.getLogger("amofs")

SETTING_FLAGS = (
    "account_url",
    "drive_url",
    "token",
    "profile",
    "config",
    "foreground",
    "cache_ttl",
    "cache_dir",
    "debug",
    "log_file",
    "log_level",
    "read_only",
    "poll_interval",
    "allow_other",
    "uid",
    "gid",
    "umask",
    "rate",
)

_MOUNT_EPILOG = """\
Settings come from, in this order: these flags (and -o options), AMOFS_* environment variables
(AMOFS_ACCOUNT_URL, AMOFS_TOKEN, AMOFS_PROFILE, AMOFS_CACHE_TTL, ...), the profile in
$XDG_CONFIG_HOME/amofs/config.toml, built-in defaults. See docs/CONFIGURATION.md.

Prefer `amofs login`, AMOFS_TOKEN or the config file to --token: a command line is visible to every user
in `ps`.

examples:
  amofs mount ~/amo --profile work          # a profile saved by `amofs login --profile work`
  amofs mount ~/amo --demo                  # sample data from the built-in emulator
  amofs mount ~/amo -o ro,cache_ttl=300     # options as in /etc/fstab
  amofs status ~/amo
  amofs umount ~/amo
"""

_LOGIN_EPILOG = """\
OAuth (an amoCRM integration): amofs prints the address to open; after you allow access, amoCRM sends your
browser to the integration's redirect URI with a code. With a redirect URI of http://127.0.0.1:PORT/...
or http://localhost:PORT/... amofs catches the code itself; otherwise paste the code (a private
integration shows it in its window) or the whole address the browser was sent to. The client secret is
read from the profile or AMOFS_CLIENT_SECRET, or asked for.

examples:
  amofs login --profile work --account-url https://example.amocrm.ru \\
              --client-id 0b1c... --redirect-uri http://127.0.0.1:8765/
  amofs login --profile work --account-url https://example.amocrm.ru --long-lived < token.txt
"""

_STATUS_EPILOG = """\
Reads MOUNT/.amofs/status, a JSON snapshot that the mount serves. The time left for an upload is the best
case at the API's rate limit (requests per second x part size). With MOUNTPOINT, --json prints one object;
without, a list with one object per mount. Exit status 1 when a mount's status cannot be read.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amofs",
        description="Mount the files of an amoCRM account (its Files API) as a folder.",
        epilog="Run `amofs COMMAND --help` for a command's options. Docs: README.md, docs/CONFIGURATION.md, "
        "docs/TROUBLESHOOTING.md.",
    )
    parser.add_argument("--version", action="version", version=f"amofs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    m = sub.add_parser(
        "mount",
        help="mount an account at MOUNTPOINT",
        description="Mount an amoCRM account's files at MOUNTPOINT. Without --foreground the command\n"
        "returns once the mount is ready and the filesystem keeps running in the background.",
        epilog=_MOUNT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing directory")
    acc = m.add_argument_group("account")
    acc.add_argument("--profile", metavar="NAME", help="profile of the config file to use (default: its default)")
    acc.add_argument("--config", metavar="FILE", help="config file (default: ~/.config/amofs/config.toml)")
    acc.add_argument("--account-url", metavar="URL", help="the account, e.g. https://example.amocrm.ru")
    acc.add_argument("--drive-url", metavar="URL", help="the files host (default: asked from the account at start)")
    acc.add_argument("--token", metavar="TOKEN", help="access token (prefer amofs login or AMOFS_TOKEN: see below)")
    acc.add_argument(
        "--demo",
        action="store_true",
        help="mount sample data served by the built-in emulator ($XDG_DATA_HOME/amofs/demo)",
    )
    run = m.add_argument_group("running")
    run.add_argument("-f", "--foreground", action="store_true", default=None, help="stay attached; unmount on Ctrl-C")
    run.add_argument("--cache-ttl", metavar="SECONDS", help="how long listings and attributes are trusted (60)")
    run.add_argument("--cache-dir", metavar="DIR", help="where content, unsent writes and failed uploads are kept")
    run.add_argument(
        "--poll-interval", metavar="SECONDS", help="check the account for changes this often (0 = only on expiry)"
    )
    run.add_argument("--rate", metavar="N", help="most requests per second to the account (7)")
    run.add_argument("--read-only", action="store_true", default=None, help="refuse every change (EROFS)")
    logs = m.add_argument_group("logging")
    logs.add_argument("--log-file", metavar="FILE", help="log to FILE (the only log of a background mount)")
    logs.add_argument(
        "--log-level", metavar="LEVEL", help="debug, info, warning or error: what the log file gets (info)"
    )
    logs.add_argument("--debug", action="store_true", default=None, help="log everything (and FUSE requests)")
    own = m.add_argument_group("access")
    own.add_argument(
        "--allow-other",
        action="store_true",
        default=None,
        help="let other users use the mount (needs user_allow_other in /etc/fuse.conf)",
    )
    own.add_argument("--uid", metavar="N", help="owner shown for every file (default: you)")
    own.add_argument("--gid", metavar="N", help="group shown for every file (default: yours)")
    own.add_argument("--umask", metavar="MASK", help="permission bits removed, octal (default: your umask)")
    own.add_argument(
        "-o",
        dest="options",
        metavar="OPTIONS",
        action="append",
        help="comma-separated options as in /etc/fstab: ro, allow_other, uid=N, cache_ttl=S, demo, ...",
    )

    u = sub.add_parser(
        "umount",
        help="unmount, waiting until pending uploads are done",
        description="Unmount an amofs mount and wait until its process has finished pending uploads.",
    )
    u.add_argument("mountpoint", metavar="MOUNTPOINT")

    st = sub.add_parser(
        "status",
        help="show what mounts are doing: cache, requests, uploads in progress, failed uploads",
        description="Show the state of one amofs mount, or of every amofs mount on this machine.",
        epilog=_STATUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    st.add_argument("mountpoint", metavar="MOUNTPOINT", nargs="?", help="an amofs mount (default: all of them)")
    st.add_argument("--json", action="store_true", help="print JSON for scripts")
    st.add_argument(
        "--watch",
        metavar="SECONDS",
        nargs="?",
        const=1.0,
        type=float,
        help="redraw every SECONDS (1) until Ctrl-C",
    )

    lg = sub.add_parser(
        "login",
        help="log in to an account (OAuth or a long-lived token) and save it in a profile",
        description="Get tokens for an account and save them, with the account and the integration's\n"
        "details, in a profile of the config file (mode 0600).",
        epilog=_LOGIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lg.add_argument("--profile", metavar="NAME", help="profile to create or update (default: the file's default)")
    lg.add_argument("--config", metavar="FILE", help="config file (default: ~/.config/amofs/config.toml)")
    lg.add_argument("--account-url", metavar="URL", help="the account, e.g. https://example.amocrm.ru")
    lg.add_argument("--client-id", metavar="ID", help="the integration ID")
    lg.add_argument("--redirect-uri", metavar="URL", help="the integration's redirect URI")
    lg.add_argument("--code", metavar="CODE", help="an authorization code you already have (valid 20 minutes)")
    lg.add_argument(
        "--long-lived", action="store_true", help="save a long-lived token instead (pasted, or piped on stdin)"
    )
    lg.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=600.0, help="how long to wait for the code (600)"
    )

    sub.add_parser(
        "emulator",
        help="run the built-in Files API emulator (amofs emulator --help)",
        add_help=False,
    )
    return parser


# --- logging ------------------------------------------------------------------------------------------------


#: shorter values are not blanked: no real token is that short, and blanking "x" would garble every line
MIN_SECRET = 6


class RedactingFormatter(logging.Formatter):
    """A formatter that replaces every known secret in the finished text, tracebacks included."""

    def __init__(self, fmt: str, secrets: Sequence[str], *, lower_level: bool = False) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if len(s) >= MIN_SECRET]
        self.lower_level = lower_level

    def formatMessage(self, record: logging.LogRecord) -> str:
        if self.lower_level:
            record = logging.makeLogRecord({**record.__dict__, "levelname": record.levelname.lower()})
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for s in self.secrets:
            text = text.replace(s, "***")
        return text


def setup_logging(settings: Settings | None) -> None:
    """The log file gets ``--log-level`` (info) and up; stderr gets warnings, or ``--log-level`` when a
    foreground mount has no log file (the terminal is then the log). ``--debug`` logs everything everywhere.
    httpx/httpcore stay at WARNING: their request lines carry signed download URLs."""
    debug = bool(settings and settings.debug)
    level = logging.DEBUG if debug else _LEVELS[settings.log_level if settings else "info"]
    secrets = settings.secrets() if settings else ()
    terminal = logging.WARNING
    if debug or (settings and settings.foreground and not settings.log_file):
        terminal = min(level, logging.WARNING)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(terminal)
    err.setFormatter(RedactingFormatter("amofs: %(levelname)s: %(message)s", secrets, lower_level=True))
    err.addFilter(lambda record: not getattr(record, "file_only", False))  # the error line is printed already
    root.addHandler(err)
    lowest = terminal
    if settings and settings.log_file:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(settings.log_file, encoding="utf-8")
        fh.setLevel(level)
        fh.setFormatter(RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s", secrets))
        root.addHandler(fh)
        lowest = min(lowest, level)
    root.setLevel(min(lowest, logging.ERROR))  # the error line always reaches the log file
    for noisy in ("httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


# --- errors as one line -------------------------------------------------------------------------------------


def _one_line(e: BaseException) -> str:
    if isinstance(e, UsageError | AmoError):
        text = str(e)
    elif isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        text = f"{where}{e.strerror or e}"
    else:
        text = f"unexpected {type(e).__name__}: {e} (run with --debug for details)"
    return " ".join(text.split())


def guarded(fn: Callable[[], int], secrets: Sequence[str] = ()) -> int:
    """Run ``fn``; turn any failure into one ``amofs: error:`` line and an exit status."""
    try:
        return fn()
    except KeyboardInterrupt:
        print("amofs: interrupted", file=sys.stderr)
        return 130
    except BaseException as e:  # the one place that must catch everything
        if isinstance(e, SystemExit):
            raise
        leaf = _leaf(e)
        if not isinstance(leaf, UsageError | AmoError | OSError):
            log.debug("unexpected error", exc_info=leaf)
        line = _one_line(leaf)
        for s in secrets:
            if len(s) >= MIN_SECRET:
                line = line.replace(s, "***")
        print(f"amofs: error: {line}", file=sys.stderr, flush=True)
        log.error("%s", line, extra={"file_only": True})  # a background mount's stderr is /dev/null
        return 130 if isinstance(leaf, KeyboardInterrupt) else 1


def _leaf(e: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, which trio's nurseries raise."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


# --- commands -----------------------------------------------------------------------------------------------


def _mount_flags(args: argparse.Namespace) -> tuple[dict[str, object], bool]:
    """The settings given on the command line, ``-o`` options merged in, and whether ``--demo`` is on."""
    flags: dict[str, object] = {k: getattr(args, k, None) for k in SETTING_FLAGS}
    demo = bool(args.demo)
    for text in args.options or ():
        opts = parse_mount_options(text)
        if opts.setuid is not None:
            raise UsageError("mount option setuid=USER is for mount(8) run as root (/etc/fstab), not amofs mount")
        for key, value in opts.flags.items():
            if flags.get(key) is not None and flags[key] != value:
                raise UsageError(f"--{key.replace('_', '-')} and -o {key} disagree; give one")
            flags[key] = value
        demo = demo or opts.demo
        if opts.ignored:
            log.debug("mount options without meaning for amofs, ignored: %s", ",".join(opts.ignored))
    return flags, demo


def _cmd_mount(args: argparse.Namespace) -> int:
    from amofs import mount

    flags, demo = _mount_flags(args)
    if demo:
        clash = [f"--{k.replace('_', '-')}" for k in ("account_url", "drive_url", "token") if flags[k]]
        if clash:
            raise UsageError(f"--demo cannot be combined with {', '.join(clash)}")
    settings = load_settings(flags)
    if demo:
        settings = replace(
            settings,
            account_url="http://127.0.0.1",  # replaced by the emulator's once it runs
            drive_url=None,
            token=None,
            client_id=None,
            client_secret=None,
            refresh_token=None,
            profile=None,
            cache_dir=settings.cache_dir if flags["cache_dir"] else default_cache_dir("demo", None),
        )
    setup_logging(settings)
    if settings.token_on_command_line:
        log.warning("--token is visible to other users in `ps`; prefer AMOFS_TOKEN or the config file")
    if not settings.account_url:
        raise UsageError(
            "no account URL: give --account-url, set AMOFS_ACCOUNT_URL, or log in first (amofs login --profile NAME)"
        )
    mount.check_fuse()
    mountpoint = mount.check_mountpoint(args.mountpoint)

    def serve(ready: Callable[[], None] | None) -> int:
        if demo:
            with demo_emulator() as emu:
                demo_settings = replace(
                    settings, account_url=emu.account_url, drive_url=emu.drive_url, token=emu.token, profile="demo"
                )
                setup_logging(demo_settings)
                if not demo_settings.debug:  # the emulator's line per request would double the log
                    logging.getLogger("amofs.emulator").setLevel(logging.WARNING)
                mount.run(mountpoint, demo_settings, ready)
        else:
            mount.run(mountpoint, settings, ready)
        return 0

    if settings.foreground:
        return guarded(lambda: serve(None), settings.secrets())
    return mount.daemonize(lambda ready: guarded(lambda: serve(ready), settings.secrets()))


@contextlib.contextmanager
def demo_emulator() -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 with the demo data dir, seeded with sample files while it is empty."""
    from amofs.emulator.server import Emulator, EmulatorOptions

    data = demo_data_dir()
    data.mkdir(parents=True, exist_ok=True)
    emu = Emulator(data, EmulatorOptions(), "127.0.0.1", port=0, drive_port=0)
    try:
        state = emu.state()
        if state["files"] + state["trashed"] + state["entities"] == 0:
            from amofs.emulator.demo import seed_demo

            log.info("seeding demo data in %s", data)
            seed_demo(emu)
        emu.start()
        yield emu
    finally:
        emu.stop()


def _cmd_umount(args: argparse.Namespace) -> int:
    from amofs import mount, status

    setup_logging(None)
    mount.unmount(args.mountpoint, uploads_under_way=lambda p: status.uploads_under_way(str(p)))
    return 0


def _cmd_login(args: argparse.Namespace) -> int:
    import trio

    from amofs import login, mount
    from amofs.api.auth import StaticToken

    setup_logging(None)

    def check(s: Settings) -> str:
        assert s.token
        return trio.run(mount.check_account, s, StaticToken(s.token))

    return login.run_login(args, check=check)


def _cmd_status(args: argparse.Namespace) -> int:
    import json
    import time

    from amofs import status

    setup_logging(None)
    if args.mountpoint is not None:
        try:
            points = [status.resolve(args.mountpoint)]
        except status.StatusError as e:
            raise UsageError(str(e)) from None
    else:
        points = status.amofs_mountpoints()

    def sample(previous: list[status.Report] | None) -> list[status.Report]:
        reports = status.collect(points)
        if previous is not None:
            status.measure_rates(previous, reports)
        elif any(r.status and r.status.get("uploads_in_flight") for r in reports):
            time.sleep(1.0)  # a second look, for the uploads' rates
            first, reports = reports, status.collect(points)
            status.measure_rates(first, reports)
        return reports

    def show(reports: list[status.Report]) -> None:
        if args.json:
            data = [status.enrich(r) for r in reports]
            print(json.dumps(data[0] if args.mountpoint is not None else data, indent=2, ensure_ascii=False))
        elif not reports:
            print("amofs: no amofs mounts")
        else:
            print("\n".join(status.render(r) for r in reports), end="", flush=True)

    reports = sample(None)
    if args.watch is None:
        show(reports)
        return 1 if any(r.error for r in reports) else 0
    try:
        while True:
            if not args.json and sys.stdout.isatty():  # into a pipe or a file: one report after another
                print("\033[H\033[2J", end="")
            show(reports)
            time.sleep(max(args.watch, 0.2))
            reports = sample(reports)
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from amofs.emulator.server import main as emulator_main

        return guarded(lambda: emulator_main(args_list[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(args_list)
    setup_logging(None)  # until a command knows its settings: the error line must not be printed twice
    command: Callable[[argparse.Namespace], int] = {
        "mount": _cmd_mount,
        "umount": _cmd_umount,
        "status": _cmd_status,
        "login": _cmd_login,
    }[args.command]
    token = getattr(args, "token", None)
    return guarded(lambda: command(args), [token] if token else [])


# --- mount(8) and /etc/fstab ---------------------------------------------------------------------------------

HELPER_USAGE = "usage: mount.fuse.amofs PROFILE MOUNTPOINT [-o OPTIONS] (run by mount -t fuse.amofs)"
#: a SOURCE that means "the config file's default profile" (fstab's first field cannot be empty)
DEFAULT_SOURCES = frozenset({"amofs", "default-profile", "-", "none"})


def helper_args(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """mount(8)'s call ``SOURCE MOUNTPOINT [-sfnv] [-o OPTS] [-t TYPE] [-N NS]`` as ``amofs mount`` arguments,
    plus the user named by ``setuid=`` (taken out of the options). ``-f`` (fake) gives an empty list."""
    positional: list[str] = []
    options: list[str] = []
    fake = sloppy = False
    it = iter(argv)
    for arg in it:
        if arg in ("-o", "-t", "-N"):
            value = next(it, None)
            if value is None:
                raise UsageError(f"{arg} needs a value; {HELPER_USAGE}")
            if arg == "-o":
                options.append(value)
            elif arg == "-N":
                raise UsageError("mount -N (another mount namespace) is not supported")
        elif arg.startswith("-o") and len(arg) > 2:
            options.append(arg[2:])
        elif arg.startswith("-") and len(arg) > 1 and set(arg[1:]) <= set("sfnvrw"):
            fake = fake or "f" in arg
            sloppy = sloppy or "s" in arg
        elif arg.startswith("-") and len(arg) > 1:
            raise UsageError(f"unknown argument {arg!r}; {HELPER_USAGE}")
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise UsageError(HELPER_USAGE)
    source, mountpoint = positional
    kept: list[str] = []
    setuid: str | None = None
    for text in options:
        for item in (o.strip() for o in text.split(",")):
            if item.startswith("setuid="):
                setuid = item.partition("=")[2]
            elif item:
                if sloppy:
                    try:
                        parse_mount_options(item)
                    except UsageError:
                        continue
                kept.append(item)
    out = ["mount", mountpoint]
    if source not in DEFAULT_SOURCES:
        out += ["--profile", source]
    if kept:
        out += ["-o", ",".join(kept)]
    return ([] if fake else out), setuid


def _become(user: str) -> None:
    """Run as ``user`` from here on (mount(8) as root with ``setuid=USER``), in that user's environment."""
    import pwd

    try:
        pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        raise UsageError(f"setuid={user}: no such user") from None
    if os.geteuid() == pw.pw_uid:
        return
    if os.geteuid() != 0:
        raise UsageError(f"setuid={user} needs root")
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TZ")}
    os.environ.clear()
    os.environ.update(keep, HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name, PATH=_SAFE_PATH)
    stdlib = os.path.dirname(os.__file__)
    if not os.access(stdlib, os.R_OK | os.X_OK):
        raise UsageError(
            f"setuid={user}: {pw.pw_name} cannot read this Python ({stdlib}); install amofs where that user can"
        )
    runtime = f"/run/user/{pw.pw_uid}"
    if os.path.isdir(runtime):
        os.environ["XDG_RUNTIME_DIR"] = runtime
    try:
        os.chdir(pw.pw_dir)
    except OSError:
        os.chdir("/")


_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def mount_helper(argv: Sequence[str] | None = None) -> int:
    """``mount.fuse.amofs``: what mount(8) runs for ``mount -t fuse.amofs PROFILE DIR`` and fstab lines of
    type ``fuse.amofs``. Mounts in the background and returns once the mount is ready, as mount(8) expects."""
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("PATH", _SAFE_PATH)  # mount(8) runs helpers without one
    if args[:1] in (["-h"], ["--help"]):
        print(HELPER_USAGE + "\nSee docs/CONFIGURATION.md, section 'mount(8) and /etc/fstab'.")
        return 0

    setup_logging(None)

    def prepare() -> int:
        mount_args, setuid = helper_args(args)
        if setuid:
            _become(setuid)
        return main(mount_args) if mount_args else 0

    return guarded(prepare)


if __name__ == "__main__":
    raise SystemExit(main())
