"""AmoClient against httpx.MockTransport: status mapping, politeness (bucket, back-off, Blocked), 401 refresh,
bad bodies, drive-url discovery, paging, every endpoint's request shape, downloads.

Time-dependent tests take pytest-trio's ``autojump_clock`` (trio MockClock, autojump_threshold=0): sleeps
cost no real time and ``trio.current_time()`` tells how long the client would have waited.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import httpx
import pytest
import trio
from apihelpers import (
    ACCOUNT,
    DRIVE,
    STORAGE,
    TOKEN,
    UPLOAD,
    MockApi,
    file_json,
    fixture,
    html,
    jresp,
    problem,
    seen,
)

from amofs.api.client import (
    AmoClient,
    FileFilter,
    TokenBucket,
    error_for_status,
    parse_retry_after,
    safe_path,
)
from amofs.api.models import FileModel, PartAccepted
from amofs.errors import (
    ApiError,
    AuthError,
    BadRequest,
    Blocked,
    Conflict,
    Forbidden,
    NotFound,
    ProtocolError,
    RateLimited,
    SessionGone,
    TooLarge,
    Unavailable,
)

pytestmark = pytest.mark.timeout(30)

# --- the one status mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, AuthError),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, TooLarge),
        (429, RateLimited),
        (500, Unavailable),
        (502, Unavailable),
        (503, Unavailable),
        (504, Unavailable),
        (418, BadRequest),
    ],
)
async def test_status_maps_to_error(mock_api: MockApi, status: int, cls: type[ApiError]) -> None:
    client = mock_api(lambda r: problem(status, "the detail"), max_retries=0)
    with pytest.raises(cls) as info:
        await client.get_file("abc")
    e = info.value
    assert type(e) is cls
    assert (e.status, e.method, e.path) == (status, "GET", "/v1.0/files/abc")
    assert isinstance(e.detail, dict) and e.detail["detail"] == "the detail"
    assert "the detail" in str(e)
    assert TOKEN not in str(e)


def test_error_for_status_direct() -> None:
    assert type(error_for_status(403, "GET", "/x", b"<html>blocked</html>")) is Blocked
    assert type(error_for_status(403, "GET", "/x", b'{"title":"no scope"}')) is Forbidden
    assert type(error_for_status(403, "GET", "/x", b"")) is Forbidden
    assert type(error_for_status(404, "POST", "/v1.0/sessions/upload/<redacted>", b"", part=True)) is SessionGone
    assert type(error_for_status(404, "GET", "/x", b"")) is NotFound
    e = error_for_status(400, "GET", "/x", b'{"validation-errors":[{"code":"NotSupportedChoice"}]}')
    assert "NotSupportedChoice" in e.message and e.detail is not None


def test_safe_path_hides_tokens_and_queries() -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjc0MTg3MzYwMH0.8sdJVTZJ_MjuHhMGDkU7"
    assert safe_path(f"{UPLOAD}/v1.0/sessions/upload/{jwt_like}") == "/v1.0/sessions/upload/<redacted>"
    assert safe_path(f"{STORAGE}/bucket/key?X-Amz-Signature=secret") == "/bucket/key"
    assert safe_path(f"{DRIVE}/x/{jwt_like}/y") == "/x/<redacted>/y"


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


async def test_part_error_path_is_redacted(mock_api: MockApi) -> None:
    client = mock_api(lambda r: problem(400, "bad part"))
    url = f"{UPLOAD}/v1.0/sessions/upload/eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjc0MTg3MzYwMH0.8sdJVTZJ_MjuHhMG?sig=zz"
    with pytest.raises(BadRequest) as info:
        await client.upload_part(url, b"x")
    assert info.value.path == "/v1.0/sessions/upload/<redacted>"
    assert "eyJ" not in str(info.value) and "sig" not in str(info.value)


# --- Blocked ------------------------------------------------------------------------------------------------


async def test_blocked_stops_everything(mock_api: MockApi, caplog: pytest.LogCaptureFixture) -> None:
    client = mock_api(lambda r: html(403))
    with caplog.at_level(logging.ERROR, logger="amofs.api.client"), pytest.raises(Blocked) as info:
        await client.get_file("a")
    assert "blocked" in str(info.value)
    assert len(seen(client)) == 1  # no retry
    assert client.blocked
    for call in (client.get_file("b"), client.file_links("c"), client.list_files()):
        with pytest.raises(Blocked):
            await call
    assert len(seen(client)) == 1  # fails fast: nothing sent after the block
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert TOKEN not in errors[0].getMessage()


async def test_forbidden_json_does_not_block(mock_api: MockApi) -> None:
    client = mock_api(lambda r: problem(403, "scope files_delete missing"))
    with pytest.raises(Forbidden) as info:
        await client.delete_files(["a"])
    assert type(info.value) is Forbidden
    assert not client.blocked
    with pytest.raises(Forbidden):
        await client.delete_files(["a"])
    assert len(seen(client)) == 2


# --- back-off and Retry-After -------------------------------------------------------------------------------


async def test_429_retry_after_honoured(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "3"}, text="slow down")] * 2
    answers.append(jresp(200, file_json("a")))

    client = mock_api(lambda r: answers.pop(0))
    t0 = trio.current_time()
    f = await client.get_file("a")
    assert f.uuid == "a"
    assert trio.current_time() - t0 == pytest.approx(6.0)
    assert (client.stats.throttled, client.stats.retries, client.stats.requests) == (2, 2, 3)


async def test_429_without_retry_after_waits_at_least_a_second(
    mock_api: MockApi, autojump_clock: trio.testing.MockClock
) -> None:
    answers = [html(429, "<html>429 Too Many Requests</html>")] * 3 + [jresp(200, file_json("a"))]
    client = mock_api(lambda r: answers.pop(0))
    t0 = trio.current_time()
    await client.get_file("a")
    elapsed = trio.current_time() - t0
    assert elapsed >= 3.0
    assert elapsed <= 3 * 30.0
    assert client.stats.throttled == 3


async def test_5xx_backoff_is_bounded_with_full_jitter(
    mock_api: MockApi, autojump_clock: trio.testing.MockClock
) -> None:
    client = mock_api(lambda r: problem(503), max_retries=4, backoff_base=1.0, backoff_cap=3.0)
    t0 = trio.current_time()
    with pytest.raises(Unavailable) as info:
        await client.get_file("a")
    elapsed = trio.current_time() - t0
    assert len(seen(client)) == 5
    assert client.stats.retries == 4
    assert 0 < elapsed <= 1 + 2 + 3 + 3  # uniform(0, min(cap, base·2^n))
    assert "after 4 retries" in str(info.value)


async def test_too_long_retry_after_gives_up(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    client = mock_api(lambda r: httpx.Response(503, headers={"Retry-After": "3600"}), max_retry_after=60)
    with pytest.raises(Unavailable, match="too long"):
        await client.get_file("a")
    assert len(seen(client)) == 1


async def test_429_exhausted_raises_rate_limited(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    client = mock_api(lambda r: html(429), max_retries=2)
    with pytest.raises(RateLimited):
        await client.get_file("a")
    assert len(seen(client)) == 3


async def test_connection_errors_retried_for_safe_requests(
    mock_api: MockApi, autojump_clock: trio.testing.MockClock
) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        if calls["n"] == 2:
            raise httpx.ReadError("reset", request=request)
        return jresp(200, file_json("a"))

    client = mock_api(handler)
    assert (await client.get_file("a")).uuid == "a"
    assert calls["n"] == 3


async def test_connection_lost_on_part_is_not_retried(mock_api: MockApi) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=request)

    client = mock_api(handler)
    with pytest.raises(Unavailable, match="unknown") as info:
        await client.upload_part(f"{UPLOAD}/v1.0/sessions/upload/tok1", b"data")
    assert info.value.status is None
    assert len(seen(client)) == 1


async def test_part_connect_error_is_retried(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        return jresp(202, {"session_id": 1, "next_url": f"{UPLOAD}/v1.0/sessions/upload/tok2"})

    client = mock_api(handler)
    reply = await client.upload_part(f"{UPLOAD}/v1.0/sessions/upload/tok1", b"data")
    assert isinstance(reply, PartAccepted)
    assert calls["n"] == 2


async def test_part_500_retried_on_same_url(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    answers = [problem(500), problem(500), jresp(200, fixture("part_last.json"))]
    client = mock_api(lambda r: answers.pop(0))
    url = f"{UPLOAD}/v1.0/sessions/upload/tok1"
    reply = await client.upload_part(url, b"data")
    assert isinstance(reply, FileModel)
    assert [str(r.url) for r in seen(client)] == [url] * 3
    assert all(r.content == b"data" for r in seen(client))


async def test_part_404_is_session_gone(mock_api: MockApi) -> None:
    client = mock_api(lambda r: problem(404, "session not found"))
    with pytest.raises(SessionGone):
        await client.upload_part(f"{DRIVE}/v1.0/sessions/upload/tok1", b"data")


# --- token bucket --------------------------------------------------------------------------------------------


async def test_bucket_rate_sequential(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    client = mock_api(lambda r: jresp(200, file_json("a")), rate=7)
    t0 = trio.current_time()
    for _ in range(70):
        await client.get_file("a")
    elapsed = trio.current_time() - t0
    assert elapsed == pytest.approx((70 - 3.5) / 7)  # a burst of rate/2, then 7 per second
    assert elapsed >= 9.0
    assert client.stats.requests == 70
    assert client.stats.waited_for_bucket == pytest.approx(elapsed)


async def test_bucket_rate_concurrent_across_hosts(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/v4/files/"):
            return jresp(200, {"file_uuid": "a", "entities": []})
        return jresp(200, file_json("a"))

    client = mock_api(handler, rate=7)
    stamps: list[float] = []

    async def one(i: int) -> None:
        if i % 2:
            await client.get_file("a")
        else:
            await client.file_links("a")
        stamps.append(trio.current_time())

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(70):
            nursery.start_soon(one, i)
    assert trio.current_time() - t0 >= 9.0 - 1e-6
    # never more than 7 (+ the burst) in any one-second window
    stamps.sort()
    for i, t in enumerate(stamps):
        in_window = sum(1 for s in stamps[i:] if s < t + 1.0 - 1e-9)
        assert in_window <= 14


async def test_bucket_unit(autojump_clock: trio.testing.MockClock) -> None:
    b = TokenBucket(rate=2, burst=2)
    t0 = trio.current_time()
    for _ in range(6):
        await b.take()
    assert trio.current_time() - t0 == pytest.approx(2.0)
    b.drain()
    t1 = trio.current_time()
    await b.take()
    assert trio.current_time() - t1 == pytest.approx(0.5)


async def test_429_drains_burst(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "0"})] + [jresp(200, file_json("a"))] * 5
    client = mock_api(lambda r: answers.pop(0), rate=5)
    t0 = trio.current_time()
    for _ in range(5):
        await client.get_file("a")
    # without the drain the burst of 5 would absorb all 6 requests at once
    assert trio.current_time() - t0 >= 1.0 - 1e-6


# --- 401 and refresh -----------------------------------------------------------------------------------------


class CountingTokens:
    def __init__(self) -> None:
        self.current = "old"
        self.refreshes = 0

    async def token(self) -> str:
        return self.current

    async def refresh(self, rejected: str) -> str:
        self.refreshes += 1
        await trio.sleep(0.5)  # a slow token endpoint: others pile up meanwhile
        self.current = f"new{self.refreshes}"
        return self.current


async def test_401_one_refresh_shared_by_concurrent_requests(
    mock_api: MockApi, autojump_clock: trio.testing.MockClock
) -> None:
    tokens = CountingTokens()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] != "Bearer new1":
            return problem(401, "expired")
        return jresp(200, file_json("a"))

    client = mock_api(handler, auth=tokens)
    results: list[FileModel] = []

    async def one() -> None:
        results.append(await client.get_file("a"))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(one)
    assert len(results) == 10
    assert tokens.refreshes == 1
    assert client.stats.refreshes == 1


async def test_401_after_refresh_is_auth_error_without_loop(
    mock_api: MockApi, autojump_clock: trio.testing.MockClock
) -> None:
    tokens = CountingTokens()
    client = mock_api(lambda r: problem(401, "no"), auth=tokens)
    with pytest.raises(AuthError):
        await client.get_file("a")
    assert tokens.refreshes == 1
    assert len(seen(client)) == 2


async def test_static_token_401(mock_api: MockApi) -> None:
    client = mock_api(lambda r: problem(401, "expired"))
    with pytest.raises(AuthError, match="cannot be refreshed"):
        await client.get_file("a")
    assert len(seen(client)) == 1


# --- bad bodies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (
            httpx.Response(200, content=b'{"uuid": "a", "size":', headers={"Content-Type": "application/json"}),
            "malformed JSON",
        ),
        (html(200, "<html><body>maintenance</body></html>"), "HTML"),
        (httpx.Response(200, content=b"", headers={"Content-Type": "application/json"}), "empty body"),
        (httpx.Response(200, content=b'{"uuid": "a"}', headers={"Content-Length": "500"}), "Content-Length"),
        (jresp(200, {"uuid": "a", "name": "n"}), "size"),
        (jresp(200, ["not", "an", "object"]), "JSON object"),
        (
            httpx.Response(200, content=b"\xff\xfe\x00garbage", headers={"Content-Type": "application/json"}),
            "malformed JSON",
        ),
    ],
)
async def test_bad_bodies_are_protocol_errors(mock_api: MockApi, response: httpx.Response, match: str) -> None:
    client = mock_api(lambda r: response)
    with pytest.raises(ProtocolError, match=match) as info:
        await client.get_file("a")
    assert TOKEN not in str(info.value)


async def test_list_missing_embedded_is_protocol_error(mock_api: MockApi) -> None:
    client = mock_api(lambda r: jresp(200, {"_count": 3}))
    with pytest.raises(ProtocolError, match="_embedded"):
        await client.list_files()


async def test_session_reply_missing_field(mock_api: MockApi) -> None:
    body = fixture("session.json")
    del body["upload_url"]
    client = mock_api(lambda r: jresp(200, body))
    with pytest.raises(ProtocolError, match="upload_url"):
        await client.create_session("a.txt", 3)


async def test_unexpected_redirect_on_api_call(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(302, headers={"Location": "https://elsewhere.test/"}))
    with pytest.raises(ProtocolError, match="redirect"):
        await client.get_file("a")


# --- hosts and drive-url discovery ---------------------------------------------------------------------------


async def test_drive_url_discovered_once(mock_api: MockApi) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "example.amocrm.test":
            assert request.url.path == "/api/v4/account"
            assert request.url.params["with"] == "drive_url"
            return jresp(200, {"id": 1, "drive_url": DRIVE})
        assert request.url.host == "drive-b.amocrm.test"
        return jresp(200, file_json("a"))

    client = mock_api(handler, drive_url=None)
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(client.get_file, "a")
    assert client.drive_url == DRIVE
    assert sum(1 for r in seen(client) if r.url.path == "/api/v4/account") == 1
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in seen(client))


async def test_drive_url_missing(mock_api: MockApi) -> None:
    client = mock_api(lambda r: jresp(200, {"id": 1}), drive_url=None)
    with pytest.raises(ProtocolError, match="drive_url"):
        await client.get_file("a")


async def test_hosts_never_mixed(mock_api: MockApi) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/v4/"):
            assert request.url.host == "example.amocrm.test"
        else:
            assert request.url.host == "drive-b.amocrm.test"
        if request.url.path.endswith("/links"):
            return jresp(200, fixture("file_links.json"))
        if request.url.path.startswith("/api/v4/"):
            return httpx.Response(202)
        if request.url.path == "/v1.0/files/stats":
            return jresp(200, {"limit": 10, "used": 2})
        return jresp(200, file_json("a"))

    client = mock_api(handler)
    await client.get_file("a")
    await client.link_files("leads", 1, ["a"])
    assert len(await client.file_links("a")) == 2
    stats = await client.drive_stats()
    assert stats is not None and stats.limit == 10


# --- paging --------------------------------------------------------------------------------------------------


def paged_handler(total: int, page_cap: int = 250) -> Any:
    files = [file_json(f"u{i}") for i in range(total)]

    def handler(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        if limit > page_cap:
            return problem(400, "limit too large")
        page = int(request.url.params.get("page", "1"))
        chunk = files[(page - 1) * limit : page * limit]
        if not chunk:
            return httpx.Response(204)
        body: dict[str, Any] = {"_count": len(chunk), "_embedded": {"files": chunk}, "_links": {}}
        if page * limit < total:
            body["_links"]["next"] = {"href": f"{DRIVE}/v1.0/files?limit={limit}&page={page + 1}"}
        return jresp(200, body)

    return handler


async def test_paging_follows_next_exactly(mock_api: MockApi) -> None:
    client = mock_api(paged_handler(600))
    pages = [p async for p in client.iter_files()]
    assert [len(p) for p in pages] == [250, 250, 100]
    reqs = seen(client)
    assert len(reqs) == math.ceil(600 / 250)
    assert reqs[0].url.params["limit"] == "250"
    assert str(reqs[1].url) == f"{DRIVE}/v1.0/files?limit=250&page=2"
    assert str(reqs[2].url) == f"{DRIVE}/v1.0/files?limit=250&page=3"
    assert len({f.uuid for p in pages for f in p}) == 600


async def test_paging_204_is_empty(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(204))
    assert await client.list_files() == []


async def test_paging_halves_limit_on_400(mock_api: MockApi, caplog: pytest.LogCaptureFixture) -> None:
    client = mock_api(paged_handler(130, page_cap=100))
    with caplog.at_level(logging.WARNING):
        files = await client.list_files()
    assert len(files) == 130
    limits = [r.url.params.get("limit") for r in seen(client)]
    assert limits[:3] == ["250", "125", "62"]
    assert any("refused with 400" in r.getMessage() for r in caplog.records)
    # the accepted size is kept for the next listing
    n = len(seen(client))
    await client.list_files()
    assert seen(client)[n].url.params["limit"] == "62"


async def test_paging_bad_request_not_about_limit_raises(mock_api: MockApi) -> None:
    client = mock_api(lambda r: problem(400, "bad filter"))
    with pytest.raises(BadRequest):
        await client.list_files(FileFilter(date_type="nonsense"))
    assert len(seen(client)) == 4  # 250, 125, 62, 31 — then it gives up


async def test_paging_refuses_next_to_other_host(mock_api: MockApi) -> None:
    body = {"_embedded": {"files": [file_json("a")]}, "_links": {"next": {"href": "https://evil.test/v1.0/files"}}}
    client = mock_api(lambda r: jresp(200, body))
    with pytest.raises(ProtocolError, match="another host"):
        await client.list_files()


async def test_paging_loop_detected(mock_api: MockApi) -> None:
    body = {"_embedded": {"files": [file_json("a")]}, "_links": {"next": {"href": f"{DRIVE}/v1.0/files?page=2"}}}
    client = mock_api(lambda r: jresp(200, body))
    with pytest.raises(ProtocolError, match="repeats"):
        await client.list_files()


async def test_every_filter_is_sent(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(204))
    flt = FileFilter(
        uuids=["a", "b"],
        name="report",
        extensions=["pdf", "doc"],
        term="acme",
        source_id=5,
        deleted=True,
        size_unit=1000,
        size_from=1,
        size_to=9,
        date_type="updated_at",
        date_preset="week",
        date_from=100,
        date_to=200,
        created_by=[-1, 0],
        updated_by=[7],
    )
    await client.list_files(flt)
    q = seen(client)[0].url.params
    assert q["filter[uuid]"] == "a,b"
    assert q["filter[name]"] == "report"
    assert q.get_list("filter[extensions][]") == ["pdf", "doc"]
    assert q["filter[term]"] == "acme"
    assert q["filter[source_id]"] == "5"
    assert "filter[deleted]" in q
    assert (q["filter[size][unit]"], q["filter[size][from]"], q["filter[size][to]"]) == ("1000", "1", "9")
    assert q["filter[date][type]"] == "updated_at"
    assert q["filter[date][date_preset]"] == "week"
    assert (q["filter[date][from]"], q["filter[date][to]"]) == ("100", "200")
    assert q.get_list("filter[created_by][]") == ["-1", "0"]
    assert q.get_list("filter[updated_by][]") == ["7"]
    assert q["limit"] == "250"
    assert "filter[deleted]" not in FileFilter().params()


# --- entity links ----------------------------------------------------------------------------------------------


async def test_entity_files_before_id_paging(mock_api: MockApi) -> None:
    links = [{"id": 1000 - i, "file_uuid": f"f{i}"} for i in range(120)]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v4/leads/42/files"
        limit = int(request.url.params["limit"])
        before = int(request.url.params.get("before_id", "100000"))
        page = [x for x in links if x["id"] < before][:limit]
        if not page:
            return httpx.Response(204)
        return jresp(200, {"_embedded": {"files": page}})

    client = mock_api(handler, page_size=50)
    out = await client.entity_files("leads", 42)
    assert [x.file_uuid for x in out] == [f"f{i}" for i in range(120)]
    befores = [r.url.params.get("before_id") for r in seen(client)]
    assert befores == [None, "951", "901"]


async def test_entity_files_exact_multiple_ends_on_204(mock_api: MockApi) -> None:
    links = [{"id": 100 - i, "file_uuid": f"f{i}"} for i in range(50)]

    def handler(request: httpx.Request) -> httpx.Response:
        before = int(request.url.params.get("before_id", "100000"))
        page = [x for x in links if x["id"] < before][:50]
        return jresp(200, {"_embedded": {"files": page}}) if page else httpx.Response(204)

    client = mock_api(handler, page_size=50)
    assert len(await client.entity_files("contacts", 1)) == 50
    assert len(seen(client)) == 2


async def test_entity_files_empty_and_missing(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(204))
    assert await client.entity_files("companies", 1) == []
    client = mock_api(lambda r: problem(404, "entity not found"))
    with pytest.raises(NotFound):
        await client.entity_files("customers", 9)
    with pytest.raises(ValueError):
        await client.entity_files("tasks", 1)


async def test_entity_files_example_body(mock_api: MockApi) -> None:
    client = mock_api(
        lambda r: jresp(200, fixture("entity_files.json"), headers={"Content-Type": "application/hal+json"})
    )
    out = await client.entity_files("leads", 18437733)
    assert [x.id for x in out] == [2140857, 2128681]


@pytest.mark.parametrize("method", ["link_files", "unlink_files"])
async def test_link_unlink(mock_api: MockApi, method: str) -> None:
    client = mock_api(lambda r: httpx.Response(202))
    await getattr(client, method)("leads", 7, ["a", "b"])
    req = seen(client)[0]
    assert req.method == ("PUT" if method == "link_files" else "DELETE")
    assert str(req.url) == f"{ACCOUNT}/api/v4/leads/7/files"
    assert json.loads(req.content) == [{"file_uuid": "a"}, {"file_uuid": "b"}]
    assert req.headers["Content-Type"] == "application/json"


async def test_link_errors(mock_api: MockApi) -> None:
    client = mock_api(lambda r: problem(404, "no lead"))
    with pytest.raises(NotFound):
        await client.link_files("leads", 7, ["a"])
    client = mock_api(lambda r: problem(400, "bad uuid"))
    with pytest.raises(BadRequest):
        await client.unlink_files("leads", 7, ["a"])


async def test_file_links(mock_api: MockApi) -> None:
    client = mock_api(lambda r: jresp(200, fixture("file_links.json")))
    ents = await client.file_links("5ef222cd-bce4-4df8-8466-3dee7d16e70d")
    assert [(e.entity_type, e.id) for e in ents] == [("leads", 22859207), ("leads", 19229439)]
    assert seen(client)[0].url.path == "/api/v4/files/5ef222cd-bce4-4df8-8466-3dee7d16e70d/links"


# --- files endpoints -----------------------------------------------------------------------------------------


async def test_rename_and_set_version(mock_api: MockApi) -> None:
    client = mock_api(lambda r: jresp(200, fixture("file.json")))
    f = await client.rename_file("367b", "Новое имя")
    assert f.name == "product"
    f = await client.set_active_version("367b", "v2")
    r1, r2 = seen(client)
    assert (r1.method, r1.url.path, json.loads(r1.content)) == ("PATCH", "/v1.0/files/367b", {"name": "Новое имя"})
    assert json.loads(r2.content) == {"version_uuid": "v2"}


async def test_uuid_is_quoted_in_path(mock_api: MockApi) -> None:
    client = mock_api(lambda r: jresp(200, file_json("a")))
    await client.get_file("../../api/v4/x")
    assert seen(client)[0].url.raw_path.startswith(b"/v1.0/files/..%2F..%2Fapi")


async def test_delete_and_restore(mock_api: MockApi) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(204)
        return jresp(200, fixture("restore.json"))

    client = mock_api(handler)
    await client.delete_files(["a", "b"])
    restored = await client.restore_files(["a", "b"])
    assert len(restored) == 2
    d, r = seen(client)
    assert (d.method, d.url.path, json.loads(d.content)) == ("DELETE", "/v1.0/files", [{"uuid": "a"}, {"uuid": "b"}])
    assert (r.method, r.url.path, json.loads(r.content)) == (
        "POST",
        "/v1.0/files/restore",
        [{"uuid": "a"}, {"uuid": "b"}],
    )


async def test_versions(mock_api: MockApi) -> None:
    client = mock_api(lambda r: jresp(200, fixture("versions.json")))
    vs = await client.versions("89a61e7b-ba30-476f-b2f6-705a964e85c6")
    assert [v.is_main for v in vs] == [True, False]
    client = mock_api(lambda r: problem(404))
    with pytest.raises(NotFound):
        await client.versions("nope")


@pytest.mark.parametrize("response", [problem(403, "integration tokens"), problem(404), problem(401, "no")])
async def test_drive_stats_refused_is_none_and_not_asked_again(mock_api: MockApi, response: httpx.Response) -> None:
    tokens = CountingTokens()
    client = mock_api(lambda r: response, auth=tokens)
    assert await client.drive_stats() is None
    assert await client.drive_stats() is None
    assert len(seen(client)) == 1
    assert tokens.refreshes == 0  # a 401 there does not burn a refresh token


async def test_create_session_body_and_limits(mock_api: MockApi) -> None:
    client = mock_api(lambda r: jresp(200, fixture("session.json")))
    s = await client.create_session("a.png", 3435, file_uuid="367b", content_type="image/png", with_preview=True)
    assert s.max_part_size == 524288
    assert client.max_file_size == 314572800
    body = json.loads(seen(client)[0].content)
    assert body == {
        "file_name": "a.png",
        "file_size": 3435,
        "file_uuid": "367b",
        "content_type": "image/png",
        "with_preview": True,
    }
    client = mock_api(lambda r: jresp(200, fixture("session.json")))
    await client.create_session("b", 0)
    assert json.loads(seen(client)[0].content) == {"file_name": "b", "file_size": 0}


async def test_create_session_400_over_size_is_too_large(mock_api: MockApi) -> None:
    client = mock_api(lambda r: problem(400, "file_size exceeds max_file_size"))
    with pytest.raises(TooLarge):
        await client.create_session("big.bin", 10**12)
    client = mock_api(lambda r: problem(400, "Размер файла превышает допустимый"))
    with pytest.raises(TooLarge):
        await client.create_session("big.bin", 10**12)
    client = mock_api(lambda r: problem(400, "file_size must be a non-negative integer"))
    with pytest.raises(BadRequest) as info:
        await client.create_session("", -1)
    assert type(info.value) is BadRequest
    client = mock_api(lambda r: problem(400, "file_name is empty"))
    with pytest.raises(BadRequest) as info:
        await client.create_session("", 1)
    assert type(info.value) is BadRequest


async def test_authorization_only_to_known_hosts(mock_api: MockApi) -> None:
    client = mock_api(lambda r: jresp(202, fixture("part_next.json")))
    await client.upload_part(f"{UPLOAD}/v1.0/sessions/upload/t1", b"x")
    await client.upload_part(f"{DRIVE}/v1.0/sessions/upload/t2", b"x")
    other, same = seen(client)
    assert "Authorization" not in other.headers
    assert same.headers["Authorization"] == f"Bearer {TOKEN}"
    assert other.headers["Content-Type"] == "application/octet-stream"


# --- downloads -----------------------------------------------------------------------------------------------


class ChunkStream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], fail_after: bool = False) -> None:
        self.chunks = chunks
        self.fail_after = fail_after

    async def __aiter__(self) -> Any:
        for c in self.chunks:
            yield c
        if self.fail_after:
            raise httpx.ReadError("connection reset")


async def test_download_range_206(mock_api: MockApi) -> None:
    data = bytes(range(256)) * 100

    def handler(request: httpx.Request) -> httpx.Response:
        rng = request.headers.get("Range")
        assert rng == "bytes=100-"
        return httpx.Response(
            206,
            content=data[100:],
            headers={"Content-Range": f"bytes 100-{len(data) - 1}/{len(data)}"},
        )

    client = mock_api(handler)
    d = await client.open_download(f"{DRIVE}/download/x/y/z.bin", start=100)
    assert (d.status, d.start, d.length) == (206, 100, len(data) - 100)
    got = b""
    while chunk := await d.receive(1000):
        assert len(chunk) <= 1000
        got += chunk
    await d.aclose()
    assert got == data[100:]


async def test_download_range_ignored_200(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(200, content=b"0123456789"))
    d = await client.open_download(f"{DRIVE}/download/x", start=4, end=6)
    assert seen(client)[0].headers["Range"] == "bytes=4-6"
    assert (d.status, d.start) == (200, 0)
    assert await d.receive(100) == b"0123456789"
    assert await d.receive(100) == b""
    await d.aclose()


async def test_download_no_range_header_from_zero(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(200, content=b"abc"))
    d = await client.open_download(f"{DRIVE}/download/x")
    assert "Range" not in seen(client)[0].headers
    await d.aclose()


async def test_download_bad_content_range(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(206, content=b"abc", headers={"Content-Range": "bytes 0-2/10"}))
    with pytest.raises(ProtocolError, match="Content-Range"):
        await client.open_download(f"{DRIVE}/download/x", start=5)


async def test_download_416_is_empty(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(416, headers={"Content-Range": "bytes */10"}))
    d = await client.open_download(f"{DRIVE}/download/x", start=10)
    assert d.start == 10 and await d.receive(10) == b""
    await d.aclose()


async def test_receive_gathers_chunks_up_to_max(mock_api: MockApi) -> None:
    chunks = [bytes([i]) * 65536 for i in range(40)]  # 2.5 MiB in 64 KiB pieces, like httpcore's reads
    total = sum(map(len, chunks))
    client = mock_api(lambda r: httpx.Response(200, stream=ChunkStream(chunks), headers={"Content-Length": str(total)}))
    d = await client.open_download(f"{DRIVE}/download/x")
    sizes = []
    got = bytearray()
    while chunk := await d.receive(1 << 20):
        sizes.append(len(chunk))
        got += chunk
    await d.aclose()
    assert sizes == [1 << 20, 1 << 20, total - (2 << 20)]
    assert bytes(got) == b"".join(chunks)


async def test_receive_splits_a_chunk(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(200, stream=ChunkStream([b"abcdef", b"gh"])))
    d = await client.open_download(f"{DRIVE}/download/x")
    assert [await d.receive(4), await d.receive(3), await d.receive(3), await d.receive(3)] == [
        b"abcd",
        b"efg",
        b"h",
        b"",
    ]
    await d.aclose()


async def test_download_short_body_is_protocol_error(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(200, stream=ChunkStream([b"abc"]), headers={"Content-Length": "10"}))
    d = await client.open_download(f"{DRIVE}/download/x")
    assert await d.receive(100) == b"abc"  # what arrived comes first
    with pytest.raises(ProtocolError, match="3 of 10"):
        await d.receive(100)
    await d.aclose()


async def test_download_dropped_is_unavailable(mock_api: MockApi) -> None:
    client = mock_api(
        lambda r: httpx.Response(200, stream=ChunkStream([b"abc"], fail_after=True), headers={"Content-Length": "10"})
    )
    d = await client.open_download(f"{DRIVE}/download/x")
    assert await d.receive(100) == b"abc"
    with pytest.raises(Unavailable, match="after 3 bytes"):
        await d.receive(100)
    await d.aclose()


async def test_download_redirect_drops_authorization_cross_host(mock_api: MockApi) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "drive-b.amocrm.test" and request.url.path.startswith("/download/"):
            return httpx.Response(302, headers={"Location": f"{DRIVE}/signed/abc?sig=1"})
        if request.url.path.startswith("/signed/"):
            return httpx.Response(302, headers={"Location": f"{STORAGE}/bucket/obj?X-Amz-Signature=s"})
        assert request.url.host == "storage.s3.test"
        if "Authorization" in request.headers:
            return httpx.Response(400, text="Only one auth mechanism allowed")
        return httpx.Response(200, content=b"payload")

    client = mock_api(handler)
    d = await client.open_download(f"{DRIVE}/download/acc/u/f.txt")
    assert await d.receive(100) == b"payload"
    await d.aclose()
    first, second, third = seen(client)
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert second.headers["Authorization"] == f"Bearer {TOKEN}"  # same origin keeps it
    assert "Authorization" not in third.headers
    assert client.stats.requests == 3  # every hop takes a bucket token


async def test_download_errors_mapped(mock_api: MockApi) -> None:
    client = mock_api(lambda r: problem(404, "gone"))
    with pytest.raises(NotFound):
        await client.open_download(f"{DRIVE}/download/x")


async def test_download_relative_url_goes_to_drive(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(200, content=b"x"))
    d = await client.open_download("/download/a/b/c.txt")
    await d.aclose()
    assert str(seen(client)[0].url) == f"{DRIVE}/download/a/b/c.txt"


async def test_client_needs_credentials() -> None:
    with pytest.raises(ValueError):
        AmoClient(ACCOUNT)
    with pytest.raises(ValueError):
        AmoClient("ftp://x", token="t")


async def test_unusable_part_url_is_protocol_error(mock_api: MockApi) -> None:
    client = mock_api(lambda r: httpx.Response(200))
    for url in ("/v1.0/sessions/upload/relative", "ftp://x/y", "https://"):
        with pytest.raises(ProtocolError):
            await client.upload_part(url, b"x")
    assert seen(client) == []
