"""Downloads: 302 to the signed storage host, direct serving, Range/206/416, dropped connections."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest


def _link(http: Any, name: str, data: bytes, version: bool = False) -> tuple[str, str]:
    uuid = http.emu.seed_file(name, data)
    links = http.emu.file(uuid)["_links"]
    return uuid, links["download_version" if version else "download"]["href"]


def test_redirect_to_storage_without_auth(http: Any) -> None:
    data = os.urandom(100_000)
    _, url = _link(http, "Фото объекта.png", data)
    r = http.client.get(url)
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith(http.emu.storage_url + "/")
    s = http.bare.get(location)
    assert s.status_code == 200 and s.content == data
    assert s.headers["content-type"] == "image/png" and s.headers["content-length"] == str(len(data))
    assert s.headers["accept-ranges"] == "bytes"
    leaked = http.client.get(location)  # the token sent to the storage host
    assert leaked.status_code == 400 and b"InvalidArgument" in leaked.content
    storage = [r for r in http.emu.log if r.host == "storage"]
    assert [(r.status, r.auth) for r in storage] == [(200, False), (400, True)]
    assert storage[0].bytes_out == len(data)


def test_httpx_follow_redirects_drops_authorization(http: Any) -> None:
    """What a well-behaved client gets: httpx drops Authorization on the cross-origin redirect."""
    _, url = _link(http, "a.txt", b"abc")
    r = http.client.get(url, follow_redirects=True)
    assert r.status_code == 200 and r.content == b"abc"


def test_storage_signature_checked(http: Any) -> None:
    _, url = _link(http, "a.txt", b"abc")
    location = http.client.get(url).headers["location"]
    tampered = location.replace("X-Amz-Signature=", "X-Amz-Signature=x")
    assert http.bare.get(tampered).status_code == 403
    other_uuid = http.emu.seed_file("b.txt", b"other")
    other_version = http.emu.file(other_uuid)["version_uuid"]
    path_swapped = location.replace(location.split("/")[3], other_version)
    assert http.bare.get(path_swapped).status_code == 403


def test_direct_downloads(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(redirect_downloads=False)
    http = http_for(emu)
    uuid, url = _link(http, "a.txt", b"hello")
    r = http.client.get(url)
    assert r.status_code == 200 and r.content == b"hello"
    assert r.headers["content-length"] == "5"
    assert http.bare.get(url).status_code == 401  # the drive host wants the token
    v2 = emu.add_version(uuid, "a.txt", b"second")
    assert http.client.get(url).content == b"second"  # the plain link follows the active version
    old = emu.versions(uuid)[1]["_links"]["download"]["href"]
    assert http.client.get(old).content == b"hello"
    assert emu.file(uuid)["_links"]["download_version"]["href"].split("/")[-2] == v2


def test_download_errors(http: Any) -> None:
    uuid, url = _link(http, "a.txt", b"x")
    prefix = f"{http.emu.drive_url}/download/{http.emu.account_uuid}"
    assert http.client.get(f"{prefix}/00000000-0000-4000-8000-000000000000/a.txt").status_code == 404
    other_acc = url.replace(http.emu.account_uuid, "aff5603a-28b1-4c17-8e98-16e473b323b3")
    assert http.client.get(other_acc).status_code == 404
    assert http.client.get(f"{prefix}/{uuid}/00000000-0000-4000-8000-000000000000/a.txt").status_code == 404
    assert http.client.get(f"{prefix}/{uuid}/any-name-at-all").status_code == 302  # the name is decoration


@pytest.mark.parametrize("redirect", [True, False])
def test_ranges(emulator_factory: Any, http_for: Any, redirect: bool) -> None:
    emu = emulator_factory(redirect_downloads=redirect)
    http = http_for(emu)
    data = bytes(range(256)) * 4
    _, url = _link(http, "r.bin", data)
    target = http.client.get(url).headers["location"] if redirect else url
    get = http.bare.get if redirect else http.client.get

    def rng(spec: str) -> httpx.Response:
        return get(target, headers={"Range": spec})

    r = rng("bytes=10-19")
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}" and r.headers["content-length"] == "10"
    assert rng("bytes=1000-").content == data[1000:]
    assert rng("bytes=-24").content == data[-24:]
    assert rng("bytes=1020-5000").content == data[1020:]
    r = rng("bytes=1024-")
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */1024"
    assert rng("bytes=5-2").status_code == 200  # invalid: ignored
    assert rng("bytes=0-1,5-6").status_code == 200  # several ranges: whole body
    h = http.bare.head(target) if redirect else http.client.head(target)
    assert h.status_code == 200 and h.headers["content-length"] == "1024" and h.content == b""


def test_range_support_off(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(range_support=False)
    http = http_for(emu)
    _, url = _link(http, "r.bin", b"0123456789")
    r = http.client.get(url, headers={"Range": "bytes=2-3"}, follow_redirects=True)
    assert r.status_code == 200 and r.content == b"0123456789" and "accept-ranges" not in r.headers


def test_empty_file_range_unsatisfiable(http: Any) -> None:
    _, url = _link(http, "empty.txt", b"")
    r = http.client.get(url, follow_redirects=True)
    assert r.status_code == 200 and r.content == b""
    assert http.client.get(url, headers={"Range": "bytes=0-"}, follow_redirects=True).status_code == 416


def test_drop_download_after(http: Any) -> None:
    data = os.urandom(200_000)
    _, url = _link(http, "big.bin", data)
    http.emu.options.drop_download_after = 1000
    http.emu.options.drop_downloads = 2
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            http.client.get(url, follow_redirects=True)
    assert http.emu.options.drop_download_after is None and http.emu.options.drop_downloads == 1
    assert http.client.get(url, follow_redirects=True).content == data
    cut = [r for r in http.emu.log if r.host == "storage"]
    assert [r.bytes_out for r in cut] == [1000, 1000, len(data)]


def test_download_of_trashed_file_works(http: Any) -> None:
    uuid = http.emu.seed_file("t.txt", b"trash", trashed=True)
    url = http.emu.file(uuid)["_links"]["download"]["href"]
    assert http.client.get(url, follow_redirects=True).content == b"trash"


def test_streams_large_download(http: Any) -> None:
    data = os.urandom(8 << 20)
    _, url = _link(http, "large.bin", data)
    got = bytearray()
    with http.client.stream("GET", url, follow_redirects=True) as r:
        for chunk in r.iter_bytes():
            got += chunk
    assert got == data
