"""Settings: what one mount runs with, and where each value came from.

Owns: the ``Settings`` dataclass, the precedence rule (command-line flags > ``AMOFS_*`` environment >
the chosen profile of ``config.toml`` > built-in defaults), the config file's location
(``$XDG_CONFIG_HOME/amofs/config.toml``, ``AMOFS_CONFIG`` or ``--config`` to override), the default cache and
runtime folders, and ``save_tokens``, the only writer of the config file (atomic: a 0600 temp file beside it,
then ``os.replace``).

Must not: print or log a token, a refresh token or a client secret (they are kept out of ``repr``), do any
network I/O, or import anything from amofs except ``amofs.errors``. Config problems raise ``UsageError``, a
plain exception (not an ``AmoError``: it never reaches the kernel) that the command line prints as one line.

The config file::

    default = "work"                      # the profile used when neither --profile nor AMOFS_PROFILE is set

    [profiles.work]
    account_url = "https://example.amocrm.ru"
    token = "..."                         # a long-lived token, or the OAuth fields below
    cache_ttl = 30
    [profiles.demo]
    account_url = "http://127.0.0.1:8080"
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import math
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

ENV_PREFIX = "AMOFS_"


class UsageError(Exception):
    """A setting, a flag or a mount point the user has to fix; shown as one line, never as a traceback."""


@dataclass(frozen=True)
class Settings:
    """Everything one ``amofs mount`` runs with. Secrets are excluded from ``repr``."""

    account_url: str | None = None
    drive_url: str | None = None
    token: str | None = field(default=None, repr=False)
    profile: str | None = None
    cache_ttl: float = 60.0
    cache_dir: Path = field(default_factory=lambda: default_cache_dir(None, None))
    foreground: bool = False
    debug: bool = False
    log_file: Path | None = None
    log_level: str = "info"  # the log file's threshold (and a foreground terminal's without --log-file)
    read_only: bool = False  # mounted read-only: the kernel refuses every change with EROFS
    allow_other: bool = False
    uid: int | None = None  # None: the mounting user's
    gid: int | None = None
    umask: int | None = None  # None: the mounting process's umask
    rate: float = 7.0  # requests per second, both hosts together
    poll_interval: float = 0.0  # seconds between checks for remote changes; 0 = only on cache expiry
    local_patterns: tuple[str, ...] | None = None  # None: amofs.names.DEFAULT_LOCAL_PATTERNS
    # OAuth: with these the access token is refreshed and the new pair saved to the config file
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    redirect_uri: str | None = None
    refresh_token: str | None = field(default=None, repr=False)
    # where the values came from (not settings themselves)
    config_path: Path | None = field(default=None, compare=False)
    token_on_command_line: bool = field(default=False, compare=False)

    def secrets(self) -> tuple[str, ...]:
        """The values a log line must never show."""
        return tuple(s for s in (self.token, self.refresh_token, self.client_secret) if s)

    @property
    def has_oauth(self) -> bool:
        return bool(self.refresh_token and self.client_id and self.client_secret)


# --- parsing of single values (flags and env give strings, TOML gives typed values) -----------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _as_bool(v: object, what: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise UsageError(f"{what} must be true or false, not {v!r}")


def _as_float(v: object, what: str, *, positive: bool = False) -> float:
    try:
        if isinstance(v, bool):
            raise ValueError
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number, not {v!r}") from None
    if not math.isfinite(f) or f < 0 or (positive and f == 0):
        raise UsageError(f"{what} must be a {'positive' if positive else 'non-negative'} number, not {v!r}")
    return f


def _as_id(v: object, what: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif isinstance(v, str) and v.strip().isdigit():
        n = int(v.strip())
    else:
        raise UsageError(f"{what} must be a non-negative integer, not {v!r}")
    if not 0 <= n < 2**32:
        raise UsageError(f"{what} is out of range: {v!r}")
    return n


def _as_umask(v: object, what: str) -> int:
    """An octal string ("022", "0o022") or, from TOML, an integer (write it as 0o022)."""
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif isinstance(v, str) and re.fullmatch(r"(0o)?[0-7]{1,4}", v.strip()):
        n = int(v.strip().removeprefix("0o"), 8)
    else:
        raise UsageError(f"{what} must be an octal mask such as 022, not {v!r}")
    if not 0 <= n <= 0o777:
        raise UsageError(f"{what} must be between 000 and 777 (octal), not {v!r}")
    return n


def _as_str(v: object, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise UsageError(f"{what} must be a non-empty string")
    return v


def _as_url(v: object, what: str) -> str:
    s = _as_str(v, what).strip()
    parts = urlsplit(s)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what} must be an http(s) URL such as https://example.amocrm.ru, not {s!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"{what} has a bad port: {s!r}") from None
    if parts.query or parts.fragment:
        raise UsageError(f"{what} must not have a query or fragment: {s!r}")
    return s.rstrip("/")


LOG_LEVELS = ("debug", "info", "warning", "error")


def _as_level(v: object, what: str) -> str:
    s = _as_str(v, what).strip().lower()
    if s not in LOG_LEVELS:
        raise UsageError(f"{what} must be one of {', '.join(LOG_LEVELS)}, not {v!r}")
    return s


def _as_redirect(v: object, what: str) -> str:
    """An OAuth redirect URI: checked like a URL but kept exactly as given (amoCRM compares it verbatim)."""
    _as_url(v, what)
    return _as_str(v, what).strip()


def _as_path(v: object, what: str) -> Path:
    return Path(os.path.expanduser(_as_str(v, what))).absolute()


def _as_patterns(v: object, what: str) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [p for p in v.split(",") if p]
    if not isinstance(v, list | tuple) or not all(isinstance(p, str) and p and "/" not in p for p in v):
        raise UsageError(f"{what} must be a list of file name patterns (no '/')")
    return tuple(v)


_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "account_url": _as_url,
    "drive_url": _as_url,
    "token": _as_str,
    "profile": _as_str,
    "cache_ttl": _as_float,
    "cache_dir": _as_path,
    "foreground": _as_bool,
    "debug": _as_bool,
    "log_file": _as_path,
    "log_level": _as_level,
    "read_only": _as_bool,
    "allow_other": _as_bool,
    "uid": _as_id,
    "gid": _as_id,
    "umask": _as_umask,
    "rate": lambda v, what: _as_float(v, what, positive=True),
    "poll_interval": _as_float,
    "local_patterns": _as_patterns,
    "client_id": _as_str,
    "client_secret": _as_str,
    "redirect_uri": _as_redirect,
    "refresh_token": _as_str,
}


def parse_setting(key: str, value: object, what: str) -> Any:
    """One setting's value checked and converted as a flag's would be (UsageError naming ``what``)."""
    return _PARSERS[key](value, what)


#: keys a profile may also hold without being settings (written by save_tokens)
_EXTRA_PROFILE_KEYS = frozenset({"expires_at"})
_SECRET_KEYS = frozenset({"token", "client_secret", "refresh_token"})


# --- locations -------------------------------------------------------------------------------------------


def _xdg(var: str, fallback: str, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    value = env.get(var, "")
    # the XDG spec: a relative value is invalid and must be ignored
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("AMOFS_CONFIG"):
        return Path(os.path.expanduser(env["AMOFS_CONFIG"])).absolute()
    return _xdg("XDG_CONFIG_HOME", ".config", env) / "amofs" / "config.toml"


def default_cache_dir(profile: str | None, account_url: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/amofs/<profile, else the account's host, else "default">``."""
    label = profile or (urlsplit(account_url).hostname if account_url else None) or "default"
    label = re.sub(r"[^A-Za-z0-9._-]", "_", label).lstrip(".") or "default"
    return _xdg("XDG_CACHE_HOME", ".cache", env) / "amofs" / label


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where a running mount leaves its pid file: ``$XDG_RUNTIME_DIR/amofs``, else under the cache home."""
    env = os.environ if env is None else env
    run = env.get("XDG_RUNTIME_DIR", "")
    if run and os.path.isabs(run) and os.path.isdir(run):
        return Path(run) / "amofs"
    return _xdg("XDG_CACHE_HOME", ".cache", env) / "amofs" / "run"


def demo_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The emulator's data for ``amofs mount --demo``: ``$XDG_DATA_HOME/amofs/demo``."""
    return _xdg("XDG_DATA_HOME", ".local/share", env) / "amofs" / "demo"


# --- the config file -------------------------------------------------------------------------------------


def read_config(path: Path) -> dict[str, Any]:
    """The parsed file, ``{}`` when missing. Warns when a file holding secrets is readable by others."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise UsageError(f"{path}: 'profiles' must hold tables such as [profiles.work]")
    if "default" in data and not isinstance(data["default"], str):
        raise UsageError(f"{path}: 'default' must be a profile name")
    has_secret = any(k in _SECRET_KEYS for p in profiles.values() for k in p)
    if has_secret and stat.S_IMODE(mode) & 0o077:
        log.warning("%s holds a token and is readable by other users; run: chmod 600 %s", path, path)
    return data


def _profile_values(
    data: Mapping[str, Any], name: str | None, path: Path, explicit: bool, new_ok: bool = False
) -> dict[str, Any]:
    profiles: dict[str, Any] = data.get("profiles", {})
    if name is None:
        return {}
    if name not in profiles:
        if (explicit or data.get("default") == name) and not new_ok:
            known = ", ".join(sorted(profiles)) or "none"
            raise UsageError(f"no profile {name!r} in {path} (profiles: {known})")
        return {}
    table: dict[str, Any] = profiles[name]
    unknown = sorted(set(table) - set(_PARSERS) - _EXTRA_PROFILE_KEYS - {"profile"})
    if unknown:
        raise UsageError(f"{path}: profile {name!r}: unknown setting {unknown[0]!r}")
    return {k: v for k, v in table.items() if k in _PARSERS and k != "profile"}


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _PARSERS:
        value = env.get(ENV_PREFIX + key.upper())
        if value is not None and value != "":
            out[key] = value
    return out


def load_settings(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
    *,
    new_profile_ok: bool = False,
) -> Settings:
    """Flags (``None`` = not given) over ``AMOFS_*`` env over the config file's profile over defaults.
    ``new_profile_ok``: a profile named but not in the file is empty rather than an error (``amofs login``)."""
    env = dict(os.environ) if env is None else dict(env)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(given) - set(_PARSERS) - {"config"})
    if unknown:
        raise TypeError(f"unknown setting {unknown[0]!r}")
    if path is None:
        path = _as_path(given["config"], "--config") if "config" in given else config_path(env)
    from_env = _env_values(env)
    data = read_config(path)
    profile_src = given.get("profile") or from_env.get("profile")
    profile = _as_str(profile_src, "--profile") if profile_src else data.get("default")
    layers: list[tuple[Mapping[str, Any], Callable[[str], str]]] = [
        (_profile_values(data, profile, path, bool(profile_src), new_profile_ok), lambda k: f"{path}: {k}"),
        (from_env, lambda k: ENV_PREFIX + k.upper()),
        (given, lambda k: "--" + k.replace("_", "-")),
    ]
    layered: dict[str, Any] = {}
    for values, name_of in layers:
        for key, raw in values.items():
            if key != "config":
                layered[key] = _PARSERS[key](raw, name_of(key))
    layered["profile"] = profile
    if "cache_dir" not in layered:
        layered["cache_dir"] = default_cache_dir(profile, layered.get("account_url"), env)
    return Settings(**layered, config_path=path, token_on_command_line=given.get("token") is not None)


# --- writing tokens back -----------------------------------------------------------------------------------


def save_tokens(profile: str | None, tokens: Mapping[str, object], *, path: Path | None = None) -> Path:
    """Store refreshed tokens (``token``, ``refresh_token``, ``expires_at``; ``access_token`` is taken as
    ``token``; a ``None`` value removes the key) in ``profile`` (the file's default profile, else
    ``"default"``), rewriting the file atomically with mode 0600. Comments in the file are not kept."""
    fields = {("token" if k == "access_token" else k): v for k, v in tokens.items()}
    for key in fields:
        if key not in ("token", "refresh_token", "expires_at"):
            raise ValueError(f"save_tokens: {key!r} is not a token field")
    return save_profile(profile, fields, path=path)


def try_flock(path: Path) -> int | None:
    """An exclusive, non-blocking ``flock`` on ``path`` (created 0600): the open descriptor that holds it, or
    None while another open file holds it. Closing the descriptor, or the process ending, releases it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _profile_name(profile: str | None, data: Mapping[str, Any]) -> str:
    """The profile a read or write of the file means: the one named, else the file's default, else "default"."""
    return profile or data.get("default") or "default"


class ProfileTokens:
    """The token pair of one profile as saved in the config file, shared by every amofs process that mounts
    with it. amoCRM refresh tokens are single-use: two mounts of one profile must not both spend the same
    one. ``try_lock`` takes an exclusive lock (``flock`` on ``CONFIG.refresh-lock``, 0600) that a refresh
    holds from reading the saved pair to saving the new one; ``load`` re-reads the pair, so a process that
    waited finds the pair another one has just saved. Satisfies ``amofs.api.auth.SharedTokens``."""

    def __init__(self, profile: str | None, path: Path | None = None) -> None:
        self._profile = profile
        self._path = config_path() if path is None else path
        self._fd: int | None = None

    def load(self) -> tuple[str, str | None] | None:
        data = read_config(self._path)
        name = _profile_name(self._profile, data)
        table = data.get("profiles", {}).get(name)
        if not isinstance(table, dict) or not isinstance(table.get("token", ""), str):
            return None
        refresh = table.get("refresh_token")
        return str(table.get("token", "")), refresh if isinstance(refresh, str) and refresh else None

    def try_lock(self) -> bool:
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = try_flock(self._path.with_name(self._path.name + ".refresh-lock"))
        return self._fd is not None

    def unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def save_profile(profile: str | None, values: Mapping[str, object], *, path: Path | None = None) -> Path:
    """Set ``values`` (settings keys, checked like the file's own; ``None`` removes a key) in ``profile`` (the
    file's default profile, else ``"default"``), creating the file and the profile as needed; the first
    profile written becomes the file's default. The file is rewritten atomically with mode 0600."""
    path = config_path() if path is None else path
    data = read_config(path)
    name = _profile_name(profile, data)
    if not data.get("profiles"):
        data.setdefault("default", name)
    table = data.setdefault("profiles", {}).setdefault(name, {})
    for key, value in values.items():
        if (key not in _PARSERS and key not in _EXTRA_PROFILE_KEYS) or key == "profile":
            raise ValueError(f"save_profile: {key!r} is not a profile setting")
        if value is None:
            table.pop(key, None)
            continue
        if isinstance(value, Path):
            value = str(value)
        if key in _PARSERS:
            _PARSERS[key](value, f"{path}: {key}")  # refuse what a later load would refuse
        table[key] = value
    _write_atomically(path, _dump_toml(data))
    return path


# --- mount options (-o, fstab's fourth field) -------------------------------------------------------------

#: settings a mount option may set (secrets never: fstab is world-readable and a command line is public)
MOUNT_OPTION_KEYS = (
    "account_url",
    "drive_url",
    "profile",
    "config",
    "cache_ttl",
    "cache_dir",
    "rate",
    "poll_interval",
    "debug",
    "log_file",
    "log_level",
    "allow_other",
    "uid",
    "gid",
    "umask",
    "read_only",
)
_BOOLEAN_OPTIONS = frozenset({"debug", "allow_other", "read_only", "demo"})
#: options of mount(8), fstab and the kernel that say nothing to amofs (nosuid etc. change nothing: amofs
#: shows no set-id bits, no devices and no executable files)
IGNORED_MOUNT_OPTIONS = frozenset(
    {
        "rw", "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "_netdev", "nofail",
        "suid", "nosuid", "dev", "nodev", "exec", "noexec", "async", "sync", "dirsync",
        "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "lazytime",
        "default_permissions",
    }
)  # fmt: skip
_SECRET_OPTIONS = frozenset({"token", "refresh_token", "client_secret"})


@dataclass(frozen=True)
class MountOptions:
    """``-o`` options split by who they are for."""

    flags: dict[str, object]  # settings, as if given as --flags
    demo: bool = False
    setuid: str | None = None  # run as this user (mount(8) as root, e.g. from /etc/fstab at boot)
    ignored: tuple[str, ...] = ()


def parse_mount_options(text: str) -> MountOptions:
    """``allow_other,cache_ttl=30,ro,noauto`` → settings (``ro`` is read_only), ``demo``, ``setuid=USER``, and
    the options of mount(8) that amofs ignores. ``-`` or ``_`` in a key are the same. Unknown options and
    secrets are UsageErrors."""
    flags: dict[str, object] = {}
    demo = False
    setuid: str | None = None
    ignored: list[str] = []
    for item in (o.strip() for o in text.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if key in IGNORED_MOUNT_OPTIONS or key.startswith("x_") or key in ("comment", "helper"):
            ignored.append(item)
            continue
        if key == "ro":
            key, eq, value = "read_only", "=", "true"
        if key in _SECRET_OPTIONS:
            raise UsageError(
                f"mount option {key!r}: a secret does not belong in mount options; put it in the config profile"
            )
        if key == "setuid":
            setuid = _as_str(value, "mount option setuid")
            continue
        if key in _BOOLEAN_OPTIONS:
            on = _as_bool(value, f"mount option {key}") if eq else True
            if key == "demo":
                demo = on
            else:
                flags[key] = on
            continue
        if key not in MOUNT_OPTION_KEYS:
            raise UsageError(f"unknown mount option {item!r} (see docs/CONFIGURATION.md)")
        if not eq:
            raise UsageError(f"mount option {key!r} needs a value: {key}=…")
        flags[key] = value
    return MountOptions(flags, demo, setuid, tuple(ignored))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_str(key)


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"cannot write {type(v).__name__} to TOML")


def _dump_toml(data: Mapping[str, Any]) -> str:
    lines = ["# amofs configuration (docs/CONFIGURATION.md); rewritten by amofs when tokens are refreshed."]

    def table(prefix: Iterable[str], d: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in d.items() if isinstance(v, dict)}
        head = list(prefix)
        if head and (scalars or not tables):
            lines.append("")
            lines.append("[" + ".".join(_toml_key(k) for k in head) + "]")
        # a umask reads as octal (0o027), as it was written; 23 would be the same number, and puzzling
        lines.extend(
            f"{_toml_key(k)} = {f'0o{v:03o}' if k == 'umask' and type(v) is int else _toml_value(v)}"
            for k, v in scalars.items()
        )
        for k, v in tables.items():
            table([*head, k], v)

    table([], data)
    return "\n".join(lines) + "\n"


def replace(settings: Settings, **changes: Any) -> Settings:
    """``dataclasses.replace`` under a name that reads well at call sites."""
    return dataclasses.replace(settings, **changes)
