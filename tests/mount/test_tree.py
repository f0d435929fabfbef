"""trash/, versions/, the entity folders, search/ and GIO's trash on a real mount (issue 4), driven with real tools
(``ls``, ``cat``, ``mv``, ``ln``, ``cp``, ``rm``, ``getfattr``, ``gio``, ``stat``) and checked in the emulator's
stored state (trash, is_main, links), not only in what the mount says.

Two kinds of mount:
- ``acct``: one mount per module on an account seeded before mounting; the tests on it only read or fail
  (a failed operation must leave the account as it was, and they check that it did).
- ``fresh``: a mount per test (cache TTL 60 s, as a user runs it), for every test that changes the account, so
  the mount's cache upkeep after a mutation is what the next ``ls`` sees.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from mounthelpers import Mount, MountFactory, ok, pyerr, sh, shown, start_foreground

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

pytestmark = pytest.mark.mount

LEAD, CONTACT = 100, 45  # seeded entities of the shared account


def by_name(emu: Emulator, name: str, *, trashed: bool | None = False) -> dict[str, Any]:
    found = [f for f in emu.files(trashed=trashed) if shown(f) == name]
    assert len(found) == 1, f"{name!r}: {[shown(f) for f in emu.files(trashed=trashed)]}"
    return found[0]


def ls(path: Path) -> list[str]:
    return sorted(ok("ls", "-A", path).decode().splitlines())


def ino(path: Path) -> int:
    return int(ok("stat", "-c", "%i", path).decode())


def xattr(path: Path, name: str) -> str:
    return ok("getfattr", "--only-values", "-n", name, path).decode()


def fails(res: Any, message: str) -> None:
    """A tool failed, and its stderr names the errno (strerror text)."""
    err = res.stderr.decode(errors="replace")
    assert res.returncode != 0, f"succeeded, expected {message!r}"
    assert message in err, err


def slash(path: Path) -> str:
    """A folder as a tool's target with the trailing slash typed by a user (``mv x leads/7/``)."""
    return f"{path}/"


def suffix(uuid: str) -> str:
    return uuid.replace("-", "")[:8]


# --- the shared, seeded account ------------------------------------------------------------------------------


@dataclass
class Acct:
    emu: Emulator
    m: Mount
    uuids: dict[str, str] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)  # contract.docx's version uuids, oldest first

    def p(self, *parts: str) -> Path:
        return self.m.p(*parts)


@pytest.fixture(scope="module")
def acct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acct]:
    from amofs.emulator.server import Emulator

    work = tmp_path_factory.mktemp("tree")
    emu = Emulator(work / "emu")
    emu.start()
    m: Mount | None = None
    try:
        emu.add_entity("leads", LEAD, "Big deal")
        emu.add_entity("contacts", CONTACT, "Иван Петров")
        u: dict[str, str] = {}
        u["old"] = emu.seed_file("old report.pdf", b"%PDF trashed bytes", trashed=True, linked=())
        u["contract"] = emu.seed_file(
            "contract.docx", b"draft one", created_at=1_600_000_000, linked=(("leads", LEAD),)
        )
        emu.add_version(u["contract"], "contract.docx", b"draft two, longer", created_at=1_600_000_100)
        emu.add_version(u["contract"], "contract.docx", b"signed", created_at=1_600_000_200)
        u["offer"] = emu.seed_file("offer.pdf", b"%PDF offer", linked=(("leads", LEAD), ("contacts", CONTACT)))
        u["other"] = emu.seed_file("other.txt", b"another file", linked=())
        u["acme1"] = emu.seed_file("invoice ACME 7.pdf", b"%PDF acme invoice", linked=())
        u["acme2"] = emu.seed_file("ACME logo.png", b"\x89PNG acme", linked=())
        u["plain"] = emu.seed_file("unrelated.txt", b"nothing", linked=())
        versions = [v["uuid"] for v in reversed(emu.versions(u["contract"]))]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AMOFS_", "XDG_"))}
        for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data")):
            env[var] = str(work / sub)
        env["AMOFS_TOKEN"] = emu.token
        (work / "mnt").mkdir()
        args = ["--account-url", emu.account_url, "--drive-url", emu.drive_url, "--cache-ttl", "60"]
        m = start_foreground(work / "mnt", work, args, env=env)
        yield Acct(emu, m, u, versions)
    finally:
        if m is not None:
            m.stop()
        emu.stop()


@pytest.fixture
def fresh(emulator: Emulator, mnt: Path, mount_factory: MountFactory) -> Mount:
    """A mount of its own on a fresh account, cache TTL 60 s (seed before the first look at a folder)."""
    return mount_factory(emulator, mnt, "--cache-ttl", "60")


# --- trash/ --------------------------------------------------------------------------------------------------


def test_trash_lists_and_reads_trashed_files(acct: Acct) -> None:
    assert "old report.pdf" in ls(acct.p("trash"))
    assert "old report.pdf" not in ls(acct.p("files"))
    assert ok("cat", acct.p("trash", "old report.pdf")) == b"%PDF trashed bytes"
    assert ok("stat", "-c", "%a", acct.p("trash", "old report.pdf")).decode().strip() == "444"


def test_rm_in_trash_is_eperm(acct: Acct) -> None:
    fails(sh("rm", "-f", acct.p("trash", "old report.pdf")), "Operation not permitted")
    assert pyerr("os.unlink(sys.argv[2])", acct.p("trash", "old report.pdf")) == "EPERM"
    assert acct.emu.file(acct.uuids["old"])["is_trashed"] is True
    assert "old report.pdf" in ls(acct.p("trash"))


def test_mv_trash_to_files_restores(emulator: Emulator, fresh: Mount) -> None:
    uuid = emulator.seed_file("back.txt", b"restore me", trashed=True)
    assert ls(fresh.p("trash")) == ["back.txt"]
    assert ls(fresh.p("files")) == []
    ok("mv", fresh.p("trash", "back.txt"), slash(fresh.p("files")))
    f = emulator.file(uuid)
    assert f["is_trashed"] is False and shown(f) == "back.txt"
    assert ls(fresh.p("files")) == ["back.txt"]
    assert ls(fresh.p("trash")) == []
    assert ok("cat", fresh.p("files", "back.txt")) == b"restore me"


def test_mv_trash_to_files_with_a_new_name(emulator: Emulator, fresh: Mount) -> None:
    uuid = emulator.seed_file("back.txt", b"x", trashed=True)
    ok("mv", fresh.p("trash", "back.txt"), fresh.p("files", "renamed.txt"))
    f = emulator.file(uuid)
    assert f["is_trashed"] is False and shown(f) == "renamed.txt"
    assert ls(fresh.p("files")) == ["renamed.txt"]
    assert emulator.count("PATCH", f"/v1.0/files/{uuid}") == 1


def test_restore_onto_a_live_name_never_overwrites(emulator: Emulator, fresh: Mount) -> None:
    live = emulator.seed_file("same.txt", b"the live one", created_at=1_600_000_000)
    dead = emulator.seed_file("same.txt", b"the trashed one", trashed=True, created_at=1_700_000_000)
    assert ls(fresh.p("files")) == ["same.txt"]
    ok("mv", fresh.p("trash", "same.txt"), fresh.p("files", "same.txt"))
    assert emulator.file(dead)["is_trashed"] is False
    assert emulator.file(live)["is_trashed"] is False
    assert emulator.content(live) == b"the live one" and len(emulator.versions(live)) == 1
    assert emulator.content(dead) == b"the trashed one"
    collision = f"same ({suffix(dead)}).txt"
    assert ls(fresh.p("files")) == sorted(["same.txt", collision])
    assert ok("cat", fresh.p("files", "same.txt")) == b"the live one"
    assert ok("cat", fresh.p("files", collision)) == b"the trashed one"


def test_a_restored_duplicate_keeps_its_names_after_a_remount(
    emulator: Emulator, mnt: Path, mount_factory: MountFactory
) -> None:
    """The restored file is the older one; a fresh listing would give the plain name to the oldest. Its
    collision name is given to it in the account, so a remount (or the web interface) shows the same names."""
    old = emulator.seed_file("b.txt", b"older, trashed", trashed=True, created_at=1_600_000_000)
    new = emulator.seed_file("b.txt", b"newer, live", created_at=1_700_000_000)
    first = mount_factory(emulator, mnt, "--cache-ttl", "60")
    ok("mv", first.p("trash", "b.txt"), first.p("files", "b.txt"))
    collision = f"b ({suffix(old)}).txt"
    assert ls(first.p("files")) == sorted(["b.txt", collision])
    assert shown(emulator.file(old)) == collision and shown(emulator.file(new)) == "b.txt"
    first.unmount()
    again = mount_factory(emulator, mnt, "--cache-ttl", "60")
    assert ok("cat", again.p("files", "b.txt")) == b"newer, live"
    assert ok("cat", again.p("files", collision)) == b"older, trashed"


# --- versions/ -----------------------------------------------------------------------------------------------


def test_versions_root_lists_files_with_several_versions(acct: Acct) -> None:
    assert ls(acct.p("versions")) == [acct.uuids["contract"]]


def test_versions_folder_lists_oldest_first_and_current(acct: Acct) -> None:
    d = acct.p("versions", acct.uuids["contract"])
    assert ok("ls", d).decode().split("\n")[:-1] == [
        "current-contract.docx",
        "v001-contract.docx",
        "v002-contract.docx",
        "v003-contract.docx",
    ]
    assert ino(d / "current-contract.docx") == ino(d / "v003-contract.docx")
    assert ino(d / "v001-contract.docx") != ino(d / "v003-contract.docx")
    # any file uuid can be looked up, even one with a single version (not in `ls versions/`)
    assert ls(acct.p("versions", acct.uuids["other"])) == ["current-other.txt", "v001-other.txt"]


def test_each_version_reads_byte_exact(acct: Acct) -> None:
    uuid = acct.uuids["contract"]
    d = acct.p("versions", uuid)
    for i, vuuid in enumerate(acct.versions, 1):
        body = ok("cat", d / f"v{i:03d}-contract.docx")
        assert body == acct.emu.content(uuid, vuuid)
    assert ok("cat", d / "v001-contract.docx") == b"draft one"
    assert ok("cat", d / "current-contract.docx") == b"signed"
    assert ok("stat", "-c", "%s %a", d / "v002-contract.docx").decode().split() == [
        str(len(b"draft two, longer")),
        "444",
    ]


def test_version_xattrs(acct: Acct) -> None:
    uuid = acct.uuids["contract"]
    d = acct.p("versions", uuid)
    for i, vuuid in enumerate(acct.versions, 1):
        assert xattr(d / f"v{i:03d}-contract.docx", "user.amo.version_uuid") == vuuid
        assert xattr(d / f"v{i:03d}-contract.docx", "user.amo.file_uuid") == uuid
    assert xattr(d / "current-contract.docx", "user.amo.version_uuid") == acct.versions[-1]


def test_unknown_uuid_is_enoent(acct: Acct) -> None:
    fails(sh("ls", acct.p("versions", "00000000-0000-4000-8000-000000000000")), "No such file or directory")
    assert pyerr("os.listdir(sys.argv[2])", acct.p("versions", "00000000-0000-4000-8000-000000000000")) == "ENOENT"
    assert pyerr("os.stat(sys.argv[2])", acct.p("versions", "not-a-uuid")) == "ENOENT"


def test_promote_a_version(emulator: Emulator, fresh: Mount) -> None:
    uuid = emulator.seed_file("deal.txt", b"first", created_at=1_600_000_000)
    emulator.add_version(uuid, "deal.txt", b"second", created_at=1_600_000_100)
    first = next(v["uuid"] for v in emulator.versions(uuid) if not v["is_main"])
    assert ok("cat", fresh.p("files", "deal.txt")) == b"second"
    ok("mv", fresh.p("versions", uuid, "v001-deal.txt"), fresh.p("files", "deal.txt"))
    f = emulator.file(uuid)
    assert f["version_uuid"] == first
    assert [v["uuid"] for v in emulator.versions(uuid) if v["is_main"]] == [first]
    assert len(emulator.versions(uuid)) == 2  # a promotion makes no new version
    assert emulator.count("POST", "/v1.0/sessions") == 0
    assert ok("cat", fresh.p("files", "deal.txt")) == b"first"  # never the old bytes
    assert xattr(fresh.p("files", "deal.txt"), "user.amo.version_uuid") == first
    d = fresh.p("versions", uuid)
    assert ino(d / "current-deal.txt") == ino(d / "v001-deal.txt")


def test_promoting_onto_another_file_is_einval(acct: Acct) -> None:
    uuid, other = acct.uuids["contract"], acct.uuids["other"]
    src = acct.p("versions", uuid, "v001-contract.docx")
    # coreutils words EINVAL from rename(2) as "cannot move … to a subdirectory of itself"
    fails(sh("mv", "-f", src, acct.p("files", "other.txt")), "cannot move")
    assert pyerr("os.rename(sys.argv[2], sys.argv[3])", src, acct.p("files", "other.txt")) == "EINVAL"
    assert pyerr("os.rename(sys.argv[2], sys.argv[3])", src, acct.p("files", "brand new.docx")) == "EINVAL"
    assert acct.emu.file(uuid)["version_uuid"] == acct.versions[-1]
    assert acct.emu.content(other) == b"another file" and len(acct.emu.versions(other)) == 1
    assert "brand new.docx" not in ls(acct.p("files"))


def test_writing_into_versions_is_erofs(acct: Acct, tmp_path: Path) -> None:
    uuid = acct.uuids["contract"]
    d = acct.p("versions", uuid)
    (tmp_path / "x.docx").write_bytes(b"x")
    before = len(acct.emu.files(trashed=None))
    fails(sh("cp", tmp_path / "x.docx", d / "new.docx"), "Read-only file system")
    fails(sh("cp", tmp_path / "x.docx", d / "v001-contract.docx"), "Read-only file system")
    fails(sh("sh", "-c", f"echo more >> '{d / 'v001-contract.docx'}'"), "Read-only file system")
    fails(sh("rm", "-f", d / "v002-contract.docx"), "Read-only file system")
    fails(sh("touch", acct.p("versions", "loose.txt")), "Read-only file system")
    fails(sh("touch", "-d", "2001-01-01", d / "v001-contract.docx"), "Read-only file system")
    fails(sh("mv", acct.p("files", "other.txt"), d / "other.txt"), "Read-only file system")
    assert pyerr("open(sys.argv[2], 'r+b')", d / "v001-contract.docx") == "EROFS"
    assert len(acct.emu.files(trashed=None)) == before
    assert len(acct.emu.versions(uuid)) == 3
    assert acct.emu.count("POST", "/v1.0/sessions") == 0
    assert "other.txt" in ls(acct.p("files"))


# --- entity folders ------------------------------------------------------------------------------------------


def test_entity_folders_list_linked_files(acct: Acct) -> None:
    assert ls(acct.p("leads", str(LEAD))) == ["contract.docx", "offer.pdf"]
    assert ls(acct.p("contacts", str(CONTACT))) == ["offer.pdf"]
    assert ok("cat", acct.p("contacts", str(CONTACT), "offer.pdf")) == b"%PDF offer"
    # one file, one inode, wherever it shows
    assert ino(acct.p("contacts", str(CONTACT), "offer.pdf")) == ino(acct.p("files", "offer.pdf"))
    assert str(LEAD) in ls(acct.p("leads"))


def test_unknown_entity_is_enoent(acct: Acct, tmp_path: Path) -> None:
    fails(sh("ls", acct.p("leads", "999999")), "No such file or directory")
    assert pyerr("os.listdir(sys.argv[2])", acct.p("companies", "31337")) == "ENOENT"
    assert pyerr("os.stat(sys.argv[2])", acct.p("leads", "abc")) == "ENOENT"
    (tmp_path / "y.txt").write_bytes(b"y")
    fails(sh("cp", tmp_path / "y.txt", acct.p("leads", "999999", "y.txt")), "No such file or directory")
    fails(sh("cp", tmp_path / "y.txt", slash(acct.p("leads", "999999"))), "Not a directory")
    fails(sh("ln", acct.p("files", "other.txt"), slash(acct.p("customers", "999999"))), "No such file or directory")
    assert "y.txt" not in [shown(f) for f in acct.emu.files(trashed=None)]


def test_file_xattrs(acct: Acct) -> None:
    f = acct.p("files", "offer.pdf")
    model = acct.emu.file(acct.uuids["offer"])
    assert xattr(f, "user.amo.uuid") == acct.uuids["offer"]
    assert xattr(f, "user.amo.version_uuid") == model["version_uuid"]
    assert sorted(xattr(f, "user.amo.links").split()) == sorted([f"leads/{LEAD}", f"contacts/{CONTACT}"])
    assert xattr(acct.p("files", "other.txt"), "user.amo.links") == ""
    dump = ok("getfattr", "-d", "-m", "user.amo", f).decode()
    for name in ("user.amo.uuid", "user.amo.version_uuid", "user.amo.links"):
        assert name in dump


def test_ln_links_the_file_and_it_stays(emulator: Emulator, fresh: Mount) -> None:
    emulator.add_entity("leads", 123, "Сделка")
    emulator.add_entity("contacts", 45, "Иван")
    uuid = emulator.seed_file("card.pdf", b"%PDF card", linked=(("contacts", 45),))
    ok("ln", fresh.p("files", "card.pdf"), slash(fresh.p("leads", "123")))
    assert emulator.links("leads", 123) == [uuid]
    assert emulator.links("contacts", 45) == [uuid]
    assert ls(fresh.p("files")) == ["card.pdf"]
    assert ls(fresh.p("leads", "123")) == ["card.pdf"]
    assert ino(fresh.p("leads", "123", "card.pdf")) == ino(fresh.p("files", "card.pdf"))
    assert ok("cat", fresh.p("leads", "123", "card.pdf")) == b"%PDF card"
    assert sorted(xattr(fresh.p("files", "card.pdf"), "user.amo.links").split()) == ["contacts/45", "leads/123"]
    assert emulator.file(uuid)["is_trashed"] is False and len(emulator.files(trashed=None)) == 1


def test_mv_from_files_into_a_lead_links_and_the_file_stays(emulator: Emulator, fresh: Mount) -> None:
    emulator.add_entity("leads", 7, "Сделка")
    uuid = emulator.seed_file("price.xlsx", b"prices", linked=())
    ok("mv", fresh.p("files", "price.xlsx"), slash(fresh.p("leads", "7")))
    assert emulator.links("leads", 7) == [uuid]
    assert ls(fresh.p("files")) == ["price.xlsx"]
    assert ls(fresh.p("leads", "7")) == ["price.xlsx"]
    f = emulator.file(uuid)
    assert f["is_trashed"] is False and shown(f) == "price.xlsx"
    assert emulator.count("DELETE") == 0 and emulator.count("PATCH") == 0


def test_mv_between_leads_relinks(emulator: Emulator, fresh: Mount) -> None:
    emulator.add_entity("leads", 1, "A")
    emulator.add_entity("leads", 2, "B")
    uuid = emulator.seed_file("spec.pdf", b"spec", linked=(("leads", 1),))
    assert ls(fresh.p("leads", "1")) == ["spec.pdf"]
    assert ls(fresh.p("leads", "2")) == []
    ok("mv", fresh.p("leads", "1", "spec.pdf"), slash(fresh.p("leads", "2")))
    assert emulator.links("leads", 1) == []
    assert emulator.links("leads", 2) == [uuid]
    assert ls(fresh.p("leads", "1")) == []
    assert ls(fresh.p("leads", "2")) == ["spec.pdf"]
    assert ls(fresh.p("files")) == ["spec.pdf"]
    assert xattr(fresh.p("files", "spec.pdf"), "user.amo.links") == "leads/2"


def test_cp_into_a_lead_uploads_and_links(emulator: Emulator, fresh: Mount, tmp_path: Path) -> None:
    emulator.add_entity("leads", 55, "Сделка")
    body = os.urandom(700_000)  # two upload parts
    (tmp_path / "scan.pdf").write_bytes(body)
    assert ls(fresh.p("leads", "55")) == []
    ok("cp", tmp_path / "scan.pdf", slash(fresh.p("leads", "55")))
    f = by_name(emulator, "scan.pdf")  # close() returned: uploaded and linked
    assert emulator.content(f["uuid"]) == body
    assert emulator.links("leads", 55) == [f["uuid"]]
    assert ls(fresh.p("leads", "55")) == ["scan.pdf"]
    assert ls(fresh.p("files")) == ["scan.pdf"]
    assert ok("cat", fresh.p("leads", "55", "scan.pdf")) == body


def test_gio_copy_into_a_lead_uploads_and_links(emulator: Emulator, fresh: Mount, tmp_path: Path) -> None:
    """A drag of a local file onto a lead's folder in a file manager."""
    emulator.add_entity("leads", 56, "Сделка")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8 a photo")
    res = sh("gio", "copy", tmp_path / "photo.jpg", slash(fresh.p("leads", "56")), timeout=60)
    assert res.returncode == 0, res.stderr
    f = by_name(emulator, "photo.jpg")
    assert emulator.content(f["uuid"]) == b"\xff\xd8 a photo"
    assert emulator.links("leads", 56) == [f["uuid"]]
    assert [shown(f) for f in emulator.files(trashed=None)] == ["photo.jpg"]  # no temp name reached the account
    assert ls(fresh.p("leads", "56")) == ["photo.jpg"]


def test_mv_within_a_lead_renames_the_file(emulator: Emulator, fresh: Mount) -> None:
    emulator.add_entity("leads", 12, "Сделка")
    uuid = emulator.seed_file("draft.txt", b"text", linked=(("leads", 12),))
    assert ls(fresh.p("leads", "12")) == ["draft.txt"]
    ok("mv", fresh.p("leads", "12", "draft.txt"), fresh.p("leads", "12", "final.txt"))
    f = emulator.file(uuid)
    assert shown(f) == "final.txt" and f["is_trashed"] is False
    assert emulator.links("leads", 12) == [uuid]
    assert ls(fresh.p("leads", "12")) == ["final.txt"]
    assert ls(fresh.p("files")) == ["final.txt"]
    assert ok("cat", fresh.p("leads", "12", "final.txt")) == b"text"


@pytest.mark.parametrize("folder", ["files", "leads/14"])
@pytest.mark.parametrize("tool", ["sed", "perl"])
def test_in_place_edits_make_a_new_version_and_leave_nothing_behind(
    emulator: Emulator, fresh: Mount, folder: str, tool: str
) -> None:
    """`sed -i` and `perl -pi` write a temp file beside the original and rename it over it: the edit is a new
    version of the same file (its links kept), and the temp name never reaches the account, trash included."""
    emulator.add_entity("leads", 14, "Сделка")
    uuid = emulator.seed_file("prices.csv", b"a,b\nc,d\n", linked=(("leads", 14),))
    path = fresh.p(*folder.split("/"), "prices.csv")
    cmd = ["sed", "-i", "s/,/;/"] if tool == "sed" else ["perl", "-pi", "-e", "s/,/;/"]
    ok(*cmd, path)
    assert ok("cat", path) == b"a;b\nc;d\n"
    assert emulator.content(uuid) == b"a;b\nc;d\n"
    assert [f["uuid"] for f in emulator.files(trashed=None)] == [uuid]  # nothing else, live or trashed
    assert emulator.links("leads", 14) == [uuid]
    assert ls(fresh.p("leads", "14")) == ["prices.csv"] and ls(fresh.p("files")) == ["prices.csv"]
    assert ls(fresh.p("trash")) == []


def test_rm_in_a_lead_unlinks_only(emulator: Emulator, fresh: Mount) -> None:
    emulator.add_entity("leads", 9, "Сделка")
    emulator.add_entity("contacts", 10, "Иван")
    uuid = emulator.seed_file("keep.pdf", b"keep", linked=(("leads", 9), ("contacts", 10)))
    ok("rm", fresh.p("leads", "9", "keep.pdf"))
    assert emulator.links("leads", 9) == []
    assert emulator.links("contacts", 10) == [uuid]
    assert emulator.file(uuid)["is_trashed"] is False
    assert emulator.count("DELETE", "/v1.0/files") == 0
    assert ls(fresh.p("leads", "9")) == []
    assert ls(fresh.p("files")) == ["keep.pdf"]
    assert ls(fresh.p("trash")) == []


def test_entity_folder_reads_every_page(emulator_factory: Any, mnt: Path, mount_factory: MountFactory) -> None:
    from amofs.emulator.server import SeedItem

    # the client halves a refused page size (250 → 125 → 62 → 31); 70 links then take three pages
    emu = emulator_factory(max_page_size=31)
    emu.add_entity("companies", 77, "ООО Ромашка")
    uuids = emu.seed_many(SeedItem(f"doc{i:02d}.txt", b"d", (("companies", 77),)) for i in range(70))
    m = mount_factory(emu, mnt, "--cache-ttl", "60")
    assert len(ls(m.p("files"))) == 70  # (so the folder's files need no models of their own)
    emu.reset_log()
    assert ls(m.p("companies", "77")) == [f"doc{i:02d}.txt" for i in range(70)]
    assert sorted(emu.links("companies", 77)) == sorted(uuids)
    pages = [r for r in emu.log if r.method == "GET" and r.path == "/api/v4/companies/77/files" and r.status == 200]
    assert len(pages) == 3
    assert sum("before_id" in r.query for r in pages) == 2


# --- GIO's trash: "Move to Trash" in a file manager ----------------------------------------------------------


def test_gio_trash_moves_the_file_to_the_account_trash(emulator: Emulator, fresh: Mount, tmp_path: Path) -> None:
    uuid = emulator.seed_file("draft.docx", b"a draft", linked=())
    home = tmp_path / "home"
    data = tmp_path / "xdgdata"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(data))
    assert ls(fresh.p("files")) == ["draft.docx"]
    res = subprocess.run(
        ["gio", "trash", str(fresh.p("files", "draft.docx"))], capture_output=True, timeout=60, env=env
    )
    assert res.returncode == 0, res.stderr
    assert emulator.file(uuid)["is_trashed"] is True
    assert emulator.content(uuid) == b"a draft"
    assert ls(fresh.p("files")) == []
    assert ls(fresh.p("trash")) == ["draft.docx"]
    assert f".Trash-{os.getuid()}" in ls(fresh.path)  # GIO used the mount's own trash folder
    # nothing was copied to the local disk, and nothing but the file reached the account
    local = [p for p in (*home.rglob("*"), *data.rglob("*")) if p.is_file()]
    assert local == []
    assert emulator.count("POST", "/v1.0/sessions") == 0
    assert [shown(f) for f in emulator.files(trashed=None)] == ["draft.docx"]
    assert fresh.proc.poll() is None


# --- search/ -------------------------------------------------------------------------------------------------


def test_search_lists_matches_read_only(acct: Acct, tmp_path: Path) -> None:
    d = acct.p("search", "ACME")
    assert ls(d) == ["ACME logo.png", "invoice ACME 7.pdf"]
    assert ok("cat", d / "invoice ACME 7.pdf") == b"%PDF acme invoice"
    assert "ACME" in ls(acct.p("search"))
    (tmp_path / "z.txt").write_bytes(b"z")
    before = len(acct.emu.files(trashed=None))
    fails(sh("cp", tmp_path / "z.txt", d / "z.txt"), "Read-only file system")
    fails(sh("rm", "-f", d / "ACME logo.png"), "Read-only file system")
    fails(sh("mv", acct.p("files", "unrelated.txt"), slash(d)), "Read-only file system")
    assert len(acct.emu.files(trashed=None)) == before
    assert acct.emu.file(acct.uuids["acme2"])["is_trashed"] is False
    assert "unrelated.txt" in ls(acct.p("files"))


def test_writing_a_file_through_search_is_erofs(emulator: Emulator, fresh: Mount) -> None:
    """search/ is read-only, also for the files it lists (not only for new names)."""
    uuid = emulator.seed_file("ACME logo.png", b"\x89PNG acme", linked=())
    d = fresh.p("search", "ACME")
    assert ls(d) == ["ACME logo.png"]
    assert pyerr("open(sys.argv[2], 'ab').close()", d / "ACME logo.png") == "EROFS"
    fails(sh("sh", "-c", f"echo more >> '{d / 'ACME logo.png'}'"), "Read-only file system")
    assert emulator.content(uuid) == b"\x89PNG acme"
    assert len(emulator.versions(uuid)) == 1


def test_search_matches_linked_entity_names(acct: Acct) -> None:
    # "Иван Петров" is the contact offer.pdf is linked to; the term matches entity names too
    assert ls(acct.p("search", "Петров")) == ["offer.pdf"]


# --- caching: changes made through the mount show at once, with no request ----------------------------------


def test_a_file_linked_with_ln_shows_in_the_lead_at_once(emulator: Emulator, fresh: Mount) -> None:
    emulator.add_entity("leads", 31, "Сделка")
    uuid = emulator.seed_file("fast.pdf", b"f", linked=())
    assert ls(fresh.p("files")) == ["fast.pdf"]
    assert ls(fresh.p("leads", "31")) == []
    emulator.reset_log()
    ok("ln", fresh.p("files", "fast.pdf"), slash(fresh.p("leads", "31")))
    assert ls(fresh.p("leads", "31")) == ["fast.pdf"]
    ok("ls", "-l", fresh.p("leads", "31"))
    assert emulator.links("leads", 31) == [uuid]
    assert emulator.count("PUT", "/api/v4/leads/31/files") == 1
    assert emulator.count("GET") == 0, [(r.method, r.path) for r in emulator.log]
    assert len(emulator.log) == 1


def test_a_removed_file_shows_in_trash_at_once(emulator: Emulator, fresh: Mount) -> None:
    uuid = emulator.seed_file("gone.txt", b"g", linked=())
    emulator.seed_file("older.txt", b"o", trashed=True, linked=())
    assert ls(fresh.p("files")) == ["gone.txt"]
    assert ls(fresh.p("trash")) == ["older.txt"]
    emulator.reset_log()
    ok("rm", fresh.p("files", "gone.txt"))
    assert ls(fresh.p("files")) == []
    assert ls(fresh.p("trash")) == ["gone.txt", "older.txt"]
    ok("ls", "-l", fresh.p("trash"))
    assert ok("stat", "-c", "%a", fresh.p("trash", "gone.txt")).decode().strip() == "444"
    assert emulator.file(uuid)["is_trashed"] is True
    assert emulator.count("DELETE", "/v1.0/files") == 1
    assert emulator.count("GET") == 0, [(r.method, r.path) for r in emulator.log]
    assert len(emulator.log) == 1
