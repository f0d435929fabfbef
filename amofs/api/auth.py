"""Access tokens for AmoClient: a fixed token, or OAuth 2.0 tokens refreshed through the account host.

Owns: ``StaticToken`` and ``OAuthTokens`` (both satisfy ``amofs.api.client.TokenSource``) and
``exchange_code`` (the one-time authorization-code exchange behind ``amofs login``).

Facts this module is built on (spec/NOTES.md): ``POST {account}/oauth2/access_token`` with
``grant_type=refresh_token`` (or ``authorization_code``), ``client_id``, ``client_secret``, ``redirect_uri``;
access tokens are JWTs that live 24 h (``exp``); refresh tokens live 3 months and are **single use** — the
old one is dead as soon as the endpoint answered, so ``save(new_tokens)`` runs *before* the new access token
is used: a crash after the exchange then loses nothing. A refresh token the endpoint refuses (400/401) raises
AuthError once and is never tried again in this process (no loop against the endpoint).

Caches: the current access and refresh token, in memory only (persistence is the ``save`` callback's job).
Must not: log a token or a client secret; refresh concurrently (one ``trio.Lock``: however many requests
wait, one exchange happens, the rest take its result).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx
import jwt
import trio

from amofs.errors import AmoError, AuthError, ProtocolError, Unavailable

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/access_token"


class StaticToken:
    """A token that cannot be refreshed (a long-lived token of a private integration, or ``--token``)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    async def refresh(self, rejected: str) -> str:
        raise AuthError(
            "the access token was rejected (expired or revoked) and cannot be refreshed; "
            "give a new token or log in again",
            status=401,
        )


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT access token (not verified: we only plan ahead), or None for a token that
    is not a JWT or carries no ``exp`` (treated as long-lived)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def _parse_tokens(data: object, what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{what}: expected a JSON object")
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProtocolError(f"{what}: field 'access_token' missing or not a string")
    out: dict[str, Any] = {"access_token": access}
    refresh = data.get("refresh_token")
    if isinstance(refresh, str) and refresh:
        out["refresh_token"] = refresh
    for key in ("token_type", "expires_in"):
        if key in data:
            out[key] = data[key]
    return out


async def _token_request(
    account_url: str,
    payload: dict[str, str],
    *,
    transport: httpx.AsyncBaseTransport | None,
    timeout: float,
    refused: str,
) -> dict[str, Any]:
    """POST the token endpoint; 400/401 → AuthError(refused); other failures → Unavailable/ProtocolError."""
    url = account_url.rstrip("/") + TOKEN_PATH
    what = f"POST {TOKEN_PATH}"
    try:
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
            resp = await http.post(url, json=payload, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise Unavailable(f"token endpoint unreachable: {type(exc).__name__}", method="POST", path=TOKEN_PATH) from exc
    if resp.status_code in (400, 401, 403):
        detail = _short_detail(resp)
        raise AuthError(refused, status=resp.status_code, method="POST", path=TOKEN_PATH, detail=detail)
    if resp.status_code >= 300:
        raise Unavailable(
            f"token endpoint answered {resp.status_code}",
            status=resp.status_code,
            method="POST",
            path=TOKEN_PATH,
        )
    try:
        data = json.loads(resp.content)
    except ValueError as exc:
        raise ProtocolError(f"{what}: the answer is not JSON") from exc
    return _parse_tokens(data, what)


def _short_detail(resp: httpx.Response) -> object:
    try:
        data = json.loads(resp.content)
    except ValueError:
        return None
    if isinstance(data, Mapping):
        # never echo tokens back into logs
        return {k: v for k, v in data.items() if "token" not in str(k) and "secret" not in str(k)}
    return None


async def exchange_code(
    account_url: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    code: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Trade an authorization code for tokens (``amofs login``). Returns ``{access_token, refresh_token,
    token_type?, expires_in?}``; a refused code raises AuthError."""
    return await _token_request(
        account_url,
        {
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
        },
        transport=transport,
        timeout=timeout,
        refused="the authorization code was refused (used already, expired, or for another integration)",
    )


class SharedTokens(Protocol):
    """Where other processes keep the same token pair (config.ProfileTokens): ``load`` the pair saved now,
    ``try_lock``/``unlock`` an exclusive lock held across one refresh."""

    def load(self) -> tuple[str, str | None] | None: ...

    def try_lock(self) -> bool: ...

    def unlock(self) -> None: ...


SHARED_LOCK_WAIT = 60.0  # seconds a refresh waits for another process's refresh before going ahead anyway


class OAuthTokens:
    """OAuth 2.0 access + refresh token pair with single-flight refresh (a ``TokenSource``).

    ``token()`` refreshes ahead of time when the access token is a JWT whose ``exp`` is less than ``leeway``
    seconds away (wall clock, as ``exp`` is); a token that is not a JWT is treated as long-lived and only
    refreshed after a 401. ``refresh(rejected)`` does nothing but return the current token when another task
    already replaced ``rejected``.
    """

    def __init__(
        self,
        account_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        access_token: str,
        refresh_token: str | None,
        save: Callable[[dict[str, Any]], None],
        *,
        leeway: float = 300.0,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], float] = time.time,
        shared: SharedTokens | None = None,
    ) -> None:
        self._account_url = account_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._access = access_token
        self._refresh = refresh_token
        self._save = save
        self._leeway = leeway
        self._timeout = timeout
        self._transport = transport
        self._now = now
        self._shared = shared
        self._lock = trio.Lock()
        self._dead: AuthError | None = None
        self.refreshes = 0  # exchanges made (for tests and `amofs status`)

    def _due(self, token: str) -> bool:
        if not token:
            return True  # only a refresh token was kept: get an access token before the first request
        exp = jwt_expiry(token)
        return exp is not None and exp - self._now() < self._leeway

    async def token(self) -> str:
        if self._refresh is not None and self._dead is None and self._due(self._access):
            async with self._lock:
                if self._due(self._access) and self._dead is None:
                    log.info("access token expires soon; refreshing ahead of time")
                    try:
                        await self._exchange()
                    except AmoError as exc:
                        # the current token is still valid for a little while: use it; the 401 path reports
                        log.warning(
                            "ahead-of-time refresh failed (%s); using the current token until it is refused",
                            type(exc).__name__,
                        )
        return self._access

    async def refresh(self, rejected: str) -> str:
        async with self._lock:
            if self._access != rejected:
                return self._access  # another task refreshed while we waited
            if self._dead is not None:
                raise self._dead
            if self._refresh is None:
                self._dead = AuthError(
                    "the access token was rejected and there is no refresh token; log in again", status=401
                )
                raise self._dead
            await self._exchange()
            return self._access

    async def _exchange(self) -> None:
        """One refresh, the caller holding the lock. With ``shared``, under the other processes' lock too: a
        pair saved by another process since ours was read is taken as it is (its refresh token replaced ours,
        which is spent) instead of being exchanged again."""
        if self._shared is None:
            return await self._exchange_now()
        shared = self._shared
        with trio.move_on_after(SHARED_LOCK_WAIT) as waited:
            while not await trio.to_thread.run_sync(shared.try_lock):
                await trio.sleep(0.05)
        if waited.cancelled_caught:
            log.warning(
                "another amofs process has held the token refresh lock for %.0f s; refreshing anyway", SHARED_LOCK_WAIT
            )
        try:
            saved = await trio.to_thread.run_sync(shared.load)
            if saved is not None and saved[1] is not None and saved[1] != self._refresh:
                log.info("another amofs process refreshed the OAuth tokens; using the pair it saved")
                self._access, self._refresh = saved
                if not self._due(self._access):
                    return
            await self._exchange_now()
        finally:
            shared.unlock()

    async def _exchange_now(self) -> None:
        """One refresh_token exchange."""
        assert self._refresh is not None
        self.refreshes += 1
        try:
            tokens = await _token_request(
                self._account_url,
                {
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "grant_type": "refresh_token",
                    "refresh_token": self._refresh,
                    "redirect_uri": self._redirect_uri,
                },
                transport=self._transport,
                timeout=self._timeout,
                refused="the refresh token was refused (revoked, expired, or already used); "
                "log in again with `amofs login`",
            )
        except AuthError as exc:
            self._dead = exc
            log.error("OAuth refresh refused by %s: log in again", TOKEN_PATH)
            raise
        # single-use refresh tokens: persist first, then use. If saving fails the pair is still kept in
        # memory (the old refresh token is dead either way) and the failure is reported.
        self._refresh = tokens.get("refresh_token", self._refresh)
        try:
            self._save(dict(tokens))
        except Exception as exc:
            self._access = tokens["access_token"]
            log.error("could not save the refreshed OAuth tokens: %s", type(exc).__name__)
            raise AuthError(f"the refreshed tokens could not be saved: {type(exc).__name__}") from exc
        self._access = tokens["access_token"]
        log.info("OAuth tokens refreshed and saved")
