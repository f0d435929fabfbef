"""Account host: GET /api/v4/account and the entity ↔ file links."""

from __future__ import annotations

from typing import Any

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def test_account_drive_url(http: Any) -> None:
    r = http.account("GET", "/api/v4/account?with=drive_url")
    assert r.status_code == 200 and r.headers["content-type"] == "application/hal+json"
    body = r.json()
    assert body["drive_url"] == http.emu.drive_url
    assert body["id"] == http.emu.options.account_id and body["subdomain"] == "example"
    assert "drive_url" not in http.account("GET", "/api/v4/account").json()
    assert http.account("GET", "/api/v4/account?with=amojo_id,drive_url").json()["drive_url"] == http.emu.drive_url


def test_entity_files_list_link_unlink(http: Any) -> None:
    emu = http.emu
    emu.add_entity("contacts", 5, "Иван Петров")
    path = "/api/v4/contacts/5/files"
    assert http.account("GET", path).status_code == 204
    a = emu.seed_file("a.txt", b"a", linked=())
    b = emu.seed_file("b.txt", b"b", linked=())
    r = http.account("PUT", path, json=[{"file_uuid": a}, {"file_uuid": b}])
    assert r.status_code == 202 and r.content == b""
    assert http.account("PUT", path, json=[{"file_uuid": a}]).status_code == 202  # idempotent
    r = http.account("GET", path)
    assert r.status_code == 200 and r.headers["content-type"] == "application/hal+json"
    files = r.json()["_embedded"]["files"]
    assert [f["file_uuid"] for f in files] == [b, a]  # highest link id first
    assert files[0]["id"] > files[1]["id"]
    assert r.json()["_links"]["self"]["href"] == f"{emu.account_url}{path}?limit=50"
    assert emu.links("contacts", 5) == [a, b]
    r = http.account("GET", f"{path}?before_id={files[0]['id']}")
    assert [f["file_uuid"] for f in r.json()["_embedded"]["files"]] == [a]
    assert http.account("GET", f"{path}?before_id={files[1]['id']}").status_code == 204
    assert http.account("DELETE", path, json=[{"file_uuid": a}]).status_code == 202
    assert emu.links("contacts", 5) == [b]
    assert http.account("DELETE", path, json=[{"file_uuid": a}]).status_code == 202  # not linked: no-op


def test_entity_paging_with_limit(http: Any) -> None:
    uuids = http.emu.seed_many([(f"f{i}.txt", b"x") for i in range(5)])  # linked to leads 1 by default
    got: list[str] = []
    url: str | None = f"{http.emu.account_url}/api/v4/leads/1/files?limit=2"
    while url:
        body = http.client.get(url).json()
        got += [f["file_uuid"] for f in body["_embedded"]["files"]]
        url = body["_links"].get("next", {}).get("href")
    assert got == list(reversed(uuids))
    assert http.account("GET", "/api/v4/leads/1/files?limit=251").status_code == 400
    assert http.account("GET", "/api/v4/leads/1/files?before_id=x").status_code == 400


def test_entity_errors(http: Any) -> None:
    uuid = http.emu.seed_file("a.txt", b"a")
    assert http.account("GET", "/api/v4/leads/999/files").status_code == 404
    r = http.account("PUT", "/api/v4/customers/999/files", json=[{"file_uuid": uuid}])
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = http.account("PUT", "/api/v4/leads/1/files", json=[{"file_uuid": UNKNOWN}])
    assert r.status_code == 400 and UNKNOWN in r.json()["detail"]
    for body in ([], [{"uuid": uuid}], {"file_uuid": uuid}):
        assert http.account("PUT", "/api/v4/leads/1/files", json=body).status_code == 400
    assert http.account("GET", "/api/v4/tasks/1/files").status_code == 404


def test_trashed_files_hidden_from_entity_list(http: Any) -> None:
    uuid = http.emu.seed_file("a.txt", b"a")
    http.drive("DELETE", "/v1.0/files", json=[{"uuid": uuid}])
    assert http.account("GET", "/api/v4/leads/1/files").status_code == 204
    assert http.emu.links("leads", 1) == [uuid]  # the link itself stays
    http.drive("POST", "/v1.0/files/restore", json=[{"uuid": uuid}])
    assert http.account("GET", "/api/v4/leads/1/files").status_code == 200


def test_file_links(http: Any) -> None:
    http.emu.add_entity("companies", 3001, "ООО «Ромашка»")
    uuid = http.emu.seed_file("a.txt", b"a", linked=(("leads", 1001), ("companies", 3001)))
    r = http.account("GET", f"/api/v4/files/{uuid}/links")
    assert r.status_code == 200
    body = r.json()
    assert body["file_uuid"] == uuid
    assert [(e["entity_type"], e["id"], e["name"]) for e in body["entities"]] == [
        ("leads", 1001, "Сделка #1001"),
        ("companies", 3001, "ООО «Ромашка»"),
    ]
    assert http.account("GET", f"/api/v4/files/{UNKNOWN}/links").status_code == 400
