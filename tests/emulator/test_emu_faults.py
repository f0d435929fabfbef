"""Rate limiting, blocking, injected failures, latency, malformed answers, and the /_emulator control API."""

from __future__ import annotations

import time
from typing import Any

import pytest


def _burst(http: Any, n: int) -> list[int]:
    return [http.drive("GET", "/v1.0/files").status_code for _ in range(n)]


def test_rate_limit_html_429_without_retry_after(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(rate_limit=3)  # burst 3, then one token every 1/3 s
    http = http_for(emu)
    assert _burst(http, 4) == [204, 204, 204, 429]
    r = http.drive("GET", "/v1.0/files")
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("text/html") and b"<html>" in r.content
    assert "retry-after" not in r.headers
    time.sleep(0.4)
    assert http.drive("GET", "/v1.0/files").status_code == 204


def test_rate_below_one_per_second(emulator_factory: Any, http_for: Any) -> None:
    http = http_for(emulator_factory(rate_limit=0.5))
    assert _burst(http, 2) == [204, 429]


def test_rate_limit_counts_every_host(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(rate_limit=3)
    http = http_for(emu)
    assert http.account("GET", "/api/v4/account").status_code == 200
    assert http.bare.get(emu.storage_url + "/x/y").status_code == 403
    assert http.drive("GET", "/v1.0/files").status_code == 204
    assert http.account("GET", "/api/v4/account").status_code == 429
    assert http.account("GET", "/_emulator/state").status_code == 200  # control: not limited


def test_rate_limit_json_with_retry_after(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(rate_limit=2, rate_limit_html=False)
    http = http_for(emu)
    _burst(http, 2)
    r = http.drive("GET", "/v1.0/files")
    assert r.status_code == 429 and r.json()["status"] == 429
    assert int(r.headers["retry-after"]) >= 1


def test_block_after_violations_until_unblock(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(rate_limit=1, block_after=2)
    http = http_for(emu)
    assert _burst(http, 3) == [204, 429, 429]
    r = http.drive("GET", "/v1.0/files")
    assert r.status_code == 403 and b"nginx" in r.content and r.headers["content-type"].startswith("text/html")
    time.sleep(1.1)
    assert http.account("GET", "/api/v4/account").status_code == 403  # still blocked, on every host
    state = http.account("GET", "/_emulator/state").json()
    assert state["blocked"] is True and state["violations"] == 2
    assert http.account("POST", "/_emulator/unblock").status_code == 204
    assert http.drive("GET", "/v1.0/files").status_code == 204
    emu.options.rate_limit = None
    assert _burst(http, 10) == [204] * 10


def test_fail_requests_by_path(http: Any) -> None:
    emu = http.emu
    uuid = emu.seed_file("a.txt", b"a")
    emu.options.fail_requests_match = r"^/v1\.0/files/"
    emu.options.fail_requests_status = 503
    emu.options.fail_requests = 2
    assert http.drive("GET", "/v1.0/files").status_code == 200  # does not match
    r = http.drive("GET", f"/v1.0/files/{uuid}")
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    emu.options.fail_requests_status = 500
    r = http.drive("PATCH", f"/v1.0/files/{uuid}", json={"name": "b"})
    assert r.status_code == 500 and r.json()["status"] == 500
    assert emu.file(uuid)["name"] == "a"  # failed before doing anything
    assert http.drive("GET", f"/v1.0/files/{uuid}").status_code == 200
    assert emu.options.fail_requests == 0


def test_latency(http: Any) -> None:
    http.emu.options.latency = 0.2
    t = time.monotonic()
    http.drive("GET", "/v1.0/files")
    assert time.monotonic() - t >= 0.2


@pytest.mark.parametrize("mode", ["json", "html"])
def test_garble_next(http: Any, mode: str) -> None:
    emu = http.emu
    uuid = emu.seed_file("a.txt", b"a")
    emu.options.garble_mode = mode  # type: ignore[assignment]
    emu.options.garble_match = "^/v1.0/files/"
    emu.options.garble_next = 1
    assert http.drive("GET", "/v1.0/files").json()["_count"] == 1  # not matching
    r = http.drive("GET", f"/v1.0/files/{uuid}")
    assert r.status_code == 200
    if mode == "json":
        assert r.headers["content-type"] == "application/json"
        with pytest.raises(ValueError):
            r.json()
    else:
        assert r.headers["content-type"].startswith("text/html") and b"<html" in r.content
    assert http.drive("GET", f"/v1.0/files/{uuid}").json()["uuid"] == uuid
    assert emu.options.garble_next == 0


def test_garble_html_replaces_even_empty_answers(http: Any) -> None:
    uuid = http.emu.seed_file("a.txt", b"a")
    http.emu.options.garble_mode = "html"
    http.emu.options.garble_next = 1
    r = http.drive("DELETE", "/v1.0/files", json=[{"uuid": uuid}])
    assert r.status_code == 200 and b"<html" in r.content
    assert http.emu.file(uuid)["is_trashed"] is True  # the operation itself happened


def test_control_endpoints(http: Any) -> None:
    emu = http.emu
    emu.seed_file("a.txt", b"a")
    http.drive("GET", "/v1.0/files")
    http.drive("GET", "/v1.0/nothing")
    log = http.account("GET", "/_emulator/log").json()
    assert [(e["host"], e["path"], e["status"]) for e in log["entries"]] == [
        ("drive", "/v1.0/files", 200),
        ("drive", "/v1.0/nothing", 404),
    ]
    assert log["next"] == 2 and log["entries"][0]["auth"] is True
    assert http.account("GET", "/_emulator/log?since=1").json()["entries"][0]["status"] == 404
    assert http.account("GET", "/_emulator/log?since=2").json() == {"next": 2, "entries": []}
    state = http.account("GET", "/_emulator/state").json()
    assert (state["files"], state["requests"], state["blocked"]) == (1, 2, False)
    r = http.account("POST", "/_emulator/options", json={"rate_limit": 100, "upload_host": "drive"})
    assert r.status_code == 200 and r.json()["rate_limit"] == 100.0
    assert (emu.options.rate_limit, emu.options.upload_host) == (100.0, "drive")
    for bad in ({"nope": 1}, {"rate_limit": "fast"}, {"upload_host": "moon"}, {"range_support": 1}):
        assert http.account("POST", "/_emulator/options", json=bad).status_code == 400, bad
    assert http.account("GET", "/_emulator/options").json()["upload_host"] == "drive"
    assert http.account("POST", "/_emulator/reset-log").status_code == 204
    assert emu.log == [] and http.account("GET", "/_emulator/log").json()["entries"] == []


def test_python_log_api(http: Any) -> None:
    emu = http.emu
    http.drive("GET", "/v1.0/files?limit=5")
    http.account("GET", "/api/v4/account")
    (first, second) = emu.log
    assert (first.host, first.method, first.path, first.query, first.status) == (
        "drive",
        "GET",
        "/v1.0/files",
        "limit=5",
        204,
    )
    assert second.host == "account" and second.bytes_out > 0 and second.auth
    assert emu.count() == 2 and emu.count(host="drive") == 1 and emu.count(status=200) == 1
    assert emu.count(method="get", path_prefix="/api/v4") == 1
    emu.reset_log()
    assert emu.count() == 0
