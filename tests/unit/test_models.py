"""API models parse the spec page's own examples, and tolerate missing, extra and null fields."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from amofs.api.models import (
    DriveStats,
    EntityFileLink,
    FileModel,
    LinkedEntity,
    PartAccepted,
    UploadSession,
    VersionModel,
    parse_part_reply,
)
from amofs.errors import ProtocolError

FIXTURES = Path(__file__).parent.parent / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_file_model_from_spec_example() -> None:
    f = FileModel.from_json(load("file.json"))
    assert f.uuid == "367b9f38-5f01-4cea-947e-dfab47aea522"
    assert f.version_uuid == "43de3be7-307b-4766-a23e-5e88211b9a8d"
    assert (f.name, f.extension, f.mime_type) == ("product", "png", "image/png")
    assert f.size == 7526
    assert f.type == "file"
    assert f.is_trashed is False and f.has_multiple_versions is False
    assert (f.created_at, f.updated_at, f.deleted_at, f.source_id) == (1671687247, 1671687247, None, None)
    assert f.download_url is not None and f.download_url.endswith("/picture.png")
    assert f.download_version_url is not None and "43de3be7" in f.download_version_url


def test_file_model_is_immutable() -> None:
    f = FileModel.from_json(load("file.json"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.name = "other"  # type: ignore[misc]


def test_files_page_example() -> None:
    page = load("files_page.json")
    files = [FileModel.from_json(x) for x in page["_embedded"]["files"]]
    assert [f.extension for f in files] == ["jpg", "png"]
    assert files[1].name == "_96" and files[1].sanitized_name == "-96"
    assert page["_links"]["next"]["href"].endswith("page=2")


def test_restore_example() -> None:
    files = [FileModel.from_json(x) for x in load("restore.json")["_embedded"]["files"]]
    assert len(files) == 2


def test_file_model_tolerates_extra_null_and_missing_optional_fields() -> None:
    d = load("file.json")
    d["brand_new_field"] = {"x": 1}
    d["metadata"] = None
    d["previews"] = [{"download_link": "https://x/p.png", "width": 1, "height": 2}]
    d["source_id"] = 17
    d["deleted_at"] = None
    d["updated_at"] = None
    for key in ("_links", "version_uuid", "sanitized_name", "type", "has_multiple_versions", "created_by"):
        del d[key]
    f = FileModel.from_json(d)
    assert (f.extension, f.mime_type) == ("", "")
    assert f.download_url is None and f.download_version_url is None
    assert f.version_uuid == ""
    assert f.sanitized_name == f.name
    assert f.type == "file"
    assert f.source_id == 17
    assert f.updated_at == f.created_at


@pytest.mark.parametrize("key", ["uuid", "size", "name"])
def test_file_model_missing_required_field(key: str) -> None:
    d = load("file.json")
    del d[key]
    with pytest.raises(ProtocolError, match=key):
        FileModel.from_json(d)


@pytest.mark.parametrize("bad", [None, [], "x", 3])
def test_file_model_not_an_object(bad: object) -> None:
    with pytest.raises(ProtocolError, match="JSON object"):
        FileModel.from_json(bad)


def test_file_model_wrong_types() -> None:
    d = load("file.json")
    d["size"] = "7526"
    with pytest.raises(ProtocolError, match="size"):
        FileModel.from_json(d)
    d = load("file.json")
    d["size"] = True
    with pytest.raises(ProtocolError, match="size"):
        FileModel.from_json(d)


def test_versions_example() -> None:
    vs = [VersionModel.from_json(v) for v in load("versions.json")["_embedded"]["versions"]]
    assert [v.is_main for v in vs] == [True, False]
    assert vs[0].file_uuid == vs[1].file_uuid == "89a61e7b-ba30-476f-b2f6-705a964e85c6"
    assert (vs[1].name, vs[1].extension, vs[1].mime_type, vs[1].size) == ("consoleText", "txt", "", 7347)
    assert vs[0].download_url is not None and vs[0].download_url.endswith("source.jpeg")


def test_version_missing_file_uuid() -> None:
    v = load("versions.json")["_embedded"]["versions"][0]
    del v["file_uuid"]
    with pytest.raises(ProtocolError, match="file_uuid"):
        VersionModel.from_json(v)


def test_version_tolerates_nulls() -> None:
    v = load("versions.json")["_embedded"]["versions"][0]
    v["name"] = None
    v["metadata"] = None
    v["_links"] = None
    m = VersionModel.from_json(v)
    assert (m.name, m.extension, m.download_url) == ("", "", None)


def test_session_example() -> None:
    s = UploadSession.from_json(load("session.json"))
    assert (s.session_id, s.max_file_size, s.max_part_size) == (26136001, 314572800, 524288)
    assert s.upload_url.startswith("https://drive-b.amocrm.ru/v1.0/sessions/upload/")


@pytest.mark.parametrize("key", ["session_id", "upload_url", "max_file_size", "max_part_size"])
def test_session_missing_field(key: str) -> None:
    d = load("session.json")
    del d[key]
    with pytest.raises(ProtocolError, match=key):
        UploadSession.from_json(d)


def test_session_nonpositive_part_size() -> None:
    d = load("session.json")
    d["max_part_size"] = 0
    with pytest.raises(ProtocolError, match="max_part_size"):
        UploadSession.from_json(d)


def test_part_replies() -> None:
    nxt = parse_part_reply(load("part_next.json"))
    assert isinstance(nxt, PartAccepted)
    assert nxt.session_id == 26434413 and "/sessions/upload/" in nxt.next_url
    last = parse_part_reply(load("part_last.json"))
    assert isinstance(last, FileModel) and last.uuid == "367b9f38-5f01-4cea-947e-dfab47aea522"


def test_part_reply_next_url_wins_and_garbage_refused() -> None:
    d = load("part_last.json")
    d["next_url"] = "https://up.example/next"
    assert isinstance(parse_part_reply(d), PartAccepted)
    with pytest.raises(ProtocolError, match="neither"):
        parse_part_reply({"session_id": 1})
    with pytest.raises(ProtocolError):
        parse_part_reply([])


def test_entity_files_example() -> None:
    links = [EntityFileLink.from_json(x) for x in load("entity_files.json")["_embedded"]["files"]]
    assert links == [
        EntityFileLink(id=2140857, file_uuid="50ca4b6b-0b88-4ece-9f89-d48961579ae0"),
        EntityFileLink(id=2128681, file_uuid="5ef222cd-bce4-4df8-8466-3dee7d16e70d"),
    ]
    with pytest.raises(ProtocolError, match="file_uuid"):
        EntityFileLink.from_json({"id": 1})


def test_file_links_example() -> None:
    data = load("file_links.json")
    ents = [LinkedEntity.from_json(e) for e in data["entities"]]
    assert ents[0] == LinkedEntity(id=22859207, entity_type="leads", name="Сделка #22859207")
    e = copy.deepcopy(data["entities"][0])
    e["name"] = None
    assert LinkedEntity.from_json(e).name == ""
    del e["entity_type"]
    with pytest.raises(ProtocolError, match="entity_type"):
        LinkedEntity.from_json(e)


def test_drive_stats() -> None:
    assert DriveStats.from_json({"limit": 10, "used": 3, "extra": None}) == DriveStats(limit=10, used=3)
    with pytest.raises(ProtocolError, match="used"):
        DriveStats.from_json({"limit": 10})
