"""trash/, versions/, entity folders and search/: each contract row, checked in the emulator's storage."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from fshelpers import P, by_name

from amofs.errors import AmoError, Exists, InvalidName, NoEntry, NotPermitted, ReadOnly, errno_of
from amofs.filesystem import AmoFS


async def test_root_lists_the_tree(p: P) -> None:
    assert await p.ls("") == sorted(
        ["files", "trash", "versions", "leads", "contacts", "companies", "customers", "search"]
    )


async def test_trash_lists_and_reads_trashed_files(emulator: Any, p: P) -> None:
    emulator.seed_file("old.txt", b"trashed bytes", trashed=True)
    emulator.seed_file("live.txt", b"live")
    assert await p.ls("trash") == ["old.txt"]
    assert await p.ls("files") == ["live.txt"]
    assert await p.read("trash/old.txt") == b"trashed bytes"


async def test_mv_from_trash_restores(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("back.txt", b"x", trashed=True)
    await p.mv("trash/back.txt", "files/back.txt")
    assert by_name(emulator, "back.txt")["uuid"] == uuid
    assert await p.ls("trash") == []
    assert await p.ls("files") == ["back.txt"]


async def test_mv_from_trash_with_new_name_restores_and_renames(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("back.txt", b"x", trashed=True)
    await p.mv("trash/back.txt", "files/renamed.txt")
    assert by_name(emulator, "renamed.txt")["uuid"] == uuid


async def test_restore_onto_a_live_name_never_overwrites(emulator: Any, p: P) -> None:
    live = emulator.seed_file("same.txt", b"live", created_at=100)
    dead = emulator.seed_file("same.txt", b"dead", trashed=True, created_at=200)
    await p.ls("files")
    await p.mv("trash/same.txt", "files/same.txt")
    assert emulator.content(live) == b"live"
    listed = await p.ls("files")
    assert "same.txt" in listed and f"same ({dead.replace('-', '')[:8]}).txt" in listed


async def test_rm_in_trash_is_refused(emulator: Any, p: P) -> None:
    emulator.seed_file("t.txt", b"x", trashed=True)
    with pytest.raises(NotPermitted) as e:
        await p.rm("trash/t.txt")
    assert errno_of(e.value) == errno.EPERM


async def test_versions_listed_oldest_first_with_current(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("v.txt", b"one")
    emulator.add_version(uuid, "v.txt", b"two")
    emulator.add_version(uuid, "v.txt", b"three")
    listed = await p.ls(f"versions/{uuid}")
    assert listed == ["current-v.txt", "v001-v.txt", "v002-v.txt", "v003-v.txt"]
    assert await p.read(f"versions/{uuid}/v001-v.txt") == b"one"
    assert await p.read(f"versions/{uuid}/current-v.txt") == b"three"
    assert uuid in await p.ls("versions")


async def test_version_xattrs(emulator: Any, fs: AmoFS, p: P) -> None:
    uuid = emulator.seed_file("v.txt", b"one")
    ino = await p.ino(f"versions/{uuid}/v001-v.txt")
    vuuid = (await fs.getxattr(ino, "user.amo.version_uuid")).decode()
    assert (await fs.getxattr(ino, "user.amo.file_uuid")).decode() == uuid
    assert vuuid == emulator.versions(uuid)[0]["uuid"]


async def test_unknown_uuid_in_versions_is_enoent(p: P) -> None:
    with pytest.raises(NoEntry):
        await p.ls("versions/00000000-0000-0000-0000-000000000000")
    with pytest.raises(NoEntry):
        await p.ls("versions/not-a-uuid")


async def test_promote_a_version(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("v.txt", b"one")
    emulator.add_version(uuid, "v.txt", b"two")
    await p.mv(f"versions/{uuid}/v001-v.txt", "files/v.txt")
    assert emulator.content(uuid) == b"one"
    assert await p.read("files/v.txt") == b"one"


async def test_promote_onto_another_file_is_refused(emulator: Any, p: P) -> None:
    uuid = emulator.seed_file("v.txt", b"one")
    emulator.seed_file("other.txt", b"o")
    with pytest.raises(InvalidName) as e:
        await p.mv(f"versions/{uuid}/v001-v.txt", "files/other.txt")
    assert errno_of(e.value) == errno.EINVAL


async def test_versions_are_read_only(emulator: Any, fs: AmoFS, p: P) -> None:
    uuid = emulator.seed_file("v.txt", b"one")
    with pytest.raises(ReadOnly):
        await p.write(f"versions/{uuid}/new.txt", b"x")
    with pytest.raises(ReadOnly):
        await p.rm(f"versions/{uuid}/v001-v.txt")


async def test_entity_folder_lists_linked_files(emulator: Any, p: P) -> None:
    emulator.add_entity("leads", 1001, "Сделка")
    emulator.seed_file("linked.pdf", b"x", linked=(("leads", 1001),))
    emulator.seed_file("other.pdf", b"y")
    assert await p.ls("leads/1001") == ["linked.pdf"]
    assert "1001" in await p.ls("leads")


async def test_unknown_entity_is_enoent(p: P) -> None:
    with pytest.raises(NoEntry):
        await p.ls("leads/999999")
    with pytest.raises(NoEntry):
        await p.ls("leads/abc")


async def test_ln_links_and_file_stays(emulator: Any, fs: AmoFS, p: P) -> None:
    emulator.add_entity("contacts", 2001, "Иван")
    uuid = emulator.seed_file("card.pdf", b"x")
    await p.ls("contacts/2001")
    await fs.link(await p.ino("files/card.pdf"), await p.ino("contacts/2001"), "card.pdf")
    assert emulator.links("contacts", 2001) == [uuid]
    assert await p.ls("contacts/2001") == ["card.pdf"]  # at once, from the cache
    assert await p.ls("files") == ["card.pdf"]


async def test_mv_into_entity_links(emulator: Any, p: P) -> None:
    emulator.add_entity("leads", 1001, "Сделка")
    uuid = emulator.seed_file("c.pdf", b"x")
    await p.mv("files/c.pdf", "leads/1001/c.pdf")
    assert emulator.links("leads", 1001) == [uuid]
    assert await p.ls("files") == ["c.pdf"]


async def test_mv_between_entities_relinks(emulator: Any, p: P) -> None:
    emulator.add_entity("leads", 1001, "A")
    emulator.add_entity("leads", 1002, "B")
    uuid = emulator.seed_file("c.pdf", b"x", linked=(("leads", 1001),))
    await p.mv("leads/1001/c.pdf", "leads/1002/c.pdf")
    assert emulator.links("leads", 1001) == []
    assert emulator.links("leads", 1002) == [uuid]


async def test_cp_into_entity_uploads_and_links(emulator: Any, p: P) -> None:
    emulator.add_entity("companies", 3001, "ООО Ромашка")
    await p.write("companies/3001/offer.pdf", b"offer bytes")
    f = by_name(emulator, "offer.pdf")
    assert emulator.content(f["uuid"]) == b"offer bytes"
    assert emulator.links("companies", 3001) == [f["uuid"]]
    assert await p.ls("companies/3001") == ["offer.pdf"]
    assert await p.ls("files") == ["offer.pdf"]


async def test_rm_in_entity_unlinks_only(emulator: Any, p: P) -> None:
    emulator.add_entity("customers", 4001, "Клиент")
    uuid = emulator.seed_file("u.pdf", b"x", linked=(("customers", 4001),))
    await p.rm("customers/4001/u.pdf")
    assert emulator.links("customers", 4001) == []
    assert by_name(emulator, "u.pdf")["uuid"] == uuid


async def test_search_lists_matches_read_only(emulator: Any, p: P) -> None:
    emulator.seed_file("Договор 1.pdf", b"a")
    emulator.seed_file("Договор 2.pdf", b"b")
    emulator.seed_file("Счёт.pdf", b"c")
    assert await p.ls("search/Договор") == ["Договор 1.pdf", "Договор 2.pdf"]
    assert "Договор" in await p.ls("search")
    with pytest.raises(AmoError) as e:
        await p.write("search/Договор/new.pdf", b"x")
    assert errno_of(e.value) == errno.EROFS
    assert await p.read("search/Договор/Договор 1.pdf") == b"a"
    with pytest.raises(ReadOnly):  # an existing file is read-only there too
        await p.write("search/Договор/Договор 1.pdf", b"changed")
    with pytest.raises(ReadOnly):
        await p.rm("search/Договор/Договор 1.pdf")


async def test_control_file_reports_status_and_stays_hidden(emulator: Any, fs: AmoFS, p: P) -> None:
    import json

    emulator.seed_file("a.txt", b"x")
    await p.ls("files")
    assert ".amofs" not in await p.ls("")
    status = json.loads(await p.read(".amofs/status"))
    assert status["requests"] >= 1
    assert status["uploads_in_flight"] == []
    assert status["account"] == emulator.account_url


async def test_gio_trash_folder_moves_files_to_the_account_trash(emulator: Any, fs: AmoFS, p: P) -> None:
    uuid = emulator.seed_file("draft.docx", b"x")
    root = await p.ino("")
    await fs.mkdir(root, ".Trash-1000")
    tr = await p.ino(".Trash-1000")
    for sub in ("files", "info"):  # they exist with it (GIO's g_mkdir_with_parents takes EEXIST)
        with pytest.raises(Exists):
            await fs.mkdir(tr, sub)
    assert (await p.stat(".Trash-1000")).perm == 0o700
    # GIO writes the info file under a temp name and renames it (g_file_set_contents)
    await p.write(".Trash-1000/info/draft.docx.trashinfo.AB12CD", b"[Trash Info]\nPath=/m/files/draft.docx\n")
    await p.mv(".Trash-1000/info/draft.docx.trashinfo.AB12CD", ".Trash-1000/info/draft.docx.trashinfo")
    await p.mv("files/draft.docx", ".Trash-1000/files/draft.docx")
    assert [f["uuid"] for f in emulator.files(trashed=True)] == [uuid]
    assert await p.ls("files") == []
    assert emulator.count(method="POST", path_prefix="/v1.0/sessions") == 0  # the info file stayed local
    assert await p.ls(".Trash-1000/info") == ["draft.docx.trashinfo"]
