"""Restart on the same data, the demo account, the command line, bulk seeding, and the name rules."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest

from amofs.emulator.demo import ENTITIES, seed_demo
from amofs.emulator.filenames import sanitize, split_name
from amofs.emulator.server import Emulator, EmulatorOptions

LINE = re.compile(r"^amofs emulator: account=(http://127\.0\.0\.1:\d+) drive=(http://127\.0\.0\.1:\d+) token=(\S+)$")


def test_restart_keeps_everything(emulator_factory: Any, http_for: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    emu = emulator_factory(data_dir=data_dir)
    http = http_for(emu)
    kept = http.upload("kept.txt", b"kept bytes")
    http.drive("DELETE", "/v1.0/files", json=[{"uuid": emu.seed_file("gone.txt", b"x")}])
    s = http.session("half.bin", 20).json()
    nxt = http.bare.post(s["upload_url"], content=b"0123456789").json()["next_url"]
    token, account_uuid = emu.token, emu.account_uuid
    emu.stop()
    emu.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(emu.drive_url + "/v1.0/files", timeout=5)

    again = emulator_factory(data_dir=data_dir)
    assert (again.token, again.account_uuid) == (token, account_uuid)
    http2 = http_for(again)
    assert [f["uuid"] for f in http2.files()] == [kept["uuid"]]
    assert len(http2.files("filter[deleted]")) == 1
    assert again.content(kept["uuid"]) == b"kept bytes"
    assert again.sessions_open() == 1
    # the half-done upload goes on: same session, part URL signed with the kept secret (old port, new host)
    moved = nxt.replace(emu.upload_url, again.upload_url)
    done = http2.bare.post(moved, content=b"abcdefghij")
    assert done.status_code == 200 and again.content(done.json()["uuid"]) == b"0123456789abcdefghij"


def test_fixed_ports_and_token(tmp_path: Path) -> None:
    with socket.socket() as s1, socket.socket() as s2:
        s1.bind(("127.0.0.1", 0))
        s2.bind(("127.0.0.1", 0))
        ports = s1.getsockname()[1], s2.getsockname()[1]
    with Emulator(tmp_path, EmulatorOptions(token="fixed"), port=ports[0], drive_port=ports[1]) as emu:
        assert (emu.account_url, emu.drive_url) == (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
        assert emu.token == "fixed"
        r = httpx.get(emu.drive_url + "/v1.0/files", headers={"Authorization": "Bearer fixed"}, timeout=10)
        assert r.status_code == 204
        with pytest.raises(OSError, match="cannot listen"):
            Emulator(tmp_path / "other", port=ports[0]).start()


def test_demo_account(emulator: Any, http: Any) -> None:
    seed_demo(emulator)
    live, trashed = emulator.files(trashed=False), emulator.files(trashed=True)
    assert len(trashed) == 3 and 25 <= len(live) <= 60
    shown = [f["name"] + ("." + f["metadata"]["extension"] if f["metadata"]["extension"] else "") for f in live]
    for name in ("Договор поставки.pdf", "Счёт №15.pdf", "Акт 01/2024.pdf", "empty.txt", "backup.bin", ".env"):
        assert name in shown, name
    assert shown.count("Отчёт.txt") == 2
    sizes = {f["size"] for f in live}
    assert 0 in sizes and 3 * 2**20 in sizes
    by_name = {s: f for s, f in zip(shown, live, strict=True)}
    assert len(emulator.versions(by_name["План работ.md"]["uuid"])) == 3
    png = emulator.content(by_name["logo.png"]["uuid"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")
    pdf = emulator.content(by_name["Договор поставки.pdf"]["uuid"])
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    xref = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
    assert pdf[xref : xref + 4] == b"xref"
    with zipfile.ZipFile(BytesIO(emulator.content(by_name["Коммерческое предложение.docx"]["uuid"]))) as z:
        assert "word/document.xml" in z.namelist()
    for kind, entity_id, _ in ENTITIES:
        if kind in ("leads", "contacts"):
            assert emulator.links(kind, entity_id), (kind, entity_id)
    assert http.account("GET", "/api/v4/leads/1001/files").status_code == 200
    found = http.files("filter[term]=Ромашк")  # via the linked company's and lead's names
    assert by_name["Договор поставки.pdf"]["uuid"] in {f["uuid"] for f in found}


def test_demo_is_deterministic(tmp_path: Path) -> None:
    contents = []
    for d in ("a", "b"):
        emu = Emulator(tmp_path / d)
        seed_demo(emu)
        contents.append([(f["name"], f["size"], f["created_at"]) for f in emu.files()])
        contents.append(sorted(emu.content(f["uuid"]) for f in emu.files()))
        emu.stop()
    assert contents[0] == contents[2] and contents[1] == contents[3]


def test_seed_many_is_fast(emulator: Any, http: Any) -> None:
    t = time.monotonic()
    uuids = emulator.seed_many((f"file {i}.txt", b"same") for i in range(20_000))
    assert time.monotonic() - t < 5  # 100,000 take about 3 s on the 2-core dev box
    assert len(set(uuids)) == 20_000 and emulator.state()["files"] == 20_000
    blobs = [p for p in (emulator.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1  # identical contents share one blob
    r = http.drive("GET", "/v1.0/files?limit=250&page=80")
    assert r.status_code == 200 and r.json()["_count"] == 250 and "next" not in r.json()["_links"]


@pytest.mark.parametrize(
    ("file_name", "name", "ext"),
    [
        ("contract.pdf", "contract", "pdf"),
        ("archive.tar.gz", "archive.tar", "gz"),
        (".env", ".env", ""),
        ("notes.", "notes.", ""),
        ("Makefile", "Makefile", ""),
        ("Акт 01/2024.pdf", "Акт 01/2024", "pdf"),
        ("v1.0/readme", "v1.0/readme", ""),
        ("a.b c", "a.b c", ""),
    ],
)
def test_name_split(file_name: str, name: str, ext: str) -> None:
    assert split_name(file_name) == (name, ext)


def test_sanitize() -> None:
    assert sanitize("_96") == "-96"  # the spec's own example
    assert sanitize("Договор поставки") == "Dogovor-postavki"
    assert sanitize("Счёт №15") == "Schyot-15"
    assert sanitize("///") == "-" and sanitize("") == "file"


# -- command line (subprocess) ------------------------------------------------------------------------------


def _start_cli(args: list[str]) -> tuple[subprocess.Popen[str], re.Match[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "amofs.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().rstrip("\n")  # the process prints it within a second or two
    m = LINE.match(line)
    if m is None:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"bad first line {line!r}; stderr: {err}")
    return proc, m


def test_cli_line_demo_data_and_sigterm(tmp_path: Path) -> None:
    proc, m = _start_cli(["--data", str(tmp_path), "--demo-data", "--token", "T0K", "--rate-limit", "50"])
    try:
        account, drive, token = m.groups()
        assert token == "T0K" and account != drive
        headers = {"Authorization": "Bearer T0K"}
        r = httpx.get(account + "/api/v4/account?with=drive_url", headers=headers, timeout=10)
        assert r.json()["drive_url"] == drive
        files = httpx.get(drive + "/v1.0/files?limit=250", headers=headers, timeout=10).json()
        assert files["_count"] >= 25
        opts = httpx.get(account + "/_emulator/options", headers=headers, timeout=10).json()
        assert opts["rate_limit"] == 50.0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and out == "" and "Traceback" not in err
    # a second start on the same data does not seed again
    proc, m = _start_cli(["--data", str(tmp_path), "--demo-data", "--token", "T0K"])
    try:
        again = httpx.get(m[2] + "/v1.0/files?limit=250", headers={"Authorization": "Bearer T0K"}, timeout=10)
        assert again.json()["_count"] == files["_count"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "amofs.emulator", "--data", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "cannot listen" in r.stderr and "Traceback" not in r.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "amofs.emulator", "--rate-limit", "fast"], capture_output=True, text=True, timeout=20
    )
    assert bad.returncode == 2 and "rate_limit" in bad.stderr and "Traceback" not in bad.stderr


def test_the_generated_token_never_reads_as_an_option(emulator_factory: Any) -> None:
    """`amofs mount --token TOKEN` with a token beginning with "-" fails in argparse (it was 1 run in 64)."""
    assert emulator_factory().token.startswith("emu-")
