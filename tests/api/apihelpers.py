"""Helpers for AmoClient tests against ``httpx.MockTransport`` (no network, no patching of functions).

``mock_api(handler, **client_kwargs)`` builds an AmoClient whose transport calls ``handler(request)`` (sync
or async, returning an ``httpx.Response``) and records every request in ``client_requests``. The account host
is ``ACCOUNT``, the drive host ``DRIVE``; the token is ``TOKEN``. Defaults keep tests fast: no rate limit
(``rate=0``), a seeded jitter. Clients are closed at teardown.
"""

from __future__ import annotations

import inspect
import json
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from amofs.api.client import AmoClient

ACCOUNT = "https://example.amocrm.test"
DRIVE = "https://drive-b.amocrm.test"
UPLOAD = "https://upload.amocrm.test"
STORAGE = "https://storage.s3.test"
TOKEN = "tok-abc"
FIXTURES = Path(__file__).parent.parent / "fixtures"

Handler = Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def jresp(status: int, data: object, **kw: Any) -> httpx.Response:
    return httpx.Response(status, json=data, **kw)


def problem(status: int, detail: str = "problem") -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps({"title": "Err", "status": status, "detail": detail}).encode(),
        headers={"Content-Type": "application/problem+json"},
    )


def html(status: int, text: str = "<html><body><h1>403 Forbidden</h1>nginx</body></html>") -> httpx.Response:
    return httpx.Response(status, content=text.encode(), headers={"Content-Type": "text/html"})


def file_json(uuid: str = "u-1", name: str = "doc", ext: str = "txt", size: int = 3) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "version_uuid": f"v-{uuid}",
        "name": name,
        "metadata": {"extension": ext, "mime_type": "text/plain"},
        "size": size,
        "type": "file",
        "is_trashed": False,
        "created_at": 1700000000,
        "updated_at": 1700000001,
        "_links": {"download": {"href": f"{DRIVE}/download/acc/{uuid}/{name}.{ext}"}},
    }


class Recorder:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        out = self.handler(request)
        if inspect.isawaitable(out):
            out = await out
        assert isinstance(out, httpx.Response)
        return out


class MockApi:
    def __init__(self) -> None:
        self.clients: list[AmoClient] = []
        self.recorder: Recorder | None = None

    def __call__(self, handler: Handler, **kw: Any) -> AmoClient:
        rec = Recorder(handler)
        self.recorder = rec
        kw.setdefault("drive_url", DRIVE)
        kw.setdefault("rate", 0)
        kw.setdefault("rng", random.Random(1))
        if "auth" not in kw:
            kw.setdefault("token", TOKEN)
        client = AmoClient(ACCOUNT, transport=httpx.MockTransport(rec), **kw)
        client.requests_seen = rec.requests  # type: ignore[attr-defined]
        self.clients.append(client)
        return client


def seen(client: AmoClient) -> list[httpx.Request]:
    reqs: list[httpx.Request] = client.requests_seen  # type: ignore[attr-defined]
    return reqs
