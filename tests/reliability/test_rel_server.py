"""Hostile input from the server side, and the service going away, against the AmoFS facade (fast, no FUSE):
malformed JSON, truncated bodies, an HTML page with 200, missing fields, a listing that changes between its
pages. Each ends in EIO (or a retry) with a log line, and the filesystem keeps serving afterwards.

Answers are tampered with by a transport wrapped around the real one (the mountpoint-s3 ``failure_client``
pattern): requests really reach the emulator, and a rule may rewrite the answer on its way back.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from fshelpers import P
from relhelpers import Outage, by_name, data, names, open_fs

from amofs.errors import AmoError, ProtocolError, Unavailable, errno_of

Rule = Callable[[httpx.Request, httpx.Response, bytes], httpx.Response | None]


class Tamper(httpx.AsyncBaseTransport):
    """The real transport, with ``rules`` that may replace an answer (each rule fires ``times`` times)."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.rules: list[tuple[Callable[[httpx.Request], bool], Rule, list[int]]] = []
        self.before: list[Callable[[httpx.Request], None]] = []
        self.fired = 0

    def on(self, match: Callable[[httpx.Request], bool], rule: Rule, times: int = 1) -> None:
        self.rules.append((match, rule, [times]))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for hook in self.before:
            await trio.to_thread.run_sync(hook, request)
        resp = await self._inner.handle_async_request(request)
        for match, rule, left in self.rules:
            if left[0] > 0 and match(request):
                body = await resp.aread()
                await resp.aclose()
                new = rule(request, resp, body)
                if new is not None:
                    left[0] -= 1
                    self.fired += 1
                    return new
                return httpx.Response(resp.status_code, headers=resp.headers, content=body)
        return resp

    async def aclose(self) -> None:
        await self._inner.aclose()


def is_listing(req: httpx.Request) -> bool:
    """A page of files/ (not of the trash)."""
    return req.method == "GET" and req.url.path == "/v1.0/files" and "filter[deleted]" not in req.url.params


def json_answer(resp: httpx.Response, doc: Any, **headers: str) -> httpx.Response:
    body = json.dumps(doc).encode()
    h = {"content-type": resp.headers.get("content-type", "application/json"), **headers}
    return httpx.Response(resp.status_code, headers=h, content=body)


def drop_field(field: str) -> Rule:
    def rule(req: httpx.Request, resp: httpx.Response, body: bytes) -> httpx.Response:
        doc = json.loads(body)
        for f in doc["_embedded"]["files"]:
            f.pop(field, None)
        return json_answer(resp, doc)

    return rule


def half_json(req: httpx.Request, resp: httpx.Response, body: bytes) -> httpx.Response:
    return httpx.Response(
        resp.status_code, headers={"content-type": "application/json"}, content=body[: len(body) // 2]
    )


def html_page(req: httpx.Request, resp: httpx.Response, body: bytes) -> httpx.Response:
    page = b"<html><body><h1>Site under maintenance</h1></body></html>"
    return httpx.Response(200, headers={"content-type": "text/html"}, content=page)


def short_body(req: httpx.Request, resp: httpx.Response, body: bytes) -> httpx.Response:
    """A body shorter than its Content-Length (the connection ended early)."""
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    return httpx.Response(resp.status_code, headers=headers, content=body[: len(body) - 10])


def wrong_types(req: httpx.Request, resp: httpx.Response, body: bytes) -> httpx.Response:
    doc = json.loads(body)
    for f in doc["_embedded"]["files"]:
        f["size"] = "large"
        f["metadata"] = ["not", "an", "object"]
    return json_answer(resp, doc)


def not_an_object(req: httpx.Request, resp: httpx.Response, body: bytes) -> httpx.Response:
    return json_answer(resp, [1, 2, 3])


@pytest.fixture
async def tfs(emulator: Any, tmp_path: Path) -> Any:
    tamper = Tamper()
    async with open_fs(emulator, tmp_path / "cache", transport=tamper, cache_ttl=0) as fs:
        fs.tamper = tamper  # type: ignore[attr-defined]
        yield fs


@pytest.mark.parametrize(
    "rule",
    [
        drop_field("uuid"),
        drop_field("size"),
        drop_field("name"),
        half_json,
        html_page,
        short_body,
        wrong_types,
        not_an_object,
    ],
    ids=["no-uuid", "no-size", "no-name", "half-json", "html-200", "short-body", "wrong-types", "not-an-object"],
)
async def test_bad_listing_is_eio_with_a_log_line_and_the_next_one_works(
    emulator: Any, tfs: Any, rule: Rule, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.seed_file("a.txt", b"a")
    emulator.seed_file("b.txt", b"b")
    p = P(tfs)
    tfs.tamper.on(is_listing, rule)
    with caplog.at_level(logging.INFO), pytest.raises(AmoError) as exc:
        await p.ls("files")
    assert errno_of(exc.value) == errno.EIO, exc.value
    assert tfs.tamper.fired == 1
    # the next listing, with a sane answer, works: nothing bad was kept
    assert await p.ls("files") == ["a.txt", "b.txt"]
    assert await p.read("files/a.txt") == b"a"


async def test_bad_file_model_on_upload_is_eio_and_keeps_the_bytes(emulator: Any, tfs: Any) -> None:
    """The last part's answer is garbage: the file may exist, but close() cannot claim so: EIO, bytes kept."""
    p = P(tfs)
    tfs.tamper.on(lambda r: "/sessions/upload/" in r.url.path, half_json)
    with pytest.raises(AmoError) as exc:
        await p.write("files/doc.txt", b"contract text")
    assert errno_of(exc.value) == errno.EIO
    kept = tfs.dirs.failed_files()
    assert [k.read_bytes() for k in kept] == [b"contract text"]
    # the service did store it (the answer was spoiled after the fact): no second copy appears on retry
    await p.write("files/doc2.txt", b"next one works")
    assert emulator.content(by_name(emulator, "doc2.txt")["uuid"]) == b"next one works"


async def test_html_page_on_download_is_eio(emulator: Any, tfs: Any) -> None:
    """A download answered with an HTML page whose length is not the file's: never served as the file."""
    emulator.seed_file("scan.pdf", data(100_000))
    p = P(tfs)
    await p.ls("files")
    tfs.tamper.on(lambda r: r.url.path.startswith("/download/") or "X-Amz" in str(r.url), html_page, times=100)
    with pytest.raises(AmoError) as exc:
        await p.read("files/scan.pdf")
    assert errno_of(exc.value) == errno.EIO
    tfs.tamper.rules.clear()
    assert await p.read("files/scan.pdf") == data(100_000)


async def test_listing_that_changes_between_pages_misses_no_file(emulator: Any, tmp_path: Path) -> None:
    """Files deleted elsewhere while the mount pages through files/ shift later pages back: the listing must
    notice (and list again) rather than lose the files that moved onto pages already read."""
    uuids = emulator.seed_many([(f"f{i:04d}.txt", b"x") for i in range(600)])
    doomed = uuids[-10:-5]  # newest first: on page 1 of 250, already read when page 2 is asked
    tamper = Tamper()
    fired = []

    def delete_before_page_2(req: httpx.Request) -> None:
        if is_listing(req) and req.url.params.get("page") == "2" and not fired:
            fired.append(req)
            r = httpx.request(
                "DELETE",
                f"{emulator.drive_url}/v1.0/files",
                json=[{"uuid": u} for u in doomed],
                headers={"Authorization": f"Bearer {emulator.token}"},
                timeout=10,
            )
            assert r.status_code == 204

    tamper.before.append(delete_before_page_2)
    async with open_fs(emulator, tmp_path / "cache", transport=tamper, cache_ttl=0.5) as fs:
        p = P(fs)
        listed = set(await p.ls("files"))
        assert fired
        live = {f"{f['name']}.txt" for f in emulator.files(trashed=False)}
        assert len(live) == 595
        assert listed == live, f"missing: {sorted(live - listed)[:10]}; extra: {sorted(listed - live)[:10]}"
        await trio.sleep(0.6)  # the next (incremental) sync must not keep the hole either
        assert set(await p.ls("files")) == live


async def test_listing_that_grows_between_pages_has_no_duplicates(emulator: Any, tmp_path: Path) -> None:
    emulator.seed_many([(f"g{i:04d}.txt", b"x") for i in range(600)])
    tamper = Tamper()
    fired = []

    def add_before_page_2(req: httpx.Request) -> None:
        if is_listing(req) and req.url.params.get("page") == "2" and not fired:
            fired.append(req)
            for i in range(7):
                emulator.seed_file(f"new{i}.txt", b"n")

    tamper.before.append(add_before_page_2)
    async with open_fs(emulator, tmp_path / "cache", transport=tamper) as fs:
        listed = await P(fs).ls("files")
    assert fired
    assert len(listed) == len(set(listed))
    assert not [n for n in listed if "(" in n], "a file listed twice showed up under a collision name"
    assert {f"g{i:04d}.txt" for i in range(600)} <= set(listed)


# --- the service goes away ---------------------------------------------------------------------------------------


FAST = {"backoff_base": 0.001, "backoff_cap": 0.01}


async def test_upload_with_the_service_down_fails_and_keeps_the_bytes(tmp_path: Path) -> None:
    o = Outage(tmp_path / "emu")
    try:
        async with open_fs(o.emu, tmp_path / "cache", **FAST) as fs:
            p = P(fs)
            await p.ls("files")
            o.stop()
            before = fs.client.stats.requests
            with pytest.raises(Unavailable) as exc:
                await p.write("files/offline.txt", b"written while the service was away")
            assert errno_of(exc.value) == errno.EIO
            assert fs.client.stats.requests - before == 7  # one try and six retries, then EIO
            assert [k.read_bytes() for k in fs.dirs.failed_files()] == [b"written while the service was away"]
            assert "offline.txt" not in await p.ls("files")
            o.start()
            await p.write("files/offline.txt", b"written while the service was away")
        assert names(o.emu) == ["offline.txt"]
    finally:
        o.close()


async def test_read_with_the_service_down_gives_up_after_one_round_of_retries(tmp_path: Path) -> None:
    o = Outage(tmp_path / "emu")
    try:
        o.emu.seed_file("big.bin", data(48 << 20))
        async with open_fs(o.emu, tmp_path / "cache", **FAST) as fs:
            p = P(fs)
            opened = await fs.open(await p.ino("files/big.bin"), os.O_RDONLY)
            try:
                assert await fs.read(opened.fh, 0, 65536) == data(48 << 20)[:65536]
                o.stop()
                before = fs.client.stats.requests
                with pytest.raises(Unavailable):
                    await fs.read(opened.fh, 40 << 20, 65536)  # far ahead: a new request
                attempts = fs.client.stats.requests - before
            finally:
                await fs.release(opened.fh)
        assert attempts <= 7, f"{attempts} attempts for one read"
    finally:
        o.close()


async def test_read_resumes_after_the_service_comes_back(tmp_path: Path) -> None:
    o = Outage(tmp_path / "emu")
    try:
        body = data(48 << 20, seed=3)
        o.emu.seed_file("big.bin", body)
        async with open_fs(o.emu, tmp_path / "cache", backoff_base=0.2, backoff_cap=0.5) as fs:
            p = P(fs)
            opened = await fs.open(await p.ino("files/big.bin"), os.O_RDONLY)
            got = bytearray()
            try:
                got += await fs.read(opened.fh, 0, 1 << 20)
                o.stop()

                async def back() -> None:
                    await trio.sleep(0.5)
                    await trio.to_thread.run_sync(o.start)

                async with trio.open_nursery() as n:
                    n.start_soon(back)
                    while chunk := await fs.read(opened.fh, len(got), 1 << 20):
                        got += chunk
            finally:
                await fs.release(opened.fh)
        assert bytes(got) == body
    finally:
        o.close()


async def test_protocol_errors_are_logged(emulator: Any, tfs: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The facade raises; the FUSE layer's decorator is what turns it into EIO — and a malformed answer from
    the service is worth a line in the log at the default level."""
    from amofs.fuse_ops import _errno

    emulator.seed_file("a.txt", b"a")
    p = P(tfs)
    tfs.tamper.on(is_listing, half_json)

    @_errno
    async def opendir() -> int:
        return await tfs.opendir(await p.ino("files"))

    import pyfuse3

    with caplog.at_level(logging.INFO, logger="amofs"), pytest.raises(pyfuse3.FUSEError) as exc:
        await opendir()
    assert exc.value.errno == errno.EIO
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING and "malformed JSON" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert isinstance(ProtocolError("x"), AmoError)


async def test_a_name_that_is_not_unicode_does_not_break_the_folder(emulator: Any, tmp_path: Path) -> None:
    """JSON may carry a lone surrogate ("\\ud800"): no Unix name can hold it. The file shows with U+FFFD in its
    name, can be read, and the rest of the folder lists as usual — also after a remount from the saved index."""
    emulator.seed_file("ok.txt", b"fine")
    uuid = emulator.seed_file("broken.txt", b"readable")

    def surrogate(req: httpx.Request, resp: httpx.Response, body: bytes) -> httpx.Response:
        body = body.replace(b'"broken"', b'"br\\ud800ken"')
        return httpx.Response(resp.status_code, headers={"content-type": "application/json"}, content=body)

    for _ in range(2):
        tamper = Tamper()
        tamper.on(lambda r: r.method == "GET" and r.url.path.startswith("/v1.0/files"), surrogate, times=1000)
        async with open_fs(emulator, tmp_path / "cache", transport=tamper) as fs:
            p = P(fs)
            listed = await p.ls("files")
            assert listed == ["br\ufffdken.txt", "ok.txt"]
            assert await p.read("files/br\ufffdken.txt") == b"readable"
            assert (await fs.getxattr(await p.ino("files/br\ufffdken.txt"), "user.amo.uuid")).decode() == uuid
            for name in listed:
                os.fsencode(name)  # what the FUSE layer does with every name
