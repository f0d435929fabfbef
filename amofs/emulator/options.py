"""EmulatorOptions: every behaviour switch and injected fault of the emulator.

Owns the option fields, their documentation (``help`` metadata, used for the CLI flags) and their conversion
from command-line text and from JSON (``POST /_emulator/options``). The one-shot fault counters in here
(``fail_parts``, ``fail_requests``, ``drop_download_after``/``drop_downloads``, ``garble_next``) are counted
down by the request layer (amofs.emulator.httpd) under the emulator's fault lock; a test may set any field at
any time from another thread (single attribute writes are atomic in CPython).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EmulatorOptions", "OptionError", "add_option_flags", "options_from_args"]


class OptionError(ValueError):
    """An option name or value that cannot be used."""


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class EmulatorOptions:
    """Emulator behaviour. Defaults mimic the real service."""

    # identity
    token: str | None = _opt(None, "main access token (all scopes); random (kept in the data dir) when unset")
    account_id: int = _opt(29511137, "account id")
    subdomain: str = _opt("example", "account subdomain")
    user_id: int = _opt(7758337, "id of the user behind the tokens (created_by/updated_by)")
    access_token_ttl: int = _opt(86400, "lifetime in seconds of access tokens issued by /oauth2/access_token")
    # limits
    max_file_size: int = _opt(314572800, "largest file_size a session accepts (bytes)")
    max_part_size: int = _opt(524288, "largest upload part (bytes)")
    max_page_size: int = _opt(250, "largest `limit` of GET /v1.0/files and entity file lists")
    session_ttl: int = _opt(86400, "seconds an upload session and its part URLs stay valid")
    storage_limit: int = _opt(10 * 2**30, "`limit` reported by GET /v1.0/files/stats (bytes)")
    # behaviour
    part_status: int = _opt(202, "status of an intermediate part answer (202 = real service, 200 = the page)")
    upload_host: Literal["separate", "drive"] = _opt(
        "separate", "where upload_url/next_url point: a third listener (real) or the drive host"
    )
    redirect_downloads: bool = _opt(True, "downloads answer 302 to a signed URL on a storage listener")
    download_url_ttl: int = _opt(3600, "seconds a signed storage URL stays valid")
    range_support: bool = _opt(True, "honour Range: bytes=… with 206 (off: ignore Range, answer 200)")
    stats_endpoint: bool = _opt(True, "serve GET /v1.0/files/stats (off: 403 as for an integration token)")
    search_delay: float = _opt(0.0, "seconds before a new file can be found with filter[term]")
    # rate limiting
    rate_limit: float | None = _opt(None, "requests per second across all hosts (token bucket, burst = max(1, rate))")
    rate_limit_html: bool = _opt(True, "429 as an HTML page without Retry-After (real); off: JSON + Retry-After")
    block_after: int | None = _opt(None, "after N rate-limit violations answer 403 (nginx HTML) to everything")
    # injected faults
    latency: float = _opt(0.0, "seconds of delay before every answer")
    fail_parts: int = _opt(0, "the next N upload parts answer 500 before storing anything")
    fail_requests: int = _opt(0, "the next N requests whose path matches fail_requests_match fail")
    fail_requests_match: str = _opt("", "regex searched in the request path for fail_requests ('' = any)")
    fail_requests_status: int = _opt(500, "status given by fail_requests")
    drop_download_after: int | None = _opt(
        None, "cut the connection after B body bytes of the next drop_downloads downloads, then reset to None"
    )
    drop_downloads: int = _opt(1, "how many downloads drop_download_after cuts")
    garble_next: int = _opt(0, "the next N answers whose path matches garble_match are malformed")
    garble_match: str = _opt("", "regex searched in the request path for garble_next ('' = any)")
    garble_mode: Literal["json", "html"] = _opt(
        "json", "json: the body is cut in half; html: a 200 HTML page replaces the answer"
    )

    def update(self, changes: Mapping[str, Any]) -> None:
        """Set fields from JSON-like values (all checked before any is set); raises OptionError."""
        converted = {name: _convert(name, value, from_text=False) for name, value in changes.items()}
        for name, value in converted.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_HINTS: dict[str, Any] = typing.get_type_hints(EmulatorOptions)
_FIELDS = {f.name: f for f in dataclasses.fields(EmulatorOptions)}


def _convert(name: str, value: Any, *, from_text: bool) -> Any:
    """Check (and for text, parse) one option value against the field's annotation."""
    if name not in _HINTS:
        raise OptionError(f"unknown option {name!r}")
    hint = _HINTS[name]
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    if optional and (value is None or (from_text and str(value).lower() in ("", "none", "off"))):
        return None
    try:
        if typing.get_origin(base) is Literal:
            if value not in typing.get_args(base):
                raise OptionError(f"{name} must be one of {', '.join(map(str, typing.get_args(base)))}")
            return value
        if base is bool:
            if from_text:
                return _parse_bool(name, str(value))
            if not isinstance(value, bool):
                raise OptionError(f"{name} must be true or false")
            return value
        if base is int:
            if from_text:
                return int(str(value), 0)
            if isinstance(value, bool) or not isinstance(value, int):
                raise OptionError(f"{name} must be an integer")
            return value
        if base is float:
            number = float(str(value)) if from_text else value
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise OptionError(f"{name} must be a number")
            return float(number)
        if base is str:
            if not isinstance(value, str):
                raise OptionError(f"{name} must be a string")
            if name.endswith("_match"):
                re.compile(value)
            return value
    except (ValueError, re.error) as e:
        if isinstance(e, OptionError):
            raise
        raise OptionError(f"bad value for {name}: {value!r}") from None
    raise OptionError(f"option {name} has an unsupported type")  # pragma: no cover


def _parse_bool(name: str, text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise OptionError(f"{name} must be true or false")


def add_option_flags(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> None:
    """One ``--flag`` per option (``rate_limit`` → ``--rate-limit``); booleans get ``--no-…`` too."""
    group = parser.add_argument_group("emulator options")
    for name, f in _FIELDS.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if _HINTS[name] is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            group.add_argument(flag, metavar="VALUE", default=None, help=help_text)


def options_from_args(ns: argparse.Namespace, base: EmulatorOptions | None = None) -> EmulatorOptions:
    """EmulatorOptions from parsed flags (only those given override ``base``); raises OptionError."""
    options = dataclasses.replace(base) if base is not None else EmulatorOptions()
    for name in _FIELDS:
        value = getattr(ns, name, None)
        if value is None:
            continue
        setattr(options, name, value if isinstance(value, bool) else _convert(name, value, from_text=True))
    return options
