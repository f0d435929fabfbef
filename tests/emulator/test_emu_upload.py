"""Upload sessions and parts: POST /v1.0/sessions, POST upload_url/next_url."""

from __future__ import annotations

import os
import socket
import time
import tracemalloc
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

MODEL_KEYS = {
    "_links",
    "created_at",
    "created_by",
    "deleted_at",
    "deleted_by",
    "has_multiple_versions",
    "is_trashed",
    "metadata",
    "name",
    "previews",
    "sanitized_name",
    "size",
    "source_id",
    "type",
    "updated_at",
    "updated_by",
    "uuid",
    "version_uuid",
}


def test_session_fields_and_upload_host(http: Any) -> None:
    r = http.session("contract.pdf", 10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    s = r.json()
    assert set(s) == {"session_id", "upload_url", "max_file_size", "max_part_size"}
    assert (s["max_file_size"], s["max_part_size"]) == (314572800, 524288)
    assert s["upload_url"].startswith(http.emu.upload_url + "/v1.0/sessions/upload/")
    assert not s["upload_url"].startswith(http.emu.drive_url)
    claims = jwt.decode(s["upload_url"].rsplit("/", 1)[1], options={"verify_signature": False})
    assert (claims["session_id"], claims["part_num"]) == (s["session_id"], 1)
    assert http.emu.sessions_open() == 1


def test_multipart_upload_202_then_model(http: Any) -> None:
    data = os.urandom(1_100_000)
    s = http.session("contract.pdf", len(data)).json()
    r1 = http.bare.post(s["upload_url"], content=data[:524288])
    assert r1.status_code == 202
    assert set(r1.json()) == {"session_id", "next_url"}
    assert http.files() == []  # nothing visible before the last part
    r2 = http.bare.post(r1.json()["next_url"], content=data[524288:1048576])
    assert r2.status_code == 202
    r3 = http.bare.post(r2.json()["next_url"], content=data[1048576:])
    assert r3.status_code == 200
    model = r3.json()
    assert set(model) == MODEL_KEYS | {"session_id"} and model["session_id"] == s["session_id"]
    assert (model["name"], model["metadata"]) == ("contract", {"extension": "pdf", "mime_type": "application/pdf"})
    assert (model["size"], model["type"], model["is_trashed"]) == (len(data), "document", False)
    assert model["created_by"] == {"type": "internal", "id": http.emu.options.user_id}
    assert model["_links"]["self"]["href"] == f"{http.emu.drive_url}/v1.0/files/{model['uuid']}"
    assert http.emu.content(model["uuid"]) == data
    assert http.emu.sessions_open() == 0
    parts = [r for r in http.emu.log if r.host == "upload"]
    assert [r.status for r in parts] == [202, 202, 200] and not any(r.auth for r in parts)
    assert sum(r.bytes_in for r in parts) == len(data)


def test_part_urls_single_use_and_in_order(http: Any) -> None:
    s = http.session("a.bin", 30).json()
    first = s["upload_url"]
    r = http.bare.post(first, content=b"x" * 10)
    assert r.status_code == 202
    assert http.bare.post(first, content=b"x" * 10).status_code == 404  # reuse
    second = r.json()["next_url"]
    forged = jwt.decode(second.rsplit("/", 1)[1], options={"verify_signature": False})
    forged["part_num"] = 3
    bad = second.rsplit("/", 1)[0] + "/" + jwt.encode(forged, "not-the-emulator-secret-" * 2, algorithm="HS256")
    assert http.bare.post(bad, content=b"x" * 10).status_code == 404  # out of order / not signed by us
    r = http.bare.post(second, content=b"y" * 10)
    assert r.status_code == 202
    assert http.bare.post(r.json()["next_url"], content=b"z" * 10).status_code == 200
    assert http.bare.post(r.json()["next_url"], content=b"z").status_code == 404  # session completed
    assert http.emu.content(http.emu.files()[0]["uuid"]) == b"x" * 10 + b"y" * 10 + b"z" * 10


def test_part_errors(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(max_part_size=100)
    http = http_for(emu)
    s = http.session("a.bin", 150).json()
    assert s["max_part_size"] == 100
    assert http.bare.post(s["upload_url"], content=b"x" * 101).status_code == 400  # part too large
    assert http.bare.post(s["upload_url"], content=b"").status_code == 400  # empty part
    r = http.bare.post(s["upload_url"], content=b"x" * 100)  # the URL survived the refusals
    assert r.status_code == 202
    over = http.bare.post(r.json()["next_url"], content=b"x" * 60)
    assert over.status_code == 400 and "file_size" in over.json()["detail"]
    assert http.bare.post(r.json()["next_url"], content=b"x" * 50).status_code == 200
    bogus = emu.upload_url + "/v1.0/sessions/upload/not-a-token"
    assert http.bare.post(bogus, content=b"x").status_code == 404


def test_chunked_part_body(http: Any) -> None:
    s = http.session("c.txt", 12).json()
    r = http.bare.post(s["upload_url"], content=iter([b"hello ", b"world!"]))  # Transfer-Encoding: chunked
    assert r.status_code == 200
    assert http.emu.content(r.json()["uuid"]) == b"hello world!"


def test_part_on_wrong_host_is_404(http: Any) -> None:
    s = http.session("a.txt", 1).json()
    on_drive = s["upload_url"].replace(http.emu.upload_url, http.emu.drive_url)
    assert http.bare.post(on_drive, content=b"x").status_code == 404


def test_upload_host_drive_and_part_status_200(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(upload_host="drive", part_status=200, max_part_size=4)
    http = http_for(emu)
    s = http.session("d.txt", 6).json()
    assert s["upload_url"].startswith(emu.drive_url + "/v1.0/sessions/upload/")
    r = http.bare.post(s["upload_url"], content=b"abcd")
    assert r.status_code == 200 and "next_url" in r.json()
    assert r.json()["next_url"].startswith(emu.drive_url)
    assert http.bare.post(r.json()["next_url"], content=b"ef").status_code == 200


def test_empty_file_one_empty_part(http: Any) -> None:
    s = http.session("empty.txt", 0).json()
    r = http.bare.post(s["upload_url"], content=b"")
    assert r.status_code == 200
    assert (r.json()["size"], r.json()["name"]) == (0, "empty")
    assert http.emu.content(r.json()["uuid"]) == b""


@pytest.mark.parametrize(
    "body",
    [
        {"file_size": 1},
        {"file_name": "", "file_size": 1},
        {"file_name": "a.txt"},
        {"file_name": "a.txt", "file_size": -1},
        {"file_name": "a.txt", "file_size": "1"},
        {"file_name": "a.txt", "file_size": True},
        {"file_name": "a.txt", "file_size": 1, "with_preview": "yes"},
        {"file_name": "a.txt", "file_size": 1, "content_type": 5},
    ],
)
def test_session_bad_fields(http: Any, body: dict[str, Any]) -> None:
    r = http.drive("POST", "/v1.0/sessions", json=body)
    assert r.status_code == 400
    assert set(r.json()) >= {"title", "type", "status", "detail"}


def test_session_not_json(http: Any) -> None:
    r = http.drive("POST", "/v1.0/sessions", content=b"file_name=a", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400


def test_session_file_size_over_limit_and_unknown_uuid(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(max_file_size=1000)
    http = http_for(emu)
    r = http.session("big.bin", 1001)
    assert r.status_code == 400 and "1000" in r.json()["detail"]
    assert http.session("ok.bin", 1000).status_code == 200
    r = http.session("v.bin", 1, file_uuid="00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404


def test_new_version_with_file_uuid(http: Any) -> None:
    first = http.upload("report.txt", b"v1")
    second = http.upload("report.md", b"version 2", file_uuid=first["uuid"])
    assert second["uuid"] == first["uuid"] and second["version_uuid"] != first["version_uuid"]
    assert second["has_multiple_versions"] is True
    assert (second["name"], second["metadata"]["extension"], second["size"]) == ("report", "md", 9)
    assert second["updated_at"] >= first["updated_at"]
    assert http.emu.content(first["uuid"]) == b"version 2"
    assert http.emu.content(first["uuid"], first["version_uuid"]) == b"v1"
    assert [f["uuid"] for f in http.files()] == [first["uuid"]]


def test_content_type_and_mime_guess(http: Any) -> None:
    assert http.upload("pic.PNG", b"x")["metadata"] == {"extension": "PNG", "mime_type": "image/png"}
    assert http.upload("pic.png", b"x")["type"] == "image"
    assert http.upload("x.bin", b"x", content_type="text/plain")["metadata"]["mime_type"] == "text/plain"
    assert http.upload(".env", b"x")["metadata"]["extension"] == ""


def test_fail_parts_stores_nothing_and_keeps_url(http: Any) -> None:
    http.emu.options.fail_parts = 2
    s = http.session("f.txt", 3).json()
    assert http.bare.post(s["upload_url"], content=b"abc").status_code == 500
    assert http.bare.post(s["upload_url"], content=b"abc").status_code == 500
    r = http.bare.post(s["upload_url"], content=b"abc")
    assert r.status_code == 200 and http.emu.options.fail_parts == 0
    assert http.emu.content(r.json()["uuid"]) == b"abc"


def test_interrupted_part_leaves_nothing(http: Any) -> None:
    """A client that hangs up mid-part: the part is discarded, the same URL takes it again."""
    s = http.session("i.txt", 10).json()
    url = urlsplit(s["upload_url"])
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(f"POST {url.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc".encode())
    with httpx.Client(timeout=10) as c:
        for _ in range(50):  # the server notices the hang-up asynchronously
            if any(r.status == 499 for r in http.emu.log):
                break
            time.sleep(0.02)
        r = c.post(s["upload_url"], content=b"0123456789")
    assert r.status_code == 200
    assert http.emu.content(r.json()["uuid"]) == b"0123456789"


def test_large_part_and_download_stream(emulator_factory: Any, http_for: Any) -> None:
    """Neither direction holds the file in memory: 16 MiB in one part and back out, peak well below that."""
    size = 16 << 20
    emu = emulator_factory(max_part_size=size)
    http = http_for(emu)
    s = http.session("big.bin", size).json()
    block = os.urandom(1 << 16)

    def body() -> Any:
        for _ in range(size // len(block)):
            yield block

    tracemalloc.start()
    try:
        r = http.bare.post(s["upload_url"], content=body(), headers={"Content-Length": str(size)})
        assert r.status_code == 200
        got = 0
        with http.client.stream("GET", r.json()["_links"]["download"]["href"], follow_redirects=True) as d:
            for chunk in d.iter_raw(1 << 16):
                got += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == size
    assert peak < 3 << 20, peak
