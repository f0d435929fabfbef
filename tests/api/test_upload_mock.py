"""upload_file against a small in-memory upload service on httpx.MockTransport."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
from apihelpers import DRIVE, UPLOAD, MockApi, file_json, jresp, problem, seen

from amofs.api.upload import upload_file
from amofs.errors import AmoError, SessionGone, TooLarge, Unavailable

pytestmark = pytest.mark.timeout(30)


class FakeUploads:
    """Sessions whose part URLs live on UPLOAD and are single-use; the file appears only at the last part."""

    def __init__(self, max_part: int = 4, max_file: int = 1000, part_status: int = 202) -> None:
        self.max_part = max_part
        self.max_file = max_file
        self.part_status = part_status
        self.sessions: dict[int, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self.fault: Callable[[httpx.Request, dict[str, Any]], httpx.Response | None] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1.0/sessions":
            body = json.loads(request.content)
            sid = len(self.sessions) + 1
            self.sessions[sid] = {"size": body["file_size"], "data": b"", "part": 1, "name": body["file_name"]}
            return jresp(
                200,
                {
                    "session_id": sid,
                    "upload_url": f"{UPLOAD}/up/{sid}/1",
                    "max_file_size": self.max_file,
                    "max_part_size": self.max_part,
                },
            )
        assert request.url.host == "upload.amocrm.test"
        _, _, sid_s, part_s = request.url.path.split("/")
        sess = self.sessions.get(int(sid_s))
        if sess is None or int(part_s) != sess["part"]:
            return problem(404, "session not found")
        if self.fault is not None and (resp := self.fault(request, sess)) is not None:
            return resp
        assert len(request.content) <= self.max_part
        sess["data"] += request.content
        sess["part"] += 1
        if len(sess["data"]) >= sess["size"]:
            uuid = f"file-{sid_s}"
            self.files[uuid] = sess["data"]
            return jresp(200, file_json(uuid, size=len(sess["data"])))
        return jresp(self.part_status, {"session_id": int(sid_s), "next_url": f"{UPLOAD}/up/{sid_s}/{sess['part']}"})


@pytest.mark.parametrize("part_status", [200, 202])
async def test_parts_in_order_along_next_url(mock_api: MockApi, part_status: int) -> None:
    svc = FakeUploads(part_status=part_status)
    client = mock_api(svc)
    data = b"0123456789"
    progress: list[int] = []
    f = await upload_file(client, io.BytesIO(data), "a.txt", len(data), progress=progress.append)
    assert svc.files[f.uuid] == data
    parts = [r for r in seen(client) if r.url.host == "upload.amocrm.test"]
    assert [r.url.path for r in parts] == ["/up/1/1", "/up/1/2", "/up/1/3"]
    assert [len(r.content) for r in parts] == [4, 4, 2]
    assert progress == [4, 8, 10]
    session_req = seen(client)[0]
    assert str(session_req.url) == f"{DRIVE}/v1.0/sessions"
    assert json.loads(session_req.content) == {"file_name": "a.txt", "file_size": 10}
    assert all("Authorization" not in r.headers for r in parts)  # another host: the URL's token suffices


async def test_new_version_passes_file_uuid(mock_api: MockApi) -> None:
    svc = FakeUploads()
    client = mock_api(svc)
    await upload_file(client, io.BytesIO(b"abc"), "a.txt", 3, file_uuid="F1", content_type="text/plain")
    body = json.loads(seen(client)[0].content)
    assert body == {"file_name": "a.txt", "file_size": 3, "file_uuid": "F1", "content_type": "text/plain"}


async def test_too_large_from_session_reply_sends_no_part(mock_api: MockApi) -> None:
    svc = FakeUploads(max_file=5)
    client = mock_api(svc)
    with pytest.raises(TooLarge):
        await upload_file(client, io.BytesIO(b"0123456789"), "a.txt", 10)
    assert [r.url.path for r in seen(client)] == ["/v1.0/sessions"]
    # the limit is now known: the next over-size upload sends nothing at all
    with pytest.raises(TooLarge):
        await upload_file(client, io.BytesIO(b"0123456789"), "b.txt", 10)
    assert len(seen(client)) == 1


async def test_session_gone_restarts_from_zero(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    svc = FakeUploads()
    gone = {"left": 1}

    def fault(request: httpx.Request, sess: dict[str, Any]) -> httpx.Response | None:
        if sess["part"] == 2 and gone["left"]:
            gone["left"] -= 1
            return problem(404, "session expired")
        return None

    svc.fault = fault
    client = mock_api(svc)
    data = b"abcdefghij"
    f = await upload_file(client, io.BytesIO(data), "a.txt", len(data))
    assert svc.files[f.uuid] == data
    assert len(svc.sessions) == 2
    assert f.uuid == "file-2"
    assert "file-1" not in svc.files  # the abandoned session never became a file


async def test_lost_intermediate_part_restarts(mock_api: MockApi) -> None:
    svc = FakeUploads()
    lost = {"left": 1}

    def fault(request: httpx.Request, sess: dict[str, Any]) -> httpx.Response | None:
        if sess["part"] == 2 and lost["left"]:
            lost["left"] -= 1
            raise httpx.ReadError("connection reset", request=request)
        return None

    svc.fault = fault
    client = mock_api(svc)
    f = await upload_file(client, io.BytesIO(b"abcdefghij"), "a.txt", 10)
    assert svc.files[f.uuid] == b"abcdefghij"
    assert len(svc.sessions) == 2


async def test_lost_last_part_is_not_retried(mock_api: MockApi) -> None:
    svc = FakeUploads()

    def fault(request: httpx.Request, sess: dict[str, Any]) -> httpx.Response | None:
        if sess["part"] == 3:
            raise httpx.ReadError("connection reset", request=request)
        return None

    svc.fault = fault
    client = mock_api(svc)
    with pytest.raises(Unavailable, match="outcome is unknown"):
        await upload_file(client, io.BytesIO(b"abcdefghij"), "a.txt", 10)
    assert len(svc.sessions) == 1


async def test_restarts_are_bounded(mock_api: MockApi) -> None:
    svc = FakeUploads()
    svc.fault = lambda request, sess: problem(404, "gone") if sess["part"] == 2 else None
    client = mock_api(svc)
    with pytest.raises(SessionGone):
        await upload_file(client, io.BytesIO(b"abcdefghij"), "a.txt", 10, max_restarts=2)
    assert len(svc.sessions) == 3


async def test_part_500_then_success(mock_api: MockApi, autojump_clock: trio.testing.MockClock) -> None:
    svc = FakeUploads()
    fails = {"left": 2}

    def fault(request: httpx.Request, sess: dict[str, Any]) -> httpx.Response | None:
        if sess["part"] == 2 and fails["left"]:
            fails["left"] -= 1
            return problem(500, "try again")
        return None

    svc.fault = fault
    client = mock_api(svc)
    f = await upload_file(client, io.BytesIO(b"abcdefghij"), "a.txt", 10)
    assert svc.files[f.uuid] == b"abcdefghij"
    assert len(svc.sessions) == 1
    parts = [r.url.path for r in seen(client) if r.url.host == "upload.amocrm.test"]
    assert parts == ["/up/1/1", "/up/1/2", "/up/1/2", "/up/1/2", "/up/1/3"]


async def test_short_source_fails(mock_api: MockApi) -> None:
    client = mock_api(FakeUploads())
    with pytest.raises(AmoError, match="local file"):
        await upload_file(client, io.BytesIO(b"abc"), "a.txt", 10)


async def test_empty_file_sends_one_empty_part(mock_api: MockApi) -> None:
    svc = FakeUploads()
    client = mock_api(svc)
    f = await upload_file(client, io.BytesIO(b""), "empty.txt", 0)
    assert svc.files[f.uuid] == b""
    parts = [r for r in seen(client) if r.url.host == "upload.amocrm.test"]
    assert len(parts) == 1 and parts[0].content == b""
