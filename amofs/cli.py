"""The command line: ``amofs mount | umount | login | emulator``.

Owns: argument parsing and help, logging set-up (levels, the log file, and a formatter that blanks every
secret), the ``--demo`` emulator (the only place outside the emulator package that imports it), and the
rule that every failure ends as one ``amofs: error: …`` line on stderr with a non-zero exit status, never a
traceback (``--debug`` logs the traceback of an unexpected error).

Exit status: 0 success, 1 an error, 2 bad usage (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from amofs import __version__
from amofs.config import Settings, UsageError, default_cache_dir, demo_data_dir, load_settings, replace
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
    "allow_other",
    "uid",
    "gid",
    "umask",
    "rate",
)

_MOUNT_EPILOG = """\
Settings come from, in this order: these flags, AMOFS_* environment variables (AMOFS_ACCOUNT_URL,
AMOFS_DRIVE_URL, AMOFS_TOKEN, AMOFS_PROFILE, AMOFS_CACHE_TTL, ...), the profile in
$XDG_CONFIG_HOME/amofs/config.toml, built-in defaults. See docs/CONFIGURATION.md.

Prefer AMOFS_TOKEN or the config file to --token: a command line is visible to every user in `ps`.

examples:
  amofs mount ~/amo --account-url https://example.amocrm.ru   # token from AMOFS_TOKEN or the config file
  amofs mount ~/amo --demo                                    # sample data from the built-in emulator
  amofs umount ~/amo
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amofs",
        description="Mount the files of an amoCRM account (its Files API) as a folder.",
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
    acc.add_argument("--account-url", metavar="URL", help="the account, e.g. https://example.amocrm.ru")
    acc.add_argument("--drive-url", metavar="URL", help="the files host (default: asked from the account at start)")
    acc.add_argument("--token", metavar="TOKEN", help="access token (prefer AMOFS_TOKEN: see below)")
    acc.add_argument("--profile", metavar="NAME", help="profile of the config file to use")
    acc.add_argument("--config", metavar="FILE", help="config file (default: ~/.config/amofs/config.toml)")
    acc.add_argument(
        "--demo",
        action="store_true",
        help="mount sample data served by the built-in emulator ($XDG_DATA_HOME/amofs/demo)",
    )
    run = m.add_argument_group("running")
    run.add_argument("-f", "--foreground", action="store_true", default=None, help="stay attached; unmount on Ctrl-C")
    run.add_argument("--cache-ttl", metavar="SECONDS", help="how long listings and attributes are trusted (60)")
    run.add_argument("--cache-dir", metavar="DIR", help="where content and unsent writes are kept")
    run.add_argument("--rate", metavar="N", help="most requests per second to the account (7)")
    run.add_argument("--debug", action="store_true", default=None, help="log everything (and FUSE requests)")
    run.add_argument("--log-file", metavar="FILE", help="log to FILE (the only log of a background mount)")
    own = m.add_argument_group("ownership")
    own.add_argument(
        "--allow-other",
        action="store_true",
        default=None,
        help="let other users use the mount (needs user_allow_other in /etc/fuse.conf)",
    )
    own.add_argument("--uid", metavar="N", help="owner shown for every file (default: you)")
    own.add_argument("--gid", metavar="N", help="group shown for every file (default: yours)")
    own.add_argument("--umask", metavar="MASK", help="permission bits removed, octal (default: your umask)")

    u = sub.add_parser(
        "umount",
        help="unmount, waiting until pending uploads are done",
        description="Unmount an amofs mount and wait until its process has finished pending uploads.",
    )
    u.add_argument("mountpoint", metavar="MOUNTPOINT")

    lg = sub.add_parser(
        "login",
        help="trade an OAuth authorization code for tokens and save them",
        description="Exchange an authorization code of your integration for an access and a refresh token "
        "and store them in the config profile (which must hold client_id, client_secret and redirect_uri).",
    )
    lg.add_argument("--code", required=True, help="the authorization code (valid 20 minutes)")
    lg.add_argument("--profile", metavar="NAME", help="profile to use and update")
    lg.add_argument("--config", metavar="FILE", help="config file (default: ~/.config/amofs/config.toml)")
    lg.add_argument("--account-url", metavar="URL", help="the account, e.g. https://example.amocrm.ru")

    sub.add_parser(
        "emulator",
        help="run the built-in Files API emulator (amofs emulator --help)",
        add_help=False,
    )
    return parser


# --- logging ------------------------------------------------------------------------------------------------


class RedactingFormatter(logging.Formatter):
    """A formatter that replaces every known secret in the finished text, tracebacks included."""

    def __init__(self, fmt: str, secrets: Sequence[str], *, lower_level: bool = False) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if s]
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
    """stderr gets warnings (everything with --debug); the log file gets info (everything with --debug).
    httpx/httpcore stay at WARNING: their request lines carry signed download URLs."""
    debug = bool(settings and settings.debug)
    secrets = settings.secrets() if settings else ()
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.DEBUG if debug else logging.WARNING)
    err.setFormatter(RedactingFormatter("amofs: %(levelname)s: %(message)s", secrets, lower_level=True))
    err.addFilter(lambda record: not getattr(record, "file_only", False))  # the error line is printed already
    root.addHandler(err)
    if settings and settings.log_file:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(settings.log_file, encoding="utf-8")
        fh.setLevel(logging.DEBUG if debug else logging.INFO)
        fh.setFormatter(RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s", secrets))
        root.addHandler(fh)
    for noisy in ("httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
            if s:
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


def _cmd_mount(args: argparse.Namespace) -> int:
    from amofs import mount

    flags = {k: getattr(args, k, None) for k in SETTING_FLAGS}
    if args.demo:
        clash = [f"--{k.replace('_', '-')}" for k in ("account_url", "drive_url", "token") if flags[k]]
        if clash:
            raise UsageError(f"--demo cannot be combined with {', '.join(clash)}")
    settings = load_settings(flags)
    if args.demo:
        settings = replace(
            settings,
            account_url="http://127.0.0.1",  # replaced by the emulator's once it runs
            drive_url=None,
            token=None,
            client_id=None,
            client_secret=None,
            refresh_token=None,
            cache_dir=settings.cache_dir if args.cache_dir else default_cache_dir("demo", None),
        )
    setup_logging(settings)
    if settings.token_on_command_line:
        log.warning("--token is visible to other users in `ps`; prefer AMOFS_TOKEN or the config file")
    if not settings.account_url:
        raise UsageError(
            "no account URL: give --account-url, set AMOFS_ACCOUNT_URL, or set account_url in the config file"
        )
    mountpoint = mount.check_mountpoint(args.mountpoint)
    demo: bool = args.demo

    def serve(ready: Callable[[], None] | None) -> int:
        if demo:
            with demo_emulator() as emu:
                demo_settings = replace(settings, account_url=emu.account_url, drive_url=emu.drive_url, token=emu.token)
                setup_logging(demo_settings)
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
    from amofs import mount

    setup_logging(None)
    mount.unmount(args.mountpoint)
    return 0


def _cmd_login(args: argparse.Namespace) -> int:
    import trio

    from amofs.api.auth import exchange_code
    from amofs.config import save_tokens

    setup_logging(None)
    s = load_settings({"profile": args.profile, "config": args.config, "account_url": args.account_url})
    missing = [k for k in ("account_url", "client_id", "client_secret", "redirect_uri") if not getattr(s, k)]
    if missing:
        raise UsageError(f"login needs {', '.join(missing)} in the config profile ({s.config_path})")
    assert s.account_url and s.client_id and s.client_secret and s.redirect_uri
    account, cid, secret, redirect = s.account_url, s.client_id, s.client_secret, s.redirect_uri
    tokens = trio.run(lambda: exchange_code(account, cid, secret, redirect, args.code))
    new = {"token": tokens["access_token"]} | (
        {"refresh_token": tokens["refresh_token"]} if "refresh_token" in tokens else {}
    )
    path = save_tokens(s.profile, new, path=s.config_path)
    print(f"amofs: tokens saved to {path}" + (f" (profile {s.profile})" if s.profile else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from amofs.emulator.server import main as emulator_main

        return guarded(lambda: emulator_main(args_list[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(args_list)
    command: Callable[[argparse.Namespace], int] = {
        "mount": _cmd_mount,
        "umount": _cmd_umount,
        "login": _cmd_login,
    }[args.command]
    token = getattr(args, "token", None)
    return guarded(lambda: command(args), [token] if token else [])


if __name__ == "__main__":
    raise SystemExit(main())
