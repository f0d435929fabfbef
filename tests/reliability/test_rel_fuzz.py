"""Fuzzing with hypothesis: name escaping and collision names (every file gets one valid, distinct, stable Unix
name whatever the service calls it), the model parsers (any JSON gives a model or ProtocolError, nothing else),
and the client's handling of arbitrary HTTP answers (only AmoError ever comes out)."""

from __future__ import annotations

import contextlib
import json
import os
import random
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from amofs import names
from amofs.api.client import AmoClient
from amofs.api.models import (
    DriveStats,
    EntityFileLink,
    FileModel,
    LinkedEntity,
    UploadSession,
    VersionModel,
    parse_part_reply,
)
from amofs.errors import AmoError, InvalidName, NameTooLong, ProtocolError

HOSTILE = "/\0.．‛／␀ \t\n\\\"'#%?*:<>|~$-_"
# names as the parsers hand them on: any Unicode (lone surrogates became U+FFFD in amofs.api.models)
hostile_text = st.text(alphabet=st.sampled_from(HOSTILE) | st.characters(exclude_categories=("Cs",)), max_size=300)


@dataclass(frozen=True)
class F:
    uuid: str
    name: str
    extension: str
    created_at: int


uuids = st.uuids().map(str)
files = st.lists(
    st.builds(
        F, uuid=uuids, name=hostile_text, extension=hostile_text.map(lambda s: s[:20]), created_at=st.integers(0, 3)
    ),
    max_size=30,
    unique_by=lambda f: f.uuid,
)


def valid_component(n: str) -> None:
    b = n.encode("utf-8")  # no surrogates: os.fsencode would give these exact bytes
    assert b and len(b) <= names.NAME_MAX, n
    assert "/" not in n and "\0" not in n and n not in (".", ".."), n
    assert os.fsencode(n) == b


@given(files)
@settings(max_examples=300, deadline=None)
def test_every_file_gets_one_valid_distinct_stable_name(fs: list[F]) -> None:
    shown = names.assign(fs)
    assert sorted(shown.values()) == sorted(f.uuid for f in fs)  # one name each
    for n, uuid in shown.items():
        valid_component(n)
        plain = names.fit(names.shown(*next((f.name, f.extension) for f in fs if f.uuid == uuid)), "", uuid)
        if n != plain:
            assert uuid.replace("-", "")[:8] in n  # a collision or cut name carries its own uuid
    # the same files in another order (another page size, another listing) get the same names
    again = names.assign(random.Random(len(fs)).sample(fs, len(fs)))
    assert again == shown
    # a file listed twice gets one name
    assert names.assign([*fs, *fs[:3]]) == shown


@given(hostile_text, hostile_text.map(lambda s: s[:20]))
@settings(max_examples=500, deadline=None)
def test_a_shown_name_leads_back_to_the_service_name(name: str, ext: str) -> None:
    shown = names.shown(name, ext)
    full = names.join(name, ext)
    assert names.unescape(shown) == full
    valid_component(names.fit(shown, ext, "3f2a9c01-0000-4000-8000-000000000000"))
    if shown and len(shown.encode()) <= names.NAME_MAX:
        assert names.fit(shown, ext, "3f2a9c01-0000-4000-8000-000000000000") == shown
        # what the user types back (the shown name) splits into what the service holds, when the split is
        # unambiguous (an extension with no dot of its own)
        if ext and "." not in ext and name:
            assert names.split(names.unescape(shown)) == (name, ext)


@given(st.binary(max_size=400))
@settings(max_examples=500, deadline=None)
def test_any_bytes_from_the_kernel_are_a_name_or_a_clear_refusal(raw: bytes) -> None:
    assume(b"/" not in raw and b"\0" not in raw)  # the kernel never passes these in one component
    name = os.fsdecode(raw)
    try:
        names.check_component(name)
    except NameTooLong:
        assert len(raw) > names.NAME_MAX
        return
    except InvalidName:
        return
    assert raw.decode("utf-8") == name and 0 < len(raw) <= names.NAME_MAX
    names.unescape(name).encode("utf-8")  # what would be sent to the account is valid


# --- model parsers ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=5),
    max_leaves=20,
)
FILE_KEYS = [
    "uuid",
    "version_uuid",
    "name",
    "sanitized_name",
    "metadata",
    "type",
    "size",
    "is_trashed",
    "has_multiple_versions",
    "source_id",
    "created_at",
    "updated_at",
    "deleted_at",
    "_links",
    "file_uuid",
    "is_main",
    "session_id",
    "upload_url",
    "max_file_size",
    "max_part_size",
    "next_url",
    "id",
    "entity_type",
    "limit",
    "used",
]
near_models = st.dictionaries(
    st.sampled_from(FILE_KEYS), json_values | st.text(alphabet="\ud800abc", max_size=5), max_size=len(FILE_KEYS)
)
GOOD_FILE = {
    "uuid": "6b9c1f14-3d0f-4a57-8c3a-0f1f2d1c6b9e",
    "version_uuid": "0e8a6c62-6a7c-4d0b-9a53-1f2a3b4c5d6e",
    "name": "Договор",
    "metadata": {"extension": "pdf", "mime_type": "application/pdf"},
    "size": 1024,
    "created_at": 1700000000,
    "_links": {"download": {"href": "https://drive.example/download/x"}},
}
PARSERS = [
    FileModel.from_json,
    VersionModel.from_json,
    UploadSession.from_json,
    parse_part_reply,
    EntityFileLink.from_json,
    LinkedEntity.from_json,
    DriveStats.from_json,
]


def no_surrogates(obj: Any) -> None:
    for v in getattr(obj, "__slots__", ()):
        val = getattr(obj, v)
        if isinstance(val, str):
            val.encode("utf-8")


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__qualname__)
@given(data=json_values | near_models | st.builds(lambda d: {**GOOD_FILE, **d}, near_models))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_json_is_a_model_or_a_protocol_error(parse: Any, data: Any) -> None:
    try:
        model = parse(data)
    except ProtocolError:
        return
    no_surrogates(model)
    if isinstance(model, FileModel | VersionModel):
        assert model.uuid and model.size >= 0
    if isinstance(model, UploadSession):
        assert model.max_part_size > 0 and model.upload_url


GOOD_VERSION = {**GOOD_FILE, "file_uuid": GOOD_FILE["uuid"], "is_main": True}


def mutated(good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``good`` with each field kept, dropped or replaced by any JSON value (or a string with a surrogate)."""
    drop = object()
    field = json_values | st.text(alphabet="\ud800\udfffab", max_size=4) | st.integers(-(2**63), -1)
    return st.fixed_dictionaries({k: st.just(v) | st.just(drop) | field for k, v in good.items()}).map(
        lambda d: {k: v for k, v in d.items() if v is not drop}
    )


@given(mutated(GOOD_FILE), mutated(GOOD_VERSION))
@settings(max_examples=500, deadline=None)
def test_mutated_models_parse_safely(f: dict[str, Any], v: dict[str, Any]) -> None:
    for parse, data in ((FileModel.from_json, f), (VersionModel.from_json, v)):
        try:
            model = parse(data)
        except ProtocolError:
            continue
        no_surrogates(model)
        assert model.size >= 0 and model.uuid
        assert isinstance(model.size, int) and isinstance(model.created_at, int)


# --- the client and arbitrary answers --------------------------------------------------------------------------

statuses = st.sampled_from([200, 201, 202, 204, 206, 301, 302, 400, 401, 403, 404, 409, 413, 416, 429, 500, 502])
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_models.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda d: json.dumps({"_embedded": {"files": [d]}, "_count": 1}).encode(),
        st.builds(lambda d: {**GOOD_FILE, **d}, near_models),
    ),
    st.just(b"<html><body>502 Bad Gateway</body></html>"),
)
ctypes = st.sampled_from(["application/json", "application/hal+json", "text/html", "application/problem+json", ""])
answers = st.lists(st.tuples(statuses, ctypes, bodies), min_size=1, max_size=4)

CALLS = {
    "list_files": lambda c: c.list_files(),
    "get_file": lambda c: c.get_file(GOOD_FILE["uuid"]),
    "rename_file": lambda c: c.rename_file(GOOD_FILE["uuid"], "x"),
    "restore_files": lambda c: c.restore_files([GOOD_FILE["uuid"]]),
    "versions": lambda c: c.versions(GOOD_FILE["uuid"]),
    "create_session": lambda c: c.create_session("a.txt", 10),
    "upload_part": lambda c: c.upload_part("https://drive.example/v1.0/sessions/upload/tok", b"0123456789"),
    "entity_files": lambda c: c.entity_files("leads", 1),
    "file_links": lambda c: c.file_links(GOOD_FILE["uuid"]),
    "discover_drive_url": lambda c: c.discover_drive_url(),
    "drive_stats": lambda c: c.drive_stats(),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@given(answers=answers)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_any_answer_gives_a_result_or_an_amo_error(call: str, answers: list[tuple[int, str, bytes]]) -> None:
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        status, ctype, body = queue.pop(0) if len(queue) > 1 else queue[0]
        headers = {"content-type": ctype} if ctype else {}
        if status in (301, 302):
            headers["location"] = "https://elsewhere.example/x"
        return httpx.Response(status, headers=headers, content=body)

    client = AmoClient(
        "https://acct.example",
        token="t",
        drive_url="https://drive.example",
        rate=0,
        max_retries=1,
        part_retries=1,
        backoff_base=0,
        backoff_cap=0,
        transport=httpx.MockTransport(handler),
    )
    async with client:
        with contextlib.suppress(AmoError):
            await CALLS[call](client)
