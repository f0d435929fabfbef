"""GET/PATCH/DELETE /v1.0/files…, restore, versions, stats."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

UNKNOWN = "00000000-0000-4000-8000-000000000000"


# -- listing ------------------------------------------------------------------------------------------------


def test_list_empty_is_204(http: Any) -> None:
    r = http.drive("GET", "/v1.0/files")
    assert r.status_code == 204 and r.content == b""


def test_list_shape_and_order(http: Any) -> None:
    a = http.emu.seed_file("a.txt", b"a")
    b = http.emu.seed_file("b.txt", b"bb")
    r = http.drive("GET", "/v1.0/files")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["_count"] == 2
    assert [f["uuid"] for f in body["_embedded"]["files"]] == [b, a]  # newest first
    assert body["_links"]["self"]["href"].startswith(http.emu.drive_url + "/v1.0/files?")
    assert "next" not in body["_links"]


def test_paging_with_next_links(http: Any) -> None:
    uuids = http.emu.seed_many([(f"f{i:03}.txt", b"x") for i in range(12)])
    seen: list[str] = []
    url = http.emu.drive_url + "/v1.0/files?filter%5Bextensions%5D%5B%5D=txt&limit=5"
    pages = 0
    while url:
        r = http.client.get(url)
        assert r.status_code == 200
        body = r.json()
        pages += 1
        assert body["_count"] == len(body["_embedded"]["files"])
        seen += [f["uuid"] for f in body["_embedded"]["files"]]
        nxt = body["_links"].get("next")
        url = nxt["href"] if nxt else None
        if url:
            assert url.startswith(http.emu.drive_url)
            assert parse_qs(urlsplit(url).query)["filter[extensions][]"] == ["txt"]
    assert pages == 3 and seen == list(reversed(uuids))
    assert http.drive("GET", "/v1.0/files?limit=5&page=4").status_code == 204


def test_plain_pages_are_offset_pages_and_shift_after_a_deletion(http: Any) -> None:
    """The unfiltered list pages by offset (kept in memory between writes, for speed): a file deleted
    between two pages moves the next page's first file onto the page already read, as offset paging does."""
    uuids = list(reversed(http.emu.seed_many([(f"f{i:03}.txt", b"x") for i in range(12)])))  # newest first

    def page(n: int) -> list[str]:
        return [f["uuid"] for f in http.drive("GET", f"/v1.0/files?limit=5&page={n}").json()["_embedded"]["files"]]

    assert page(1) == uuids[:5] and page(2) == uuids[5:10] and page(3) == uuids[10:]
    r = http.drive("DELETE", "/v1.0/files", json=[{"uuid": uuids[0]}])
    assert r.status_code == 204
    assert page(2) == uuids[6:11]  # uuids[5] shifted onto page 1
    trashed = http.drive("GET", "/v1.0/files?filter%5Bdeleted%5D=1").json()["_embedded"]["files"]
    assert [f["uuid"] for f in trashed] == [uuids[0]]


def test_limit_bounds(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(max_page_size=10)
    http = http_for(emu)
    emu.seed_many([(f"f{i}.txt", b"x") for i in range(12)])
    assert http.drive("GET", "/v1.0/files").json()["_count"] == 10  # default 50, capped by the maximum
    assert http.drive("GET", "/v1.0/files?limit=10").status_code == 200
    r = http.drive("GET", "/v1.0/files?limit=11")
    assert r.status_code == 400 and "10" in r.json()["detail"]
    for bad in ("limit=0", "limit=x", "page=0", "page=-1"):
        assert http.drive("GET", f"/v1.0/files?{bad}").status_code == 400, bad


def test_default_limit_50_max_250(http: Any) -> None:
    http.emu.seed_many([(f"f{i}.txt", b"x") for i in range(260)])
    assert http.drive("GET", "/v1.0/files").json()["_count"] == 50
    assert http.drive("GET", "/v1.0/files?limit=250").json()["_count"] == 250
    assert http.drive("GET", "/v1.0/files?limit=251").status_code == 400


def test_filters(http: Any) -> None:
    emu = http.emu
    emu.add_entity("leads", 7, "Поставка Ромашке")
    old = int(time.time()) - 10 * 86400
    doc = emu.seed_file("Договор.pdf", b"x" * 1000, linked=(("leads", 7),), created_at=old)
    pic = emu.seed_file("photo.PNG", b"x" * 3000, linked=(), created_by=0)
    txt = emu.seed_file("notes.txt", b"x" * 10, linked=())
    gone = emu.seed_file("old.txt", b"x", linked=(), trashed=True)

    def q(query: str) -> set[str]:
        return {f["uuid"] for f in http.files(query)}

    assert q(f"filter[uuid]={doc},{txt}") == {doc, txt}
    assert q(f"filter[uuid][]={pic}") == {pic}
    assert q("filter[name]=Договор") == {doc}
    assert q("filter[name]=Договор.pdf") == {doc}
    assert q("filter[name]=Дог") == set()
    assert q("filter[extensions][]=png&filter[extensions][]=txt") == {pic, txt}
    assert q("filter[extensions][0]=PDF") == {doc}
    assert q("filter[term]=дого") == {doc}  # substring, case-insensitive
    assert q("filter[term]=ромашк") == {doc}  # a linked entity's name
    assert q("filter[term]=.txt") == {txt}
    assert q("filter[deleted]") == {gone}
    assert q("filter[deleted]=1&filter[term]=old") == {gone}
    assert q("filter[size][from]=1000&filter[size][to]=3000") == {doc, pic}
    assert q("filter[size][unit]=1000&filter[size][from]=2") == {pic}
    assert q(f"filter[date][from]={old - 1}&filter[date][to]={old + 1}") == {doc}
    assert q(f"filter[date][type]=updated_at&filter[date][from]={old + 100}") == {pic, txt}
    assert q("filter[date][date_preset]=day") == {pic, txt}
    assert q("filter[date][date_preset]=yesterday") == set()
    assert q("filter[date][date_preset]=year") >= {pic, txt}
    assert q("filter[date][date_preset]=last_6_month") == {doc, pic, txt}
    assert q("filter[created_by][]=0") == {pic}
    assert q(f"filter[updated_by][]={emu.options.user_id}") == {doc, txt}
    assert q("filter[source_id]=5") == set()
    assert q("filter[is_filter]=true") == {doc, pic, txt}  # unknown filters are ignored
    for bad in (
        "filter[size][from]=x",
        "filter[date][type]=deleted_at",
        "filter[date][date_preset]=someday",
        "filter[created_by][]=-2",
        "filter[source_id]=abc",
    ):
        assert http.drive("GET", f"/v1.0/files?{bad}").status_code == 400, bad


PRESETS = (
    "day tomorrow yesterday week previous_week next_week month next_month previous_month quarter "
    "previous_quarter next_quarter last_3_days next_3_days last_6_month year"
)


def test_every_date_preset_is_accepted(http: Any) -> None:
    http.emu.seed_file("now.txt", b"x")
    now_in = set()
    for preset in PRESETS.split():
        r = http.drive("GET", f"/v1.0/files?filter[date][date_preset]={preset}")
        assert r.status_code in (200, 204), preset
        if r.status_code == 200:
            now_in.add(preset)
    assert now_in == {"day", "week", "month", "quarter", "last_3_days", "next_3_days", "last_6_month", "year"}


def test_search_delay(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory(search_delay=30)
    http = http_for(emu)
    uuid = emu.seed_file("fresh.txt", b"x")
    assert http.files("filter[term]=fresh") == []
    assert [f["uuid"] for f in http.files("filter[name]=fresh")] == [uuid]  # only term search lags
    emu.options.search_delay = 0
    assert [f["uuid"] for f in http.files("filter[term]=fresh")] == [uuid]


# -- one file -----------------------------------------------------------------------------------------------


def test_get_file(http: Any) -> None:
    uuid = http.emu.seed_file("Счёт №15.pdf", b"%PDF")
    r = http.drive("GET", f"/v1.0/files/{uuid}")
    assert r.status_code == 200
    f = r.json()
    assert (f["uuid"], f["name"], f["sanitized_name"], f["size"]) == (uuid, "Счёт №15", "Schyot-15", 4)
    acc = http.emu.account_uuid
    assert f["_links"]["download"]["href"] == f"{http.emu.drive_url}/download/{acc}/{uuid}/Schyot-15.pdf"
    assert f["_links"]["download_version"]["href"] == (
        f"{http.emu.drive_url}/download/{acc}/{uuid}/{f['version_uuid']}/Schyot-15.pdf"
    )
    assert (f["previews"], f["deleted_at"], f["deleted_by"], f["source_id"]) == (None, None, None, None)
    assert http.drive("GET", f"/v1.0/files/{UNKNOWN}").status_code == 404


def test_patch_name_keeps_extension(http: Any) -> None:
    uuid = http.emu.seed_file("report.pdf", b"x", created_at=1000)
    r = http.drive("PATCH", f"/v1.0/files/{uuid}", json={"name": "Акт 01/2024"})
    assert r.status_code == 200
    f = r.json()
    assert (f["name"], f["metadata"]["extension"]) == ("Акт 01/2024", "pdf")
    assert f["updated_at"] > f["created_at"] == 1000
    r = http.drive("PATCH", f"/v1.0/files/{uuid}", json={"name": "new.txt"})
    assert (r.json()["name"], r.json()["metadata"]["extension"]) == ("new.txt", "pdf")
    assert http.emu.versions(uuid)[0]["name"] == "new.txt"


def test_patch_errors(http: Any) -> None:
    uuid = http.emu.seed_file("a.txt", b"x")
    other = http.emu.seed_file("b.txt", b"y")
    other_version = http.emu.files()[1]["version_uuid"]
    cases: list[tuple[str, Any, int]] = [
        (uuid, {"name": "x", "version_uuid": other_version}, 400),
        (uuid, {"name": ""}, 400),
        (uuid, {"name": "   "}, 400),
        (uuid, {"name": 5}, 400),
        (uuid, {"name": "x" * 256}, 400),
        (uuid, {"version_uuid": other_version}, 400),
        (uuid, {"version_uuid": UNKNOWN}, 400),
        (uuid, ["name"], 400),
        (UNKNOWN, {"name": "x"}, 404),
    ]
    for target, body, status in cases:
        assert http.drive("PATCH", f"/v1.0/files/{target}", json=body).status_code == status, body
    assert http.drive("PATCH", f"/v1.0/files/{uuid}", json={}).status_code == 200  # no required fields
    assert http.emu.file(uuid)["name"] == "a" and http.emu.file(other)["name"] == "b"


def test_versions_and_patch_version(http: Any) -> None:
    uuid = http.emu.seed_file("plan.md", b"one")
    v1 = http.emu.file(uuid)["version_uuid"]
    v2 = http.emu.add_version(uuid, "plan.txt", b"two!")
    r = http.drive("GET", f"/v1.0/files/{uuid}/versions")
    assert r.status_code == 200
    body = r.json()
    versions = body["_embedded"]["versions"]
    assert body["_count"] == 2 and [v["uuid"] for v in versions] == [v2, v1]
    assert [v["is_main"] for v in versions] == [True, False]
    assert {"uuid", "file_uuid", "is_main", "name", "size", "metadata", "created_at", "_links"} <= set(versions[0])
    assert versions[1]["_links"]["download"]["href"].endswith(f"/{uuid}/{v1}/plan.md")
    assert http.drive("GET", versions[1]["_links"]["self"]["href"][len(http.emu.drive_url) :]).json()["uuid"] == v1
    r = http.drive("PATCH", f"/v1.0/files/{uuid}", json={"version_uuid": v1})
    assert r.status_code == 200
    f = r.json()
    assert (f["version_uuid"], f["size"], f["metadata"]["extension"]) == (v1, 3, "md")
    assert f["has_multiple_versions"] is True
    assert http.emu.content(uuid) == b"one"
    assert http.drive("GET", f"/v1.0/files/{UNKNOWN}/versions").status_code == 404
    assert http.drive("GET", f"/v1.0/files/{uuid}/versions/{UNKNOWN}").status_code == 404


def test_delete_restore(http: Any) -> None:
    a = http.emu.seed_file("a.txt", b"a")
    b = http.emu.seed_file("b.txt", b"b")
    r = http.drive("DELETE", "/v1.0/files", json=[{"uuid": a}])
    assert r.status_code == 204 and r.content == b""
    f = http.drive("GET", f"/v1.0/files/{a}").json()
    assert f["is_trashed"] is True and f["deleted_at"] is not None
    assert f["deleted_by"] == {"type": "internal", "id": http.emu.options.user_id}
    assert [x["uuid"] for x in http.files()] == [b]
    assert [x["uuid"] for x in http.files("filter[deleted]")] == [a]
    assert http.drive("DELETE", "/v1.0/files", json=[{"uuid": a}]).status_code == 204  # idempotent
    r = http.drive("POST", "/v1.0/files/restore", json=[{"uuid": a}])
    assert r.status_code == 200
    body = r.json()
    assert body["_count"] == 1 and body["_embedded"]["files"][0]["is_trashed"] is False
    assert body["_embedded"]["files"][0]["deleted_at"] is None
    assert {x["uuid"] for x in http.files()} == {a, b}


def test_delete_restore_errors_change_nothing(http: Any) -> None:
    a = http.emu.seed_file("a.txt", b"a")
    for body in ([], {}, [{"uuid": 5}], [{"id": a}], [{"uuid": a}, {"uuid": UNKNOWN}]):
        assert http.drive("DELETE", "/v1.0/files", json=body).status_code == 400, body
        assert http.drive("POST", "/v1.0/files/restore", json=body).status_code == 400, body
    assert http.emu.file(a)["is_trashed"] is False
    r = http.drive("DELETE", "/v1.0/files", json=[{"uuid": a}, {"uuid": UNKNOWN}])
    assert UNKNOWN in r.json()["detail"]


def test_stats(emulator_factory: Any, http_for: Any) -> None:
    emu = emulator_factory()
    http = http_for(emu)
    emu.seed_file("a.bin", b"x" * 100)
    assert http.drive("GET", "/v1.0/files/stats").json() == {"limit": 10 * 2**30, "used": 100}
    emu.options.stats_endpoint = False
    r = http.drive("GET", "/v1.0/files/stats")
    assert r.status_code == 403 and r.headers["content-type"] == "application/json"


def test_method_not_allowed_and_unknown_path(http: Any) -> None:
    assert http.drive("PUT", "/v1.0/files").status_code == 405
    assert http.drive("GET", "/v1.0/nothing").status_code == 404
    assert http.account("GET", "/v1.0/files").status_code == 404  # hosts are not interchangeable
    assert http.drive("GET", "/api/v4/account").status_code == 404
