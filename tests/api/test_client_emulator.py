"""AmoClient and upload_file against the real emulator over loopback (``emulator`` fixture, tests/conftest.py).

These tests run on trio's real clock (the emulator is real I/O in threads; a MockClock would fire timeouts).
Every client has a 10 s HTTP timeout and short back-off, so the whole file stays within seconds.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from typing import Any

import httpx
import pytest
import trio

from amofs.api.auth import OAuthTokens, exchange_code
from amofs.api.client import AmoClient, FileFilter
from amofs.api.models import FileModel
from amofs.api.upload import upload_file
from amofs.errors import (
    AuthError,
    BadRequest,
    Blocked,
    Forbidden,
    NotFound,
    ProtocolError,
    SessionGone,
    TooLarge,
    Unavailable,
)

pytestmark = pytest.mark.timeout(60)


def make_client(emu: Any, **kw: Any) -> AmoClient:
    kw.setdefault("token", emu.token)
    kw.setdefault("drive_url", emu.drive_url)
    kw.setdefault("rate", 0)
    kw.setdefault("timeout", 10.0)
    kw.setdefault("backoff_base", 0.02)
    kw.setdefault("backoff_cap", 0.2)
    return AmoClient(emu.account_url, **kw)


# --- discovery and reads ---------------------------------------------------------------------------------------


async def test_drive_url_discovery(emulator: Any) -> None:
    async with make_client(emulator, drive_url=None) as client:
        assert await client.discover_drive_url() == emulator.drive_url.rstrip("/")
        assert await client.list_files() == []
    assert emulator.count(method="GET", path_prefix="/api/v4/account", host="account") == 1


async def test_get_list_and_errors(emulator: Any) -> None:
    uuid = emulator.seed_file("report.pdf", b"%PDF-1.4 hello")
    async with make_client(emulator) as client:
        f = await client.get_file(uuid)
        assert (f.uuid, f.name, f.extension, f.size) == (uuid, "report", "pdf", 14)
        assert f.download_url
        files = await client.list_files()
        assert [x.uuid for x in files] == [uuid]
        assert [x.uuid for x in await client.list_files(FileFilter(uuids=[uuid]))] == [uuid]
        assert await client.list_files(FileFilter(deleted=True)) == []
        with pytest.raises(NotFound):
            await client.get_file("00000000-0000-0000-0000-000000000000")


async def test_paging_600_files(emulator: Any) -> None:
    emulator.seed_many([(f"f{i:03}.txt", b"x") for i in range(600)])
    async with make_client(emulator) as client:
        before = emulator.count(method="GET", path_prefix="/v1.0/files")
        pages = [p async for p in client.iter_files()]
        requests = emulator.count(method="GET", path_prefix="/v1.0/files") - before
    assert sum(len(p) for p in pages) == 600
    assert len({f.uuid for p in pages for f in p}) == 600
    assert requests == math.ceil(600 / 250)


async def test_rename_versions_delete_restore(emulator: Any) -> None:
    uuid = emulator.seed_file("notes.txt", b"v1")
    async with make_client(emulator) as client:
        f = await client.rename_file(uuid, "renamed")
        assert f.name == "renamed"
        first_version = f.version_uuid
        # a new version through an upload with file_uuid
        g = await upload_file(client, io.BytesIO(b"version two"), "notes.txt", 11, file_uuid=uuid)
        assert g.uuid == uuid and g.version_uuid != first_version
        vs = await client.versions(uuid)
        assert len(vs) == 2 and sum(v.is_main for v in vs) == 1
        h = await client.set_active_version(uuid, first_version)
        assert h.version_uuid == first_version and h.size == 2
        await client.delete_files([uuid])
        trashed = await client.list_files(FileFilter(deleted=True))
        assert [t.uuid for t in trashed] == [uuid] and trashed[0].is_trashed
        restored = await client.restore_files([uuid])
        assert [r.uuid for r in restored] == [uuid]
        assert not (await client.get_file(uuid)).is_trashed
        with pytest.raises(NotFound):
            await client.rename_file("00000000-0000-0000-0000-000000000000", "x")
        with pytest.raises(NotFound):
            await client.versions("00000000-0000-0000-0000-000000000000")
        with pytest.raises((BadRequest, NotFound)):
            await client.set_active_version(uuid, "00000000-0000-0000-0000-000000000000")
        with pytest.raises(BadRequest):
            await client.delete_files(["not-a-uuid"])


async def test_scopes_and_bad_token(emulator: Any) -> None:
    uuid = emulator.seed_file("a.txt", b"a")
    emulator.add_token("files-only", ["files"])
    emulator.add_token("no-files", [])
    async with make_client(emulator, token="files-only") as client:
        await client.get_file(uuid)
        with pytest.raises(Forbidden) as info:
            await client.delete_files([uuid])
        assert type(info.value) is Forbidden and not client.blocked
    async with make_client(emulator, token="no-files") as client:
        with pytest.raises(Forbidden):
            await client.list_files()
    async with make_client(emulator, token="wrong-token") as client:
        with pytest.raises(AuthError) as auth_info:
            await client.get_file(uuid)
        assert "wrong-token" not in str(auth_info.value)


async def test_entity_links(emulator: Any) -> None:
    a = emulator.seed_file("a.txt", b"a", linked=())
    b = emulator.seed_file("b.txt", b"b", linked=())
    emulator.add_entity("leads", 42, "Deal 42")
    async with make_client(emulator) as client:
        assert await client.entity_files("leads", 42) == []
        await client.link_files("leads", 42, [a, b])
        links = await client.entity_files("leads", 42)
        assert sorted(x.file_uuid for x in links) == sorted([a, b])
        ents = await client.file_links(a)
        assert [(e.entity_type, e.id) for e in ents] == [("leads", 42)]
        await client.unlink_files("leads", 42, [a])
        assert [x.file_uuid for x in await client.entity_files("leads", 42)] == [b]
        assert await client.file_links(a) == []
        with pytest.raises(NotFound):
            await client.entity_files("contacts", 999)
        with pytest.raises(NotFound):
            await client.link_files("companies", 999, [a])


async def test_entity_files_paging(emulator: Any) -> None:
    emulator.add_entity("contacts", 7, "Ann")
    uuids = [emulator.seed_file(f"c{i}.txt", b"c", linked=()) for i in range(30)]
    async with make_client(emulator, page_size=25) as client:
        await client.link_files("contacts", 7, uuids)
        before = emulator.count(method="GET", path_prefix="/api/v4/contacts/7/files")
        links = await client.entity_files("contacts", 7)
        asked = emulator.count(method="GET", path_prefix="/api/v4/contacts/7/files") - before
    assert sorted(x.file_uuid for x in links) == sorted(uuids)
    assert asked == 2


async def test_drive_stats(emulator_factory: Any) -> None:
    emu = emulator_factory()
    emu.seed_file("a.txt", b"abc")
    async with make_client(emu) as client:
        stats = await client.drive_stats()
        assert stats is not None and stats.used >= 3 and stats.limit > 0
    refusing = emulator_factory(stats_endpoint=False)
    async with make_client(refusing) as client:
        assert await client.drive_stats() is None
        assert await client.drive_stats() is None
    assert refusing.count(path_prefix="/v1.0/files/stats") == 1


# --- uploads ---------------------------------------------------------------------------------------------------


UPLOADER = """
import json, sys, tracemalloc, trio
from amofs.api.client import AmoClient
from amofs.api.upload import upload_file

async def main(account, drive, token, path, size):
    async with AmoClient(account, token=token, drive_url=drive, rate=0, timeout=10.0) as client:
        with open(path, "rb") as fh:
            tracemalloc.start()
            f = await upload_file(client, fh, "big.bin", size)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    print(json.dumps({"uuid": f.uuid, "size": f.size, "peak": peak}))

trio.run(main, *sys.argv[1:5], int(sys.argv[5]))
"""


async def test_upload_5mib_in_parts_bounded_memory(emulator: Any, tmp_path: Any) -> None:
    """The uploader runs in its own process, so tracemalloc sees only its memory, not the emulator's."""
    size = 5 * 1024 * 1024
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(size))
    part = emulator.options.max_part_size
    args = [emulator.account_url, emulator.drive_url, emulator.token, str(src), str(size)]
    with trio.fail_after(30):
        proc = await trio.run_process([sys.executable, "-c", UPLOADER, *args], capture_stdout=True)
    out = json.loads(proc.stdout)
    assert out["size"] == size
    parts = emulator.count(method="POST", path_prefix="/v1.0/sessions/upload")
    assert parts == math.ceil(size / part)
    assert emulator.content(out["uuid"]) == src.read_bytes()
    # about one part in flight (a part is 512 KiB), far below the 5 MiB file
    assert out["peak"] < 4 * part, f"peak {out['peak']} bytes"


async def test_upload_host_is_separate_and_gets_no_token(emulator: Any) -> None:
    async with make_client(emulator) as client:
        session = await client.create_session("x.txt", 3)
        assert httpx.URL(session.upload_url).netloc != httpx.URL(emulator.drive_url).netloc
        reply = await client.upload_part(session.upload_url, b"abc")
        assert isinstance(reply, FileModel)
    parts = [r for r in emulator.log if r.path.startswith("/v1.0/sessions/upload")]
    assert parts and all(r.host == "upload" and not r.auth for r in parts)


async def test_upload_host_on_drive(emulator_factory: Any) -> None:
    emu = emulator_factory(upload_host="drive", max_part_size=4)
    async with make_client(emu) as client:
        f = await upload_file(client, io.BytesIO(b"0123456789"), "d.txt", 10)
    assert emu.content(f.uuid) == b"0123456789"
    parts = [r for r in emu.log if r.path.startswith("/v1.0/sessions/upload")]
    assert len(parts) == 3 and all(r.host == "drive" and r.auth for r in parts)


@pytest.mark.parametrize("part_status", [200, 202])
async def test_intermediate_part_status(emulator_factory: Any, part_status: int) -> None:
    emu = emulator_factory(part_status=part_status, max_part_size=1000)
    data = os.urandom(3500)
    async with make_client(emu) as client:
        f = await upload_file(client, io.BytesIO(data), "p.bin", len(data))
    assert emu.content(f.uuid) == data
    statuses = [r.status for r in emu.log if r.path.startswith("/v1.0/sessions/upload")]
    assert statuses == [part_status] * 3 + [200]


async def test_part_500_once_then_completes(emulator_factory: Any) -> None:
    emu = emulator_factory(max_part_size=1000)
    data = os.urandom(2500)
    async with make_client(emu) as client:
        emu.options.fail_parts = 1
        f = await upload_file(client, io.BytesIO(data), "r.bin", len(data))
        assert client.stats.retries == 1
    assert emu.content(f.uuid) == data
    assert emu.count(method="POST", path_prefix="/v1.0/sessions/upload") == 4
    assert emu.count(method="POST", path_prefix="/v1.0/sessions/upload", status=500) == 1


async def test_max_file_size_refused_before_any_byte(emulator_factory: Any) -> None:
    emu = emulator_factory(max_file_size=1000)
    async with make_client(emu) as client:
        with pytest.raises(TooLarge):
            await upload_file(client, io.BytesIO(b"x" * 2000), "big.bin", 2000)
        assert emu.count(path_prefix="/v1.0/sessions/upload") == 0
        assert emu.sessions_open() == 0
        # once the limit is known (from any session), an over-size upload sends nothing at all
        await upload_file(client, io.BytesIO(b"ok"), "small.txt", 2)
        n = len(emu.log)
        with pytest.raises(TooLarge):
            await upload_file(client, io.BytesIO(b"x" * 2000), "big.bin", 2000)
        assert len(emu.log) == n
    assert [f["name"] for f in emu.files()] == ["small"]


async def test_session_gone_restarts(emulator_factory: Any) -> None:
    emu = emulator_factory(max_part_size=1000)
    data = os.urandom(2500)
    async with make_client(emu) as client:
        session = await client.create_session("s.bin", len(data))
        with pytest.raises(SessionGone):
            await client.upload_part(session.upload_url.replace("upload/", "upload/x"), data[:1000])
        f = await upload_file(client, io.BytesIO(data), "s.bin", len(data))
    assert emu.content(f.uuid) == data


# --- downloads -------------------------------------------------------------------------------------------------


async def read_all(d: Any, step: int = 1 << 20) -> bytes:
    out = bytearray()
    while chunk := await d.receive(step):
        out += chunk
    await d.aclose()
    return bytes(out)


async def test_download_full_range_and_redirect(emulator: Any) -> None:
    data = os.urandom(300_000)
    uuid = emulator.seed_file("blob.bin", data)
    async with make_client(emulator) as client:
        f = await client.get_file(uuid)
        assert f.download_url is not None
        d = await client.open_download(f.download_url)
        assert (d.status, d.start) == (200, 0)
        assert await read_all(d) == data
        d = await client.open_download(f.download_url, start=1000, end=1999)
        assert (d.status, d.start, d.length) == (206, 1000, 1000)
        assert await read_all(d) == data[1000:2000]
        d = await client.open_download(f.download_url, start=299_000)
        assert d.start == 299_000
        assert await read_all(d) == data[299_000:]
    # the redirect hop to storage carried no Authorization (the storage listener refuses it with 400)
    storage = [r for r in emulator.log if r.host == "storage"]
    assert len(storage) == 3 and not any(r.auth for r in storage)
    assert all(r.auth for r in emulator.log if r.host == "drive")


async def test_download_without_range_support(emulator_factory: Any) -> None:
    emu = emulator_factory(range_support=False)
    data = os.urandom(5000)
    uuid = emu.seed_file("b.bin", data)
    async with make_client(emu) as client:
        f = await client.get_file(uuid)
        assert f.download_url is not None
        d = await client.open_download(f.download_url, start=100)
        assert (d.status, d.start) == (200, 0)
        assert (await read_all(d))[100:] == data[100:]


async def test_download_without_redirect(emulator_factory: Any) -> None:
    emu = emulator_factory(redirect_downloads=False)
    data = os.urandom(5000)
    uuid = emu.seed_file("b.bin", data)
    async with make_client(emu) as client:
        f = await client.get_file(uuid)
        assert f.download_url is not None
        assert await read_all(await client.open_download(f.download_url)) == data


async def test_download_dropped_then_resumed(emulator: Any) -> None:
    data = os.urandom(200_000)
    uuid = emulator.seed_file("drop.bin", data)
    async with make_client(emulator) as client:
        f = await client.get_file(uuid)
        assert f.download_url is not None
        emulator.options.drop_download_after = 50_000
        d = await client.open_download(f.download_url)
        got = bytearray()
        with pytest.raises(Unavailable):
            while chunk := await d.receive(1 << 16):
                got += chunk
        await d.aclose()
        assert 0 < len(got) <= 50_000 and bytes(got) == data[: len(got)]
        d = await client.open_download(f.download_url, start=len(got))
        assert d.start == len(got)
        got += await read_all(d)
    assert bytes(got) == data


# --- politeness against the emulator's own limiter -------------------------------------------------------------


async def test_bucket_keeps_under_server_limit(emulator_factory: Any) -> None:
    emu = emulator_factory(rate_limit=20)
    uuid = emu.seed_file("a.txt", b"a")
    async with make_client(emu, rate=20) as client:
        t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(40):
                nursery.start_soon(client.get_file, uuid)
        elapsed = trio.current_time() - t0
        assert client.stats.throttled == 0
    assert emu.count(status=429) == 0
    assert elapsed >= (40 - 20) / 20 * 0.9


async def test_429_html_backoff_then_success(emulator_factory: Any) -> None:
    emu = emulator_factory(rate_limit=10)
    uuid = emu.seed_file("a.txt", b"a")
    async with make_client(emu, rate=0, backoff_base=0.05, backoff_cap=0.5, max_retries=8) as client:
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(client.get_file, uuid)
        assert client.stats.throttled > 0
        assert client.stats.throttled == emu.count(status=429)


async def test_blocked_by_emulator_stops_all_requests(emulator_factory: Any) -> None:
    emu = emulator_factory(rate_limit=5, block_after=1)
    uuid = emu.seed_file("a.txt", b"a")
    async with make_client(emu, rate=0, backoff_base=0.01, backoff_cap=0.02) as client:
        with pytest.raises(Blocked):
            for _ in range(30):
                await client.get_file(uuid)
        n = len(emu.log)
        for _ in range(5):
            with pytest.raises(Blocked):
                await client.list_files()
        assert len(emu.log) == n


@pytest.mark.parametrize("mode", ["json", "html"])
async def test_garbled_answers(emulator_factory: Any, mode: str) -> None:
    emu = emulator_factory(garble_mode=mode, garble_match="^/v1.0/files/")
    uuid = emu.seed_file("a.txt", b"a")
    async with make_client(emu) as client:
        emu.options.garble_next = 1
        with pytest.raises(ProtocolError):
            await client.get_file(uuid)
        assert (await client.get_file(uuid)).uuid == uuid


# --- OAuth against the emulator's /oauth2/access_token -----------------------------------------------------------


async def test_oauth_code_exchange_and_refresh(emulator: Any) -> None:
    emulator.add_oauth_client("cid", "csecret", "https://example.test/cb")
    code = emulator.issue_auth_code("cid")
    first = await exchange_code(emulator.account_url, "cid", "csecret", "https://example.test/cb", code, timeout=10)
    assert first["access_token"] and first["refresh_token"]
    uuid = emulator.seed_file("a.txt", b"a")
    saved: list[dict[str, Any]] = []
    tokens = OAuthTokens(
        emulator.account_url,
        "cid",
        "csecret",
        "https://example.test/cb",
        first["access_token"],
        first["refresh_token"],
        saved.append,
        timeout=10,
    )
    async with make_client(emulator, token=None, auth=tokens) as client:
        assert (await client.get_file(uuid)).uuid == uuid
        emulator.revoke_token(first["access_token"])  # as if it had expired
        assert (await client.get_file(uuid)).uuid == uuid  # 401 → one refresh → retried
        assert client.stats.refreshes == 1
    assert len(saved) == 1 and saved[0]["refresh_token"] != first["refresh_token"]
    assert emulator.count(method="POST", path_prefix="/oauth2/access_token") == 2
    # the old refresh token was single-use: a second client holding it cannot refresh
    stale = OAuthTokens(
        emulator.account_url,
        "cid",
        "csecret",
        "https://example.test/cb",
        first["access_token"],
        first["refresh_token"],
        saved.append,
        timeout=10,
    )
    async with make_client(emulator, token=None, auth=stale) as client:
        with pytest.raises(AuthError, match="refresh token was refused"):
            await client.get_file(uuid)
        with pytest.raises(AuthError):
            await client.get_file(uuid)
    assert emulator.count(method="POST", path_prefix="/oauth2/access_token") == 3


# --- every endpoint × its documented failures ---------------------------------------------------------------------

MISSING = "00000000-0000-0000-0000-000000000000"


def calls(uuid: str) -> dict[str, Any]:
    """One call per client method, on a file/entity that exists."""
    return {
        "create_session": lambda c: c.create_session("a.txt", 3),
        "list_files": lambda c: c.list_files(),
        "get_file": lambda c: c.get_file(uuid),
        "rename_file": lambda c: c.rename_file(uuid, "b"),
        "set_active_version": lambda c: c.set_active_version(uuid, MISSING),
        "delete_files": lambda c: c.delete_files([uuid]),
        "restore_files": lambda c: c.restore_files([uuid]),
        "versions": lambda c: c.versions(uuid),
        "entity_files": lambda c: c.entity_files("leads", 1),
        "link_files": lambda c: c.link_files("leads", 1, [uuid]),
        "unlink_files": lambda c: c.unlink_files("leads", 1, [uuid]),
        "file_links": lambda c: c.file_links(uuid),
    }


DRIVE_CALLS = ["create_session", "list_files", "get_file", "rename_file", "set_active_version", "delete_files"]
DRIVE_CALLS += ["restore_files", "versions"]


@pytest.mark.parametrize("name", list(calls("x")))
async def test_every_endpoint_401(emulator: Any, name: str) -> None:
    uuid = emulator.seed_file("a.txt", b"a")
    async with make_client(emulator, token="not-a-known-token") as client:
        with pytest.raises(AuthError) as info:
            await calls(uuid)[name](client)
    assert info.value.status == 401 and info.value.method and info.value.path
    assert "not-a-known-token" not in str(info.value)


@pytest.mark.parametrize("name", DRIVE_CALLS)
async def test_every_drive_endpoint_403_without_scope(emulator: Any, name: str) -> None:
    uuid = emulator.seed_file("a.txt", b"a")
    emulator.add_token("no-scopes", [])
    async with make_client(emulator, token="no-scopes") as client:
        with pytest.raises(Forbidden) as info:
            await calls(uuid)[name](client)
        assert type(info.value) is Forbidden and info.value.status == 403
        assert not client.blocked


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("create_session", lambda c: c.create_session("", 3)),
        ("create_session size", lambda c: c.create_session("a.txt", -1)),
        ("list_files", lambda c: c.list_files(FileFilter(date_type="nonsense"))),
        ("rename_file", lambda c: c.rename_file(UUID_PLACEHOLDER, "")),
        ("delete_files", lambda c: c.delete_files(["not-a-uuid"])),
        ("restore_files", lambda c: c.restore_files(["not-a-uuid"])),
        ("link_files", lambda c: c.link_files("leads", 1, ["not-a-uuid"])),
        ("unlink_files", lambda c: c.unlink_files("leads", 1, ["not-a-uuid"])),
    ],
)
async def test_bad_requests_are_400(emulator: Any, name: str, call: Any) -> None:
    uuid = emulator.seed_file("a.txt", b"a")
    async with make_client(emulator) as client:
        with pytest.raises(BadRequest) as info:
            await call(_Bound(client, uuid))
    assert info.value.status == 400 and info.value.detail is not None


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_file(MISSING),
        lambda c: c.rename_file(MISSING, "x"),
        lambda c: c.set_active_version(MISSING, MISSING),
        lambda c: c.versions(MISSING),
        lambda c: c.entity_files("leads", 999),
        lambda c: c.link_files("contacts", 999, [MISSING]),
        lambda c: c.unlink_files("companies", 999, [MISSING]),
    ],
)
async def test_missing_things_are_404(emulator: Any, call: Any) -> None:
    async with make_client(emulator) as client:
        with pytest.raises(NotFound) as info:
            await call(client)
    assert info.value.status == 404


UUID_PLACEHOLDER = "<uuid>"


class _Bound:
    """The client, with UUID_PLACEHOLDER in string arguments replaced by a real file's uuid."""

    def __init__(self, client: AmoClient, uuid: str) -> None:
        self._client, self._uuid = client, uuid

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kw: Any) -> Any:
            return method(*[self._uuid if a == UUID_PLACEHOLDER else a for a in args], **kw)

        return call


async def test_smaller_server_page_halves_limit(emulator_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    emu = emulator_factory(max_page_size=100)
    emu.seed_many([(f"f{i:03}.txt", b"x") for i in range(130)])
    emu.add_entity("leads", 5, "Lead")
    async with make_client(emu) as client:
        files = await client.list_files()
        assert len(files) == 130
        limits = [r.query for r in emu.log if r.path == "/v1.0/files"][:3]
        assert ["limit=250" in limits[0], "limit=125" in limits[1], "limit=62" in limits[2]] == [True] * 3
        await client.link_files("leads", 5, [f.uuid for f in files[:70]])
        links = await client.entity_files("leads", 5)
        assert len(links) == 70
    assert any("refused with 400" in r.getMessage() for r in caplog.records)
