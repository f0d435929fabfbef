"""Helpers for the emulator's own tests: a thin sync httpx wrapper that knows the emulator's hosts.

These tests talk plain HTTP (never amofs.api) so that the emulator is checked against the spec, not
against the client it serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from amofs.emulator.server import Emulator

TIMEOUT = httpx.Timeout(10.0)


class Http:
    """Requests to one emulator with a Bearer token (None: no Authorization header)."""

    def __init__(self, emu: Emulator, token: str | None = "main") -> None:
        self.emu = emu
        headers = {} if token is None else {"Authorization": f"Bearer {emu.token if token == 'main' else token}"}
        self.client = httpx.Client(timeout=TIMEOUT, headers=headers)
        self.bare = httpx.Client(timeout=TIMEOUT)  # no Authorization: for part and storage URLs

    def close(self) -> None:
        self.client.close()
        self.bare.close()

    def account(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.client.request(method, self.emu.account_url + path, **kw)

    def drive(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.client.request(method, self.emu.drive_url + path, **kw)

    def session(self, file_name: str, file_size: int, **fields: Any) -> httpx.Response:
        return self.drive("POST", "/v1.0/sessions", json={"file_name": file_name, "file_size": file_size, **fields})

    def upload(self, file_name: str, data: bytes, part_size: int | None = None, **fields: Any) -> dict[str, Any]:
        """Whole upload protocol; returns the final file model."""
        r = self.session(file_name, len(data), **fields)
        assert r.status_code == 200, r.text
        s = r.json()
        part = part_size or s["max_part_size"]
        url = s["upload_url"]
        offset = 0
        while True:
            r = self.bare.post(url, content=data[offset : offset + part])
            offset += part
            assert r.status_code in (200, 202), r.text
            body = r.json()
            if "next_url" not in body:
                assert r.status_code == 200
                return dict(body)
            url = body["next_url"]

    def files(self, query: str = "") -> list[dict[str, Any]]:
        r = self.drive("GET", "/v1.0/files" + (f"?{query}" if query else ""))
        if r.status_code == 204:
            return []
        assert r.status_code == 200, r.text
        return list(r.json()["_embedded"]["files"])


@pytest.fixture
def http(emulator: Emulator) -> Iterator[Http]:
    h = Http(emulator)
    yield h
    h.close()


@pytest.fixture
def http_for() -> Iterator[Any]:
    """``http_for(emu, token="main")`` → Http; all closed at teardown."""
    made: list[Http] = []

    def make(emu: Emulator, token: str | None = "main") -> Http:
        h = Http(emu, token)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
