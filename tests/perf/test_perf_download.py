"""HttpDownload's direct body reads (past httpcore once the headers are parsed) against the emulator: the same
bytes as the httpx path for every buffer size, Content-Length framing, drops reported after the bytes that
arrived, and no token on the storage host."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpcore
import pytest

from amofs.api.client import DIRECT_MIN, AmoClient, HttpDownload, _Direct
from amofs.errors import Unavailable

MiB = 1 << 20


@pytest.fixture
async def client(emulator: Any) -> AsyncIterator[AmoClient]:
    async with AmoClient(emulator.account_url, token=emulator.token, drive_url=emulator.drive_url, rate=0) as c:
        yield c


async def link(emulator: Any, client: AmoClient, data: bytes) -> str:
    f = await client.get_file(emulator.seed_file("d.bin", data))
    assert f.download_url is not None
    return f.download_url


@pytest.mark.parametrize("step", [997, 4096, 65536 + 3, MiB, 5 * MiB])
async def test_receive_into_fills_each_buffer_whole(emulator: Any, client: AmoClient, step: int) -> None:
    data = random.Random(step).randbytes(3 * MiB + 7)
    url = await link(emulator, client, data)
    d = await client.open_download(url)
    out = bytearray()
    while True:
        buf = bytearray(step)
        n = await d.receive_into(buf)
        if n == 0:
            break
        assert n == step or len(out) + n == len(data)  # whole buffers until the last
        out += buf[:n]
    await d.aclose()
    assert out == data


@pytest.mark.parametrize("step", [1000, MiB, 4 * MiB])
async def test_receive_gives_the_same_bytes(emulator: Any, client: AmoClient, step: int) -> None:
    data = random.Random(7).randbytes(2 * MiB + 1)
    url = await link(emulator, client, data)
    d = await client.open_download(url, start=100)
    assert d.start == 100 and d.length == len(data) - 100
    out = bytearray()
    while chunk := await d.receive(step):
        assert len(chunk) <= step
        out += chunk
    await d.aclose()
    assert out == data[100:]
    assert not [r for r in emulator.log if r.host == "storage" and r.auth]


async def test_a_large_body_is_read_directly(emulator: Any, client: AmoClient) -> None:
    data = random.Random(3).randbytes(DIRECT_MIN * 4)
    d = await client.open_download(await link(emulator, client, data))
    assert isinstance(d, HttpDownload)
    buf = bytearray(1000)
    assert await d.receive_into(buf) == 1000
    assert d._direct is not None  # past the first chunk, the rest comes straight from the socket
    await d.aclose()


async def test_a_drop_in_the_direct_phase_returns_what_arrived_then_unavailable(
    emulator: Any, client: AmoClient
) -> None:
    data = random.Random(4).randbytes(4 * MiB)
    url = await link(emulator, client, data)
    emulator.options.drop_download_after = 2 * MiB + 5
    d = await client.open_download(url)
    got = bytearray()
    with pytest.raises(Unavailable):
        while True:
            buf = bytearray(MiB)
            n = await d.receive_into(buf)
            if n == 0:
                break
            got += buf[:n]
    await d.aclose()
    assert 0 < len(got) <= 2 * MiB + 5 and got == data[: len(got)]
    d = await client.open_download(url, start=len(got))
    rest = bytearray()
    while chunk := await d.receive(MiB):
        rest += chunk
    await d.aclose()
    assert got + rest == data


async def test_a_range_at_the_end_is_empty(emulator: Any, client: AmoClient) -> None:
    data = b"x" * 1000
    d = await client.open_download(await link(emulator, client, data), start=1000)
    assert await d.receive_into(bytearray(10)) == 0
    await d.aclose()


class _TlsLikeStream(httpcore.AsyncNetworkStream):
    """A network stream with an ssl_object (as under TLS): the direct reader must use read(), not a socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._step = step

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        out, self._data = self._data[: min(max_bytes, self._step)], self._data[min(max_bytes, self._step) :]
        return out

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        raise AssertionError("nothing is written")

    async def aclose(self) -> None:
        pass

    def get_extra_info(self, info: str) -> Any:
        return object() if info == "ssl_object" else None


async def test_under_tls_the_direct_reader_uses_the_stream() -> None:
    data = random.Random(9).randbytes(100_000)
    direct = _Direct(_TlsLikeStream(data, 16384), timeout=5)
    out = bytearray()
    buf = bytearray(40_000)
    while n := await direct.read_into(memoryview(buf)):
        out += buf[:n]
    assert out == data
