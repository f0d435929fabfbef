"""The Files API itself: ``ROUTES`` (host, method, path pattern, auth level → handler) and ``Api``, one method
per endpoint of spec/files-api.ru.md plus the OAuth token endpoint, the signed storage host and the
``/_emulator/`` control endpoints.

Owns request validation and the status codes of the spec, and every reading taken where the spec is silent
(each one listed in docs/EMULATOR.md). Handlers get a parsed ``Request`` whose caller (amofs.emulator.app) has
already applied rate limiting, injected faults and authentication; they raise ``HttpError`` for any error
answer and return a ``Response``. State lives in the Store; nothing here holds data between requests except the
per-session locks that keep two posts of one part URL from interleaving.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode

import jwt

from amofs.emulator import render
from amofs.emulator.filenames import sanitize, shown_name
from amofs.emulator.httpd import ClientGone, Request, Response
from amofs.emulator.options import EmulatorOptions, OptionError
from amofs.emulator.store import ENTITY_KINDS, EntityRow, FileFilter, Store, StoreError, VersionRow
from amofs.emulator.traffic import Traffic

__all__ = ["ALL_SCOPES", "ROUTES", "Api", "Context", "HttpError", "Route", "json_response", "problem_response"]

ALL_SCOPES = frozenset({"files", "files_delete"})
ACCOUNT_TZ = timezone(timedelta(hours=3))  # Moscow, no DST: the day boundaries of filter[date][date_preset]
_MAX_JSON_BODY = 4 << 20
_MAX_NAME = 255
_DATE_PRESETS = [
    "day",
    "tomorrow",
    "yesterday",
    "week",
    "previous_week",
    "next_week",
    "month",
    "next_month",
    "previous_month",
    "quarter",
    "previous_quarter",
    "next_quarter",
    "last_3_days",
    "next_3_days",
    "last_6_month",
    "year",
]

Auth = Literal["none", "token", "files", "files_delete", "main"]


class HttpError(Exception):
    """An error answer: problem JSON (XML on the storage host) with ``detail``."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}
        self.code = code  # S3-style error code on the storage host


@dataclass(frozen=True)
class Route:
    hosts: tuple[str, ...]
    method: str
    pattern: re.Pattern[str]
    auth: Auth
    handler: str  # name of the Api method; path groups are passed as keyword arguments


def _route(hosts: str, method: str, pattern: str, auth: Auth, handler: str) -> Route:
    return Route(tuple(hosts.split("|")), method, re.compile(pattern), auth, handler)


_UUID = r"(?P<uuid>[^/]+)"
_ENTITY = r"/api/v4/(?P<kind>leads|contacts|companies|customers)/(?P<entity_id>[0-9]{1,18})/files"
_DOWNLOAD = r"/download/(?P<account>[^/]+)/(?P<uuid>[^/]+)/(?:(?P<version>[^/]+)/)?(?P<name>[^/]+)"

# First match wins; a path that matches with another method gives 405.
ROUTES: tuple[Route, ...] = (
    # account host
    _route("account", "GET", r"/api/v4/account", "token", "account"),
    _route("account", "POST", r"/oauth2/access_token", "none", "access_token"),
    _route("account", "GET", _ENTITY, "token", "entity_files"),
    _route("account", "PUT", _ENTITY, "token", "link_files"),
    _route("account", "DELETE", _ENTITY, "token", "unlink_files"),
    _route("account", "GET", rf"/api/v4/files/{_UUID}/links", "token", "file_links"),
    _route("account", "GET", r"/_emulator/log", "main", "control_log"),
    _route("account", "POST", r"/_emulator/reset-log", "main", "control_reset_log"),
    _route("account", "GET", r"/_emulator/options", "main", "control_get_options"),
    _route("account", "POST", r"/_emulator/options", "main", "control_set_options"),
    _route("account", "GET", r"/_emulator/state", "main", "control_state"),
    _route("account", "POST", r"/_emulator/unblock", "main", "control_unblock"),
    # drive host (and the upload host for part URLs)
    _route("drive", "POST", r"/v1.0/sessions", "files", "create_session"),
    _route("drive|upload", "POST", r"/v1.0/sessions/upload/(?P<token>[^/]+)", "none", "upload_part"),
    _route("drive", "GET", r"/v1.0/files", "files", "list_files"),
    _route("drive", "DELETE", r"/v1.0/files", "files_delete", "delete_files"),
    _route("drive", "GET", r"/v1.0/files/stats", "files", "stats"),
    _route("drive", "POST", r"/v1.0/files/restore", "files", "restore_files"),
    _route("drive", "GET", rf"/v1.0/files/{_UUID}", "files", "get_file"),
    _route("drive", "PATCH", rf"/v1.0/files/{_UUID}", "files", "patch_file"),
    _route("drive", "GET", rf"/v1.0/files/{_UUID}/versions", "files", "list_versions"),
    _route("drive", "GET", rf"/v1.0/files/{_UUID}/versions/(?P<version>[^/]+)", "files", "get_version"),
    _route("drive", "GET", _DOWNLOAD, "files", "download"),
    # storage host: presigned URLs only
    _route("storage", "GET", r"/(?P<version>[^/]+)/(?P<name>[^/]+)", "none", "storage_get"),
)


@dataclass
class Context:
    """What the handlers share: state, live options, traffic, secrets and the listeners' base URLs."""

    store: Store
    options: EmulatorOptions
    traffic: Traffic
    secret: str
    main_token: str
    account_uuid: str
    bases: dict[str, str] = field(default_factory=dict)  # host kind → "http://127.0.0.1:PORT"
    fault_lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def urls(self) -> render.Urls:
        return render.Urls(self.bases.get("account", ""), self.bases.get("drive", ""), self.account_uuid)

    def take(self, counter: str) -> bool:
        """Use up one unit of a one-shot fault counter option (e.g. ``fail_parts``) if any is left."""
        with self.fault_lock:
            left = getattr(self.options, counter)
            if left > 0:
                setattr(self.options, counter, left - 1)
                return True
            return False


# -- responses ---------------------------------------------------------------------------------------------


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(req: Request, status: int, body: Any, content_type: str | None = None) -> Response:
    """JSON as the host serves it: application/hal+json on the account host, application/json elsewhere."""
    ct = content_type or ("application/hal+json" if req.host == "account" else "application/json")
    return Response(status, _dumps(body), ct)


def problem_response(req: Request, err: HttpError) -> Response:
    if req.host == "storage":
        code = err.code or render.title(err.status).replace(" ", "")
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{err.detail}</Message></Error>'
        )
        return Response(err.status, xml.encode(), "application/xml", dict(err.headers))
    ct = "application/problem+json" if req.host == "account" else "application/json"
    body = render.problem(err.status, err.detail) | err.extra
    return Response(err.status, _dumps(body), ct, dict(err.headers))


# -- request parsing helpers -------------------------------------------------------------------------------


def _json_body(req: Request) -> Any:
    raw = req.read(_MAX_JSON_BODY)
    if raw is None:
        raise HttpError(400, f"request body larger than {_MAX_JSON_BODY} bytes")
    if not raw.strip():
        raise HttpError(400, "a JSON request body is required")
    try:
        return json.loads(raw)
    except ValueError:
        raise HttpError(400, "request body is not valid JSON") from None


def _json_object(req: Request) -> dict[str, Any]:
    body = _json_body(req)
    if not isinstance(body, dict):
        raise HttpError(400, "request body must be a JSON object")
    return body


def _uuid_list(req: Request, key: str) -> list[str]:
    """A body like ``[{"uuid": "…"}, …]``: non-empty, each item an object with a non-empty string ``key``."""
    body = _json_body(req)
    if not isinstance(body, list) or not body:
        raise HttpError(400, f'request body must be a non-empty array of {{"{key}": "…"}} objects')
    out: list[str] = []
    for i, item in enumerate(body):
        value = item.get(key) if isinstance(item, dict) else None
        if not isinstance(value, str) or not value:
            raise HttpError(400, f"item {i}: {key} must be a non-empty string")
        out.append(value)
    return list(dict.fromkeys(out))


class _Query:
    """Query-string access in the API's PHP-style notation (``a[]``, ``a[0]``, ``a[b][c]``)."""

    def __init__(self, query: str) -> None:
        self.pairs = parse_qsl(query, keep_blank_values=True)
        self.values: dict[str, list[str]] = {}
        for k, v in self.pairs:
            self.values.setdefault(k, []).append(v)

    def has(self, key: str) -> bool:
        return key in self.values

    def first(self, key: str) -> str | None:
        v = self.values.get(key)
        return v[0] if v else None

    def many(self, key: str) -> list[str] | None:
        """Values of ``key``, ``key[]`` and ``key[N]`` together; None when none is given."""
        pattern = re.compile(re.escape(key) + r"(?:\[[0-9]*\])?")
        found = [v for k, v in self.pairs if pattern.fullmatch(k)]
        return found or None

    def integer(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
        text = self.first(key)
        if text is None or text == "":
            return None
        return _to_int(key, text, minimum, maximum)

    def integers(self, key: str, minimum: int | None = None) -> list[int] | None:
        found = self.many(key)
        if found is None:
            return None
        return [_to_int(key, part, minimum, None) for v in found for part in v.split(",") if part.strip()]


def _to_int(key: str, text: str, minimum: int | None, maximum: int | None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise HttpError(400, f"{key} must be an integer, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise HttpError(400, f"{key} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise HttpError(400, f"{key} must be at most {maximum}")
    return value


def _limit(q: _Query, maximum: int) -> int:
    limit = q.integer("limit", 1)
    if limit is None:
        return min(50, maximum)
    if limit > maximum:
        raise HttpError(400, f"limit must be at most {maximum}")
    return limit


def _preset_range(preset: str, now: float) -> tuple[int, int]:
    """[start, end) of a ``filter[date][date_preset]`` in the account's time zone (UTC+3)."""
    today = datetime.fromtimestamp(now, ACCOUNT_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)

    def month_start(offset: int) -> datetime:
        m = today.month - 1 + offset
        return today.replace(year=today.year + m // 12, month=m % 12 + 1, day=1)

    def quarter_start(offset: int) -> datetime:
        return month_start(offset * 3 - (today.month - 1) % 3)

    monday = today - today.weekday() * day
    ranges: dict[str, tuple[datetime, datetime]] = {
        "day": (today, today + day),
        "tomorrow": (today + day, today + 2 * day),
        "yesterday": (today - day, today),
        "week": (monday, monday + 7 * day),
        "previous_week": (monday - 7 * day, monday),
        "next_week": (monday + 7 * day, monday + 14 * day),
        "month": (month_start(0), month_start(1)),
        "next_month": (month_start(1), month_start(2)),
        "previous_month": (month_start(-1), month_start(0)),
        "quarter": (quarter_start(0), quarter_start(1)),
        "previous_quarter": (quarter_start(-1), quarter_start(0)),
        "next_quarter": (quarter_start(1), quarter_start(2)),
        "last_3_days": (today - 2 * day, today + day),
        "next_3_days": (today, today + 3 * day),
        "last_6_month": (_months_back(today, 6), today + day),
        "year": (today.replace(month=1, day=1), today.replace(year=today.year + 1, month=1, day=1)),
    }
    start, end = ranges[preset]
    return int(start.timestamp()), int(end.timestamp())


def _months_back(d: datetime, months: int) -> datetime:
    m = d.month - 1 - months
    year, month = d.year + m // 12, m % 12 + 1
    return d.replace(year=year, month=month, day=min(d.day, monthrange(year, month)[1]))


def _parse_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """One ``bytes=a-b`` / ``a-`` / ``-n`` range → (first, last) byte; None = ignore the header (malformed or
    several ranges: the whole body is sent, as RFC 9110 allows)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", header)
    if m is None or (not m[1] and not m[2]):
        return None
    if not m[1]:
        n = int(m[2])
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if m[2] and last < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


class Api:
    """The endpoint handlers. Method names are the ``handler`` column of ROUTES."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._session_locks: dict[int, threading.Lock] = {}
        self._session_locks_guard = threading.Lock()

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def options(self) -> EmulatorOptions:
        return self.ctx.options

    def _file_json(self, uuid: str, session_id: int | None = None) -> dict[str, Any]:
        row = self.store.get_file(uuid)
        if row is None:
            raise HttpError(404, f"file {uuid} not found")
        return render.file_model(row, self.ctx.urls, session_id)

    # -- account ---------------------------------------------------------------------------------------------

    def account(self, req: Request) -> Response:
        o = self.options
        withs = {w.strip() for v in (_Query(req.query).many("with") or []) for w in v.split(",")}
        body: dict[str, Any] = {
            "id": o.account_id,
            "name": "amofs emulator",
            "subdomain": o.subdomain,
            "created_at": 1577836800,
            "created_by": 0,
            "updated_at": 1577836800,
            "updated_by": 0,
            "current_user_id": o.user_id,
            "country": "RU",
            "currency": "RUB",
            "currency_symbol": "₽",
            "customers_mode": "segments",
            "is_unsorted_on": True,
            "is_loss_reason_enabled": True,
            "is_helpbot_enabled": False,
            "is_technical_account": False,
            "contact_name_display_order": 1,
            "_links": {"self": {"href": f"{self.ctx.bases['account']}/api/v4/account"}},
        }
        if "drive_url" in withs:
            body["drive_url"] = self.ctx.bases["drive"]
        return json_response(req, 200, body)

    # -- OAuth -----------------------------------------------------------------------------------------------

    def access_token(self, req: Request) -> Response:
        raw = req.read(64 << 10)
        if raw is None:
            raise HttpError(400, "request body too large")
        data: dict[str, Any]
        if "json" in (req.headers.get("Content-Type") or ""):
            try:
                parsed = json.loads(raw or b"{}")
            except ValueError:
                raise HttpError(400, "request body is not valid JSON") from None
            if not isinstance(parsed, dict):
                raise HttpError(400, "request body must be a JSON object")
            data = parsed
        else:
            data = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))

        def field_(name: str) -> str:
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise _oauth_error(400, f"{name} is required", "Check the request parameters")
            return value

        client_id, client_secret = field_("client_id"), field_("client_secret")
        grant_type, redirect_uri = field_("grant_type"), field_("redirect_uri")
        client = self.store.oauth_client(client_id)
        if client is None or not secrets.compare_digest(client[0], client_secret):
            raise _oauth_error(401, "client authentication failed", "Client authentication failed")
        if redirect_uri != client[1]:
            raise _oauth_error(400, "redirect_uri does not match the integration's", "Invalid redirect_uri")
        if grant_type == "authorization_code":
            outcome = self.store.consume_grant(field_("code"), "code", client_id)
            if outcome != "ok":
                raise _oauth_error(400, f"authorization code {outcome}", "Authorization code has been revoked")
        elif grant_type == "refresh_token":
            outcome = self.store.consume_grant(field_("refresh_token"), "refresh", client_id)
            if outcome != "ok":
                raise _oauth_error(401, f"refresh token {outcome}", "Token has been revoked")
        else:
            raise _oauth_error(400, f"unsupported grant_type {grant_type!r}", "Unsupported grant type")
        return json_response(req, 200, self.issue_tokens(client_id, client[2]), "application/json")

    def issue_tokens(self, client_id: str, scopes: frozenset[str]) -> dict[str, Any]:
        o = self.options
        now = int(time.time())
        ttl = o.access_token_ttl
        access = jwt.encode(
            {
                "aud": client_id,
                "jti": secrets.token_hex(16),
                "iat": now,
                "nbf": now,
                "exp": now + ttl,
                "sub": str(o.user_id),
                "account_id": o.account_id,
                "scopes": sorted(scopes),
            },
            self.ctx.secret,
            algorithm="HS256",
        )
        self.store.add_token(access, scopes, o.user_id, now + ttl)
        refresh = "def50200" + secrets.token_hex(64)
        self.store.add_grant(refresh, "refresh", client_id, now + 90 * 86400)
        return {"token_type": "Bearer", "expires_in": ttl, "access_token": access, "refresh_token": refresh}

    # -- upload sessions -------------------------------------------------------------------------------------

    def create_session(self, req: Request) -> Response:
        body = _json_object(req)
        o = self.options
        file_name = body.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            raise HttpError(400, "file_name is required and must be a non-empty string")
        if len(file_name) > _MAX_NAME:
            raise HttpError(400, f"file_name longer than {_MAX_NAME} characters")
        file_size = body.get("file_size")
        if isinstance(file_size, bool) or not isinstance(file_size, int) or file_size < 0:
            raise HttpError(400, "file_size is required and must be a non-negative integer")
        if file_size > o.max_file_size:
            raise HttpError(400, f"file_size {file_size} exceeds max_file_size {o.max_file_size}")
        content_type = body.get("content_type")
        if content_type is not None and not isinstance(content_type, str):
            raise HttpError(400, "content_type must be a string")
        with_preview = body.get("with_preview", False)
        if with_preview is not None and not isinstance(with_preview, bool):
            raise HttpError(400, "with_preview must be a boolean")
        file_uuid = body.get("file_uuid")
        if file_uuid is not None:
            if not isinstance(file_uuid, str):
                raise HttpError(400, "file_uuid must be a string")
            if self.store.get_file(file_uuid) is None:
                raise HttpError(404, f"file {file_uuid} not found")
        s = self.store.create_session(
            file_name,
            file_size,
            content_type or None,
            file_uuid,
            bool(with_preview),
            req.user.user_id,
            o.session_ttl,
        )
        return json_response(
            req,
            200,
            {
                "max_file_size": o.max_file_size,
                "max_part_size": o.max_part_size,
                "session_id": s.id,
                "upload_url": self._part_url(s.id, 1, s.expires_at),
            },
        )

    def _part_url(self, session_id: int, part_num: int, expires_at: float) -> str:
        o = self.options
        host = "upload" if o.upload_host == "separate" else "drive"
        now = int(time.time())
        claims = {
            "exp": int(expires_at),
            "iat": now,
            "nbf": now,
            "account_id": o.account_id,
            "session_id": session_id,
            "user_id": o.user_id,
            "user_type": "internal",
            "part_num": part_num,
            "host": host,
        }
        token = jwt.encode(claims, self.ctx.secret, algorithm="HS256")
        return f"{self.ctx.bases[host]}/v1.0/sessions/upload/{token}"

    def _session_lock(self, session_id: int) -> threading.Lock:
        with self._session_locks_guard:
            return self._session_locks.setdefault(session_id, threading.Lock())

    def upload_part(self, req: Request, token: str) -> Response:
        try:
            claims = jwt.decode(token, self.ctx.secret, algorithms=["HS256"], leeway=5)
            session_id, part_num = int(claims["session_id"]), int(claims["part_num"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            raise HttpError(404, "upload session not found (bad or expired part URL)") from None
        if claims.get("host") != req.host:
            raise HttpError(404, "upload session not found on this host")
        with self._session_lock(session_id):
            s = self.store.get_session(session_id)
            if s is None or s.completed or s.expires_at < time.time():
                raise HttpError(404, f"upload session {session_id} not found")
            if part_num != s.next_part:
                raise HttpError(404, f"part URL {part_num} already used or out of order (expecting {s.next_part})")
            if self.ctx.take("fail_parts"):
                raise HttpError(500, "injected part failure (nothing stored)")
            received = self._receive_part(req, s.id, s.received, s.file_size)
            if received == s.file_size:
                row = self.store.finish_upload(s)
                with self._session_locks_guard:
                    self._session_locks.pop(session_id, None)
                return json_response(req, 200, render.file_model(row, self.ctx.urls, session_id))
            self.store.advance_session(s.id, part_num, received)
            body = {"next_url": self._part_url(s.id, part_num + 1, s.expires_at), "session_id": s.id}
            return json_response(req, self.options.part_status, body)

    def _receive_part(self, req: Request, session_id: int, received: int, file_size: int) -> int:
        """Append the part to the spool file; on any failure the spool is cut back to ``received``."""
        max_part = self.options.max_part_size
        left = file_size - received
        n = req.content_length
        if n is not None:
            if n > max_part:
                raise HttpError(400, f"part of {n} bytes exceeds max_part_size {max_part}")
            if n > left:
                raise HttpError(400, f"part of {n} bytes goes beyond file_size ({left} bytes left)")
        path = self.store.spool_path(session_id)
        path.touch()
        with path.open("r+b") as spool:
            spool.seek(received)
            spool.truncate()
            total = 0
            try:
                for chunk in req.chunks():
                    total += len(chunk)
                    if total > max_part:
                        raise HttpError(400, f"part exceeds max_part_size {max_part}")
                    if total > left:
                        raise HttpError(400, f"part goes beyond file_size ({left} bytes left)")
                    spool.write(chunk)
                if total == 0 and left > 0:
                    raise HttpError(400, "empty part")
            except (HttpError, ClientGone):
                spool.truncate(received)
                raise
        return received + total

    # -- files -----------------------------------------------------------------------------------------------

    def list_files(self, req: Request) -> Response:
        q = _Query(req.query)
        o = self.options
        limit = _limit(q, o.max_page_size)
        page = q.integer("page", 1) or 1
        flt = FileFilter(deleted=q.has("filter[deleted]"))
        uuids = q.many("filter[uuid]")
        if uuids is not None:
            flt.uuids = [u.strip() for v in uuids for u in v.split(",") if u.strip()]
        flt.name = q.first("filter[name]") or None
        flt.extensions = q.many("filter[extensions]")
        term = q.first("filter[term]")
        if term:
            flt.term = term
            if o.search_delay > 0:
                flt.term_visible_before = time.time() - o.search_delay
        flt.source_id = q.integer("filter[source_id]")
        unit = q.integer("filter[size][unit]", 1) or 1
        size_from, size_to = q.integer("filter[size][from]", 0), q.integer("filter[size][to]", 0)
        flt.size_from = None if size_from is None else size_from * unit
        flt.size_to = None if size_to is None else size_to * unit
        date_type = q.first("filter[date][type]") or "created_at"
        if date_type not in ("created_at", "updated_at"):
            raise HttpError(400, "filter[date][type] must be created_at or updated_at")
        flt.date_field = "updated_at" if date_type == "updated_at" else "created_at"
        flt.date_from, flt.date_to = q.integer("filter[date][from]"), q.integer("filter[date][to]")
        preset = q.first("filter[date][date_preset]")
        if preset:
            if preset not in _DATE_PRESETS:
                raise HttpError(400, f"filter[date][date_preset] must be one of {', '.join(_DATE_PRESETS)}")
            start, end = _preset_range(preset, time.time())
            flt.date_from = start if flt.date_from is None else max(start, flt.date_from)
            flt.date_to = end - 1 if flt.date_to is None else min(end - 1, flt.date_to)
        flt.created_by = q.integers("filter[created_by]", -1)
        flt.updated_by = q.integers("filter[updated_by]", -1)
        rows = self.store.list_files(flt, limit + 1, (page - 1) * limit)
        if not rows:
            return Response(204)
        links = {"self": {"href": self._page_url(q, limit, page)}}
        if len(rows) > limit:
            rows = rows[:limit]
            links["next"] = {"href": self._page_url(q, limit, page + 1)}
        urls = self.ctx.urls
        body = {
            "_count": len(rows),
            "_embedded": {"files": [render.file_model(r, urls) for r in rows]},
            "_links": links,
        }
        return json_response(req, 200, body)

    def _page_url(self, q: _Query, limit: int, page: int) -> str:
        pairs = [(k, v) for k, v in q.pairs if k not in ("limit", "page")]
        pairs += [("limit", str(limit)), ("page", str(page))]
        return f"{self.ctx.bases['drive']}/v1.0/files?{urlencode(pairs)}"

    def get_file(self, req: Request, uuid: str) -> Response:
        return json_response(req, 200, self._file_json(uuid))

    def patch_file(self, req: Request, uuid: str) -> Response:
        body = _json_object(req)
        if self.store.get_file(uuid) is None:
            raise HttpError(404, f"file {uuid} not found")
        name, version_uuid = body.get("name"), body.get("version_uuid")
        if name is not None and version_uuid is not None:
            raise HttpError(400, "name and version_uuid cannot be set together")
        user = req.user.user_id
        try:
            if name is not None:
                if not isinstance(name, str) or not name.strip() or "\0" in name:
                    raise HttpError(400, "name must be a non-empty string")
                if len(name) > _MAX_NAME:
                    raise HttpError(400, f"name longer than {_MAX_NAME} characters")
                self.store.rename(uuid, name, user)
            elif version_uuid is not None:
                if not isinstance(version_uuid, str):
                    raise HttpError(400, "version_uuid must be a string")
                self.store.activate_version(uuid, version_uuid, user)
        except StoreError as e:
            raise HttpError(404 if e.kind == "not_found" else 400, str(e)) from None
        return json_response(req, 200, self._file_json(uuid))

    def delete_files(self, req: Request) -> Response:
        uuids = _uuid_list(req, "uuid")
        try:
            self.store.trash(uuids, req.user.user_id)
        except StoreError as e:
            raise HttpError(400, str(e)) from None
        return Response(204)

    def restore_files(self, req: Request) -> Response:
        uuids = _uuid_list(req, "uuid")
        try:
            rows = self.store.restore(uuids, req.user.user_id)
        except StoreError as e:
            raise HttpError(400, str(e)) from None
        urls = self.ctx.urls
        body = {"_count": len(rows), "_embedded": {"files": [render.file_model(r, urls) for r in rows]}}
        return json_response(req, 200, body)

    def list_versions(self, req: Request, uuid: str) -> Response:
        f = self.store.get_file(uuid)
        if f is None:
            raise HttpError(404, f"file {uuid} not found")
        urls = self.ctx.urls
        versions = [render.version_model(v, f.version_uuid, urls) for v in self.store.versions(uuid)]
        body = {
            "_count": len(versions),
            "_embedded": {"versions": versions},
            "_links": {"self": {"href": f"{urls.drive}/v1.0/files/{uuid}/versions"}},
        }
        return json_response(req, 200, body)

    def get_version(self, req: Request, uuid: str, version: str) -> Response:
        f = self.store.get_file(uuid)
        v = self.store.get_version(version)
        if f is None or v is None or v.file_uuid != uuid:
            raise HttpError(404, f"version {version} of file {uuid} not found")
        return json_response(req, 200, render.version_model(v, f.version_uuid, self.ctx.urls))

    def stats(self, req: Request) -> Response:
        if not self.options.stats_endpoint:
            raise HttpError(403, "this method is not available to integrations")
        return json_response(req, 200, {"limit": self.options.storage_limit, "used": self.store.used_bytes()})

    # -- downloads -------------------------------------------------------------------------------------------

    def download(self, req: Request, account: str, uuid: str, version: str | None, name: str) -> Response:
        if account != self.ctx.account_uuid:
            raise HttpError(404, "not found")
        f = self.store.get_file(uuid)
        if f is None:
            raise HttpError(404, f"file {uuid} not found")
        v = self.store.get_version(version or f.version_uuid)
        if v is None or v.file_uuid != uuid:
            raise HttpError(404, f"version {version} of file {uuid} not found")
        if self.options.redirect_downloads:
            return Response(302, headers={"Location": self._storage_url(v)})
        return self._serve(req, v)

    def _storage_url(self, v: VersionRow) -> str:
        ttl = self.options.download_url_ttl
        sig = jwt.encode({"v": v.uuid, "exp": int(time.time()) + ttl}, self.ctx.secret, algorithm="HS256")
        name = quote(sanitize(v.name) + (f".{sanitize(v.extension)}" if v.extension else ""))
        query = urlencode({"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Expires": ttl, "X-Amz-Signature": sig})
        return f"{self.ctx.bases['storage']}/{v.uuid}/{name}?{query}"

    def storage_get(self, req: Request, version: str, name: str) -> Response:
        if "Authorization" in req.headers:
            raise HttpError(
                400,
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified",
                code="InvalidArgument",
            )
        sig = _Query(req.query).first("X-Amz-Signature") or ""
        try:
            claims = jwt.decode(sig, self.ctx.secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise HttpError(403, "Request has expired", code="AccessDenied") from None
        except jwt.PyJWTError:
            raise HttpError(403, "The request signature does not match", code="SignatureDoesNotMatch") from None
        v = self.store.get_version(version)
        if claims.get("v") != version or v is None:
            raise HttpError(403, "The request signature does not match", code="SignatureDoesNotMatch")
        return self._serve(req, v)

    def _serve(self, req: Request, v: VersionRow) -> Response:
        """The version's bytes: whole (200) or one range (206); 416 when the range is unsatisfiable."""
        o = self.options
        shown = shown_name(v.name, v.extension)
        headers = {
            "ETag": f'"{v.uuid}"',
            "Last-Modified": formatdate(v.created_at, usegmt=True),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(shown)}",
        }
        if o.range_support:
            headers["Accept-Ranges"] = "bytes"
        status, first, length = 200, 0, v.size
        header = req.headers.get("Range") if o.range_support else None
        if header:
            rng = _parse_range(header, v.size)
            if rng == "unsatisfiable":
                return Response(416, headers={"Content-Range": f"bytes */{v.size}"})
            if rng is not None:
                first, last = rng
                status, length = 206, last - first + 1
                headers["Content-Range"] = f"bytes {first}-{last}/{v.size}"
        return Response(
            status,
            content_type=v.mime_type or "application/octet-stream",
            headers=headers,
            file=self.store.blob_path(v.blob),
            offset=first,
            length=length,
            cut_after=self._take_drop(),
        )

    def _take_drop(self) -> int | None:
        o = self.options
        with self.ctx.fault_lock:
            cut = o.drop_download_after
            if cut is None:
                return None
            o.drop_downloads -= 1
            if o.drop_downloads <= 0:
                o.drop_download_after, o.drop_downloads = None, 1
            return cut

    # -- entities --------------------------------------------------------------------------------------------

    def _entity(self, kind: str, entity_id: str) -> EntityRow:
        assert kind in ENTITY_KINDS
        e = self.store.entity(kind, int(entity_id))
        if e is None:
            raise HttpError(404, f"{kind} {entity_id} not found")
        return e

    def entity_files(self, req: Request, kind: str, entity_id: str) -> Response:
        e = self._entity(kind, entity_id)
        q = _Query(req.query)
        limit = _limit(q, self.options.max_page_size)
        before_id = q.integer("before_id", 1)
        links = self.store.entity_links(e.kind, e.id, limit + 1, before_id)
        if not links:
            return Response(204)
        base = f"{self.ctx.bases['account']}{req.path}"
        self_q: dict[str, int] = {"limit": limit}
        if before_id is not None:
            self_q["before_id"] = before_id
        out_links = {"self": {"href": f"{base}?{urlencode(self_q)}"}}
        if len(links) > limit:
            links = links[:limit]
            out_links["next"] = {"href": f"{base}?{urlencode({'limit': limit, 'before_id': links[-1].id})}"}
        body = {
            "_links": out_links,
            "_embedded": {"files": [{"file_uuid": link.file_uuid, "id": link.id} for link in links]},
        }
        return json_response(req, 200, body)

    def link_files(self, req: Request, kind: str, entity_id: str) -> Response:
        e = self._entity(kind, entity_id)
        try:
            self.store.link(e.kind, e.id, _uuid_list(req, "file_uuid"))
        except StoreError as err:
            raise HttpError(400, str(err)) from None
        return Response(202)

    def unlink_files(self, req: Request, kind: str, entity_id: str) -> Response:
        e = self._entity(kind, entity_id)
        try:
            self.store.unlink(e.kind, e.id, _uuid_list(req, "file_uuid"))
        except StoreError as err:
            raise HttpError(400, str(err)) from None
        return Response(202)

    def file_links(self, req: Request, uuid: str) -> Response:
        if self.store.get_file(uuid) is None:
            raise HttpError(400, f"file {uuid} not found")
        user_id = self.options.user_id
        entities = [render.entity_model(e, user_id) for _, e in self.store.links_of_file(uuid)]
        return json_response(req, 200, {"file_uuid": uuid, "entities": entities})

    # -- control (/_emulator/…, main token) -------------------------------------------------------------------

    def control_log(self, req: Request) -> Response:
        since = _Query(req.query).integer("since", 0) or 0
        entries, nxt = self.ctx.traffic.since(since)
        return json_response(req, 200, {"next": nxt, "entries": [e.to_json() for e in entries]})

    def control_reset_log(self, req: Request) -> Response:
        self.ctx.traffic.reset_log()
        return Response(204)

    def control_get_options(self, req: Request) -> Response:
        return json_response(req, 200, self.options.to_json())

    def control_set_options(self, req: Request) -> Response:
        try:
            self.options.update(_json_object(req))
        except OptionError as e:
            raise HttpError(400, str(e)) from None
        return json_response(req, 200, self.options.to_json())

    def control_state(self, req: Request) -> Response:
        t = self.ctx.traffic
        body = self.store.counts() | {"requests": len(t), "violations": t.violations, "blocked": t.blocked}
        return json_response(req, 200, body)

    def control_unblock(self, req: Request) -> Response:
        self.ctx.traffic.unblock()
        return Response(204)


def _oauth_error(status: int, detail: str, hint: str) -> HttpError:
    return HttpError(
        status, detail, extra={"hint": hint, "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"}
    )
