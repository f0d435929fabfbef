"""StaticToken, OAuthTokens and exchange_code against an httpx.MockTransport token endpoint."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest
import trio
from apihelpers import ACCOUNT, MockApi, file_json, jresp, problem, seen

from amofs.api.auth import OAuthTokens, StaticToken, exchange_code, jwt_expiry
from amofs.errors import AuthError, Unavailable

pytestmark = pytest.mark.timeout(30)

NOW = 1_800_000_000.0


def make_jwt(exp: float, n: int = 0) -> str:
    return jwt.encode({"exp": int(exp), "jti": str(n)}, "a-test-signing-key-of-32-bytes-or-more", algorithm="HS256")


class TokenEndpoint:
    """A fake ``/oauth2/access_token`` with single-use refresh tokens."""

    def __init__(self, first_refresh: str = "r0", ttl: float = 86400) -> None:
        self.valid_refresh = {first_refresh}
        self.calls: list[dict[str, Any]] = []
        self.n = 0
        self.ttl = ttl
        self.delay = 0.0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/oauth2/access_token"
        body = json.loads(request.content)
        self.calls.append(body)
        if self.delay:
            await trio.sleep(self.delay)
        if body["grant_type"] == "authorization_code":
            if body["code"] != "good-code":
                return problem(400, "Authorization code has expired")
        else:
            if body["refresh_token"] not in self.valid_refresh:
                return problem(401, "Token has been revoked")
            self.valid_refresh.discard(body["refresh_token"])  # single use
        self.n += 1
        new_refresh = f"r{self.n}"
        self.valid_refresh.add(new_refresh)
        return jresp(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.ttl,
                "access_token": make_jwt(NOW + self.ttl, self.n),
                "refresh_token": new_refresh,
            },
        )


def oauth(endpoint: TokenEndpoint, access: str, save: Any, refresh: str | None = "r0", **kw: Any) -> OAuthTokens:
    return OAuthTokens(
        ACCOUNT,
        "cid",
        "csecret",
        "https://example.test/cb",
        access,
        refresh,
        save,
        transport=httpx.MockTransport(endpoint),
        now=lambda: NOW,
        **kw,
    )


def test_jwt_expiry() -> None:
    assert jwt_expiry(make_jwt(NOW + 10)) == NOW + 10
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry(jwt.encode({"sub": "x"}, "a-test-signing-key-of-32-bytes-or-more", algorithm="HS256")) is None


async def test_static_token() -> None:
    s = StaticToken("abc")
    assert await s.token() == "abc"
    with pytest.raises(AuthError):
        await s.refresh("abc")


async def test_refresh_saves_before_use(mock_api: MockApi) -> None:
    endpoint = TokenEndpoint()
    saved: list[dict[str, Any]] = []
    old = make_jwt(NOW + 86000)
    tokens = oauth(endpoint, old, saved.append)

    def api(request: httpx.Request) -> httpx.Response:
        auth = request.headers["Authorization"].removeprefix("Bearer ")
        if auth == old:
            return problem(401, "expired")
        # the new access token is only ever used after it was saved
        assert saved and saved[-1]["access_token"] == auth
        return jresp(200, file_json("a"))

    client = mock_api(api, auth=tokens)
    assert (await client.get_file("a")).uuid == "a"
    assert len(endpoint.calls) == 1
    call = endpoint.calls[0]
    assert call == {
        "client_id": "cid",
        "client_secret": "csecret",
        "grant_type": "refresh_token",
        "refresh_token": "r0",
        "redirect_uri": "https://example.test/cb",
    }
    assert saved[0]["refresh_token"] == "r1"
    assert saved[0]["expires_in"] == 86400
    # the next refresh uses the new single-use refresh token
    await tokens.refresh(await tokens.token())
    assert endpoint.calls[1]["refresh_token"] == "r1"
    assert saved[-1]["refresh_token"] == "r2"


async def test_refresh_ahead_of_expiry() -> None:
    endpoint = TokenEndpoint()
    saved: list[dict[str, Any]] = []
    tokens = oauth(endpoint, make_jwt(NOW + 60), saved.append, leeway=300)
    t = await tokens.token()
    assert jwt_expiry(t) == NOW + 86400
    assert len(endpoint.calls) == 1 and len(saved) == 1
    await tokens.token()
    assert len(endpoint.calls) == 1  # fresh now: no second exchange


async def test_non_jwt_is_long_lived() -> None:
    endpoint = TokenEndpoint()
    tokens = oauth(endpoint, "opaque-long-lived", lambda d: None)
    assert await tokens.token() == "opaque-long-lived"
    assert endpoint.calls == []


async def test_one_refresh_for_many_waiters(autojump_clock: trio.testing.MockClock) -> None:
    endpoint = TokenEndpoint()
    endpoint.delay = 1.0
    saved: list[dict[str, Any]] = []
    old = make_jwt(NOW + 86000)
    tokens = oauth(endpoint, old, saved.append)
    got: list[str] = []

    async def one() -> None:
        got.append(await tokens.refresh(old))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(one)
    assert len(endpoint.calls) == 1
    assert len(set(got)) == 1 and got[0] != old


async def test_revoked_refresh_token_no_loop(mock_api: MockApi) -> None:
    endpoint = TokenEndpoint(first_refresh="something-else")
    old = make_jwt(NOW + 86000)
    tokens = oauth(endpoint, old, lambda d: None)
    client = mock_api(lambda r: problem(401, "expired"), auth=tokens)
    with pytest.raises(AuthError, match="refresh token was refused"):
        await client.get_file("a")
    with pytest.raises(AuthError, match="refresh token was refused"):
        await client.get_file("a")
    assert len(endpoint.calls) == 1  # the dead refresh token is not tried again
    assert len(seen(client)) == 2


async def test_no_refresh_token() -> None:
    tokens = oauth(TokenEndpoint(), "long-lived", lambda d: None, refresh=None)
    with pytest.raises(AuthError, match="no refresh token"):
        await tokens.refresh("long-lived")


async def test_ahead_refresh_failure_keeps_current_token() -> None:
    endpoint = TokenEndpoint(first_refresh="dead")
    soon = make_jwt(NOW + 60)
    tokens = oauth(endpoint, soon, lambda d: None)
    assert await tokens.token() == soon  # refresh refused: use what we have until it is refused
    with pytest.raises(AuthError):
        await tokens.refresh(soon)
    assert len(endpoint.calls) == 1


async def test_save_failure_is_reported() -> None:
    def broken(d: dict[str, Any]) -> None:
        raise OSError("disk full")

    endpoint = TokenEndpoint()
    old = make_jwt(NOW + 86000)
    tokens = oauth(endpoint, old, broken)
    with pytest.raises(AuthError, match="could not be saved"):
        await tokens.refresh(old)
    assert await tokens.token() != old  # the exchange happened; the new pair is kept in memory


async def test_token_endpoint_down() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    old = make_jwt(NOW + 86000)
    tokens = OAuthTokens(
        ACCOUNT, "c", "s", "r", old, "r0", lambda d: None, transport=httpx.MockTransport(down), now=lambda: NOW
    )
    with pytest.raises(Unavailable):
        await tokens.refresh(old)


async def test_exchange_code() -> None:
    endpoint = TokenEndpoint()
    out = await exchange_code(ACCOUNT, "cid", "cs", "https://cb", "good-code", transport=httpx.MockTransport(endpoint))
    assert out["refresh_token"] == "r1" and out["access_token"]
    assert endpoint.calls[0]["grant_type"] == "authorization_code"
    assert endpoint.calls[0]["code"] == "good-code"
    with pytest.raises(AuthError, match="authorization code"):
        await exchange_code(ACCOUNT, "cid", "cs", "https://cb", "bad", transport=httpx.MockTransport(endpoint))


async def test_empty_access_token_refreshes_first() -> None:
    endpoint = TokenEndpoint()
    saved: list[dict[str, Any]] = []
    tokens = oauth(endpoint, "", saved.append)
    t = await tokens.token()
    assert t and len(endpoint.calls) == 1 and saved[0]["access_token"] == t


async def test_a_refused_unrefreshable_token_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import httpx

    from amofs.api.auth import StaticToken
    from amofs.api.client import AmoClient
    from amofs.errors import AuthError

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"title": "Unauthorized", "status": 401})

    caplog.set_level(logging.INFO, logger="amofs.api.client")
    async with AmoClient(
        "http://acc.test",
        auth=StaticToken("old"),
        drive_url="http://drive.test",
        transport=httpx.MockTransport(handler),
    ) as c:
        for _ in range(3):
            with pytest.raises(AuthError):
                await c.get_file("u")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "log in again" in errors[0].getMessage()
