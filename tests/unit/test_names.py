"""Shown names: the escape round trip, splitting, collision names, local-only patterns."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from amofs import names
from amofs.errors import InvalidName, NameTooLong


@given(st.text())
def test_escape_round_trips(s: str) -> None:
    assert names.unescape(names.escape(s)) == s


@given(st.text(min_size=1))
def test_escaped_name_is_a_unix_component(s: str) -> None:
    e = names.escape(s)
    assert "/" not in e and "\0" not in e
    assert e not in (".", "..")


def test_escape_examples() -> None:
    assert names.escape("Акт 01/2024") == "Акт 01／2024"
    assert names.unescape("Акт 01／2024") == "Акт 01/2024"
    assert names.escape("a／b") == "a‛／b"  # a literal fullwidth slash stays itself
    assert names.unescape("a‛／b") == "a／b"
    assert names.escape(".") == "．"
    assert names.escape("..") == "．．"


def test_split_and_join() -> None:
    assert names.split("contract.pdf") == ("contract", "pdf")
    assert names.split("archive.tar.gz") == ("archive.tar", "gz")
    assert names.split(".env") == (".env", "")
    assert names.split("README") == ("README", "")
    assert names.split("dots.") == ("dots.", "")
    assert names.join("contract", "pdf") == "contract.pdf"
    assert names.join("README", "") == "README"


@dataclass(frozen=True)
class F:
    uuid: str
    name: str
    extension: str
    created_at: int


def test_collisions_get_stable_uuid_names() -> None:
    a = F("aaaaaaaa-0000-0000-0000-000000000001", "Report", "pdf", 100)
    b = F("bbbbbbbb-0000-0000-0000-000000000002", "Report", "pdf", 200)
    c = F("cccccccc-0000-0000-0000-000000000003", "Report", "pdf", 300)
    got = names.assign([c, a, b])
    assert got == {
        "Report.pdf": a.uuid,
        "Report (bbbbbbbb).pdf": b.uuid,
        "Report (cccccccc).pdf": c.uuid,
    }
    # the suffixed names do not depend on which other files are there
    assert names.assign([b, c])["Report (cccccccc).pdf"] == c.uuid
    assert names.assign([c, b]) == names.assign([b, c])


def test_name_taken_by_a_local_file_suffixes_the_remote_one() -> None:
    a = F("aaaaaaaa-0000-0000-0000-000000000001", "x", "txt", 1)
    assert names.assign([a], taken=["x.txt"]) == {"x (aaaaaaaa).txt": a.uuid}


def test_too_long_service_names_are_cut_with_a_tag() -> None:
    f = F("dddddddd-0000-0000-0000-000000000004", "я" * 200, "docx", 1)
    (shown,) = names.assign([f])
    assert len(shown.encode()) <= 255
    assert shown.endswith(" (dddddddd).docx")


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "Счёт", "x/y"]), st.sampled_from(["", "pdf"])), max_size=30))
def test_assign_gives_every_file_one_distinct_name(specs: list[tuple[str, str]]) -> None:
    files = [F(f"{i:08x}-0000-0000-0000-000000000000", n, e, i % 3) for i, (n, e) in enumerate(specs)]
    got = names.assign(files)
    assert sorted(got.values()) == sorted(f.uuid for f in files)
    assert all("/" not in n for n in got)


def test_local_only_patterns() -> None:
    p = names.DEFAULT_LOCAL_PATTERNS
    for n in (".~lock.Договор.odt#", "~$Report.docx", ".notes.txt.swp", ".goutputstream-ABC123", "draft.txt~"):
        assert names.is_local_only(n, p), n
    for n in ("Договор.odt", "notes.txt", "lock.txt"):
        assert not names.is_local_only(n, p), n


def test_rename_temp_names() -> None:
    assert names.is_rename_temp(".report.pdf.Ab12Cd")  # rsync
    assert names.is_rename_temp(".goutputstream-XYZ123")
    assert not names.is_rename_temp("report.pdf")
    assert not names.is_rename_temp(".bashrc")


def test_check_component() -> None:
    names.check_component("ok.txt")
    try:
        names.check_component("x" * 256)
        raise AssertionError("no error")
    except NameTooLong:
        pass
    try:
        names.check_component("bad\udcff.txt")  # invalid UTF-8 from the kernel, decoded with surrogateescape
        raise AssertionError("no error")
    except InvalidName:
        pass
