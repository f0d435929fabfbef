"""``amofs login``: get an account's tokens into a profile of the config file.

Two ways in:

- **OAuth 2.0 authorization code** (an amoCRM integration: ``client_id``, ``client_secret``, ``redirect_uri``).
  amofs prints the address to open; once access is allowed amoCRM sends the browser to ``redirect_uri`` with
  ``?code=…&state=…&referer=ACCOUNT_HOST``. When ``redirect_uri`` is ``http://127.0.0.1:PORT/…`` or
  ``http://localhost:PORT/…`` amofs listens there (on 127.0.0.1 only) and catches the code itself; the code,
  or the whole address the browser was sent to, may be pasted instead (a private integration shows its code in
  the integration's window). The code is traded at the account's ``/oauth2/access_token``
  (``amofs.api.auth.exchange_code``); ``state`` is checked whenever the answer carries one.
- **A long-lived token** (a private integration's), pasted in or piped on stdin.

Either way the token is proved with one request to the account (``mount.check_account``) and the profile gets
``account_url``, the integration's fields and the tokens, in one atomic 0600 rewrite (``config.save_profile``).

Must not: print or log a token, a code or the client secret; listen anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

import trio

from amofs.config import Settings, UsageError, load_settings, parse_setting, read_config, replace, save_profile
from amofs.errors import AuthError

log = logging.getLogger(__name__)

CODE_WAIT = 600.0  # seconds to wait for the browser (a code itself lives 20 minutes)
_MAX_REQUEST = 16384


@dataclass(frozen=True)
class Redirect:
    """What came back from amoCRM's authorization page (or was pasted)."""

    code: str
    state: str | None = None
    referer: str | None = None  # the account's host, e.g. example.amocrm.ru


def authorize_url(client_id: str, state: str, account_url: str | None) -> str:
    """amoCRM's page that asks the user to allow the integration (it lets them pick the account)."""
    host = (urlsplit(account_url).hostname or "") if account_url else ""
    if host.endswith(".kommo.com"):
        base = "https://www.kommo.com/oauth"
    elif host.endswith(".amocrm.com"):
        base = "https://www.amocrm.com/oauth"
    else:
        base = "https://www.amocrm.ru/oauth"
    return f"{base}?{urlencode({'client_id': client_id, 'state': state, 'mode': 'post_message'})}"


def loopback_port(redirect_uri: str) -> int | None:
    """The port to listen on when ``redirect_uri`` points at this machine over plain http, else None."""
    parts = urlsplit(redirect_uri)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
        return None
    return parts.port or 80


def parse_pasted(text: str) -> Redirect | None:
    """A bare code, or an address / query string carrying ``code=``; None for an empty line."""
    text = text.strip()
    if not text:
        return None
    if "code=" in text:
        query = urlsplit(text).query if "://" in text else text.lstrip("?")
        params = {k: v[0] for k, v in parse_qs(query).items() if v}
        if params.get("error"):
            raise UsageError(f"amoCRM refused the authorization: {params['error']}")
        if not params.get("code"):
            raise UsageError("the pasted address carries no code")
        return Redirect(params["code"], params.get("state"), params.get("referer"))
    if any(c.isspace() for c in text):
        raise UsageError("that does not look like an authorization code")
    return Redirect(text)


# --- the local redirect listener ------------------------------------------------------------------------------

_PAGE = """<!doctype html><meta charset="utf-8"><title>amofs</title>
<body style="font-family:sans-serif;margin:3em"><h1>{title}</h1><p>{text}</p></body>"""


def _http_answer(status: str, title: str, text: str) -> bytes:
    body = _PAGE.format(title=title, text=text).encode()
    head = f"HTTP/1.0 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


async def _read_request(stream: trio.SocketStream) -> str | None:
    """The target of one HTTP request (``/path?query``), or None when it is not one."""
    data = b""
    with trio.move_on_after(10):
        while b"\r\n\r\n" not in data and len(data) < _MAX_REQUEST:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
        return None
    return parts[1]


async def _serve_redirect(listener: trio.SocketListener, state: str, path: str) -> Redirect:
    """Answer browsers until one arrives with this login's code; every other request gets a short page."""
    while True:
        stream = await listener.accept()
        async with stream:
            target = await _read_request(stream)
            got: Redirect | None = None
            if target is None:
                answer = _http_answer("400 Bad Request", "amofs", "Not a request amofs understands.")
            else:
                parts = urlsplit(target)
                params = {k: v[0] for k, v in parse_qs(parts.query).items() if v}
                if parts.path.rstrip("/") != path.rstrip("/") or not (params.get("code") or params.get("error")):
                    answer = _http_answer("404 Not Found", "amofs", "Nothing here.")
                elif params.get("state") != state:
                    answer = _http_answer(
                        "400 Bad Request", "amofs: wrong login", "This answer belongs to another login attempt."
                    )
                elif params.get("error"):
                    answer = _http_answer("200 OK", "amofs: access not allowed", "You may close this tab.")
                    await _send(stream, answer)
                    raise UsageError(f"amoCRM refused the authorization: {params['error']}")
                else:
                    got = Redirect(params["code"], state, params.get("referer"))
                    answer = _http_answer(
                        "200 OK", "amofs is logged in", "You may close this tab and go back to the terminal."
                    )
            await _send(stream, answer)
            if got is not None:
                return got


async def _send(stream: trio.SocketStream, data: bytes) -> None:
    with trio.move_on_after(10):
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(data)


async def _read_pasted(stdin: TextIO, state: str, listening: bool) -> Redirect:
    """Codes pasted on stdin (one per line) until one is usable. Once stdin has ended, only the listener (if
    there is one) can still answer."""
    while True:
        line = await trio.to_thread.run_sync(stdin.readline, abandon_on_cancel=True)
        if not line:
            if not listening:
                raise UsageError("no authorization code was pasted (stdin ended)")
            await trio.sleep_forever()
        try:
            got = parse_pasted(line)
        except UsageError as e:
            print(f"amofs: {e}; paste it again", file=sys.stderr, flush=True)
            continue
        if got is None:
            continue
        if got.state is not None and got.state != state:
            print("amofs: that address belongs to another login attempt; paste the newest", file=sys.stderr)
            continue
        return got


async def wait_for_code(
    client_id: str,
    redirect_uri: str,
    account_url: str | None,
    *,
    stdin: TextIO,
    timeout: float = CODE_WAIT,
    on_url: Callable[[str, bool], None],
) -> Redirect:
    """Show the authorization address (``on_url(url, listening)``) and wait for the code: caught on the
    loopback redirect when ``redirect_uri`` allows it, or pasted on stdin."""
    state = secrets.token_urlsafe(16)
    url = authorize_url(client_id, state, account_url)
    port = loopback_port(redirect_uri)
    result: list[Redirect] = []
    with trio.move_on_after(timeout) as scope:
        async with trio.open_nursery() as nursery:

            async def take(fn: Callable[[], Any]) -> None:
                result.append(await fn())
                nursery.cancel_scope.cancel()

            if port is not None:
                try:
                    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
                except OSError as e:
                    raise UsageError(f"cannot listen on 127.0.0.1:{port} for the redirect ({e.strerror})") from None
                path = urlsplit(redirect_uri).path or "/"
                for listener in listeners:
                    nursery.start_soon(take, lambda ln=listener: _serve_redirect(ln, state, path))
            on_url(url, port is not None)
            nursery.start_soon(take, lambda: _read_pasted(stdin, state, port is not None))
    if scope.cancelled_caught and not result:
        raise UsageError(f"no authorization code arrived in {timeout:.0f} s; run amofs login again")
    return result[0]


# --- the command ----------------------------------------------------------------------------------------------


def _ask(prompt: str, *, secret: bool = False) -> str:
    if not sys.stdin.isatty():
        return ""
    if secret:
        return getpass.getpass(prompt, stream=sys.stderr).strip()
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip()


def _need(value: str | None, what: str, how: str, *, secret: bool = False) -> str:
    if value:
        return value
    value = _ask(f"{what}: ", secret=secret)
    if not value:
        raise UsageError(f"login needs {what}: {how}")
    return value


def load_login_settings(flags: dict[str, object]) -> Settings:
    """Settings for login: like a mount's, except that the named profile may not exist yet."""
    return load_settings(flags, new_profile_ok=True)


def _account_from_referer(account_url: str | None, referer: str | None) -> str | None:
    if not referer:
        return account_url
    if account_url is None:
        return f"https://{referer}"
    if urlsplit(account_url).netloc != referer:
        raise UsageError(
            f"access was allowed for {referer}, but the profile's account is {account_url}; "
            f"give --account-url https://{referer} (or allow access in the right account)"
        )
    return account_url


def run_login(args: Any, *, check: Callable[[Settings], str]) -> int:
    """``amofs login``. ``check(settings)`` proves a token against the account and returns the drive URL."""
    flags: dict[str, object] = {
        "profile": args.profile,
        "config": args.config,
        "account_url": args.account_url,
        "client_id": getattr(args, "client_id", None),
        "redirect_uri": getattr(args, "redirect_uri", None),
    }
    s = load_login_settings(flags)
    profile = s.profile or _default_profile_name(s.config_path)
    if args.long_lived:
        return _login_long_lived(s, profile, check)
    return _login_oauth(s, profile, args, check)


def _default_profile_name(path: Path | None) -> str:
    data = read_config(path) if path else {}
    name = data.get("default")
    return name if isinstance(name, str) else "default"


def _login_long_lived(s: Settings, profile: str, check: Callable[[Settings], str]) -> int:
    account = _need(s.account_url, "the account URL", "give --account-url https://SUBDOMAIN.amocrm.ru")
    account = parse_setting("account_url", account, "the account URL")
    if sys.stdin.isatty():
        token = getpass.getpass("Paste the long-lived token (it is not shown): ", stream=sys.stderr).strip()
    else:
        token = sys.stdin.readline().strip()
    if not token:
        raise UsageError("no token was given (paste it, or pipe it on stdin)")
    try:
        drive = check(replace(s, account_url=account, token=token, refresh_token=None, client_id=None))
    except UsageError as e:
        cause = e.__cause__
        if isinstance(cause, AuthError):
            raise UsageError(
                f"{account} refused this token ({cause.method} {cause.path}: HTTP {cause.status}); nothing was saved"
            ) from e
        raise
    path = save_profile(
        profile,
        {"account_url": account, "token": token, "refresh_token": None, "expires_at": None},
        path=s.config_path,
    )
    _report(account, drive, path, profile)
    return 0


def _login_oauth(s: Settings, profile: str, args: Any, check: Callable[[Settings], str]) -> int:
    from amofs.api.auth import exchange_code

    how_file = f"or set it in profile {profile!r} of {s.config_path}"
    client_id = _need(s.client_id, "the integration ID (client_id)", f"give --client-id, {how_file}")
    redirect = _need(s.redirect_uri, "the integration's redirect URI", f"give --redirect-uri, {how_file}")
    redirect = parse_setting("redirect_uri", redirect, "the redirect URI")
    secret = _need(
        s.client_secret,
        "the integration's secret key (client_secret)",
        f"set AMOFS_CLIENT_SECRET, {how_file}",
        secret=True,
    )
    account = s.account_url
    if args.code:
        got = parse_pasted(args.code)
        if got is None:
            raise UsageError("--code is empty")
    else:

        def show(url: str, listening: bool) -> None:
            print("Open this address in a browser, choose the account and allow access:")
            print(f"  {url}")
            if listening:
                print(f"Waiting for the browser to come back to {redirect} (or paste the code here) …", flush=True)
            else:
                print("Then paste the code, or the whole address the browser was sent to:", flush=True)

        got = trio.run(
            lambda: wait_for_code(client_id, redirect, account, stdin=sys.stdin, timeout=args.timeout, on_url=show)
        )
    account = _account_from_referer(account, got.referer)
    account = _need(account, "the account URL", "give --account-url https://SUBDOMAIN.amocrm.ru")
    account = parse_setting("account_url", account, "the account URL")
    tokens = trio.run(lambda: exchange_code(account, client_id, secret, redirect, got.code))
    values: dict[str, object] = {
        "account_url": account,
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uri": redirect,
        "token": tokens["access_token"],
    }
    if tokens.get("refresh_token"):
        values["refresh_token"] = tokens["refresh_token"]
    # saved before anything else: the code is spent, and these tokens are the only way back in
    path = save_profile(profile, values, path=s.config_path)
    try:
        drive = check(replace(s, account_url=account, token=tokens["access_token"], refresh_token=None))
    except UsageError as e:
        raise UsageError(f"tokens saved to {path} (profile {profile}), but the account refused them: {e}") from e
    _report(account, drive, path, profile)
    return 0


def _report(account: str, drive: str, path: Path, profile: str) -> None:
    print(f"amofs: logged in to {account} (files at {drive}); tokens saved to {path} (profile {profile})")
    print(f"amofs: mount it with: amofs mount ~/amo --profile {profile}")
