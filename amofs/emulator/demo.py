"""Sample data for ``amofs emulator --demo-data`` and ``amofs mount --demo``: a small, realistic account.

Owns ``seed_demo(emu)``. Content is deterministic (a fixed random seed, fixed timestamps in 2024): real small
PNGs (zlib), minimal valid PDFs, a docx-like zip, CSV/Markdown/JSON/text, a 3 MiB binary, an empty file,
Cyrillic names, two files with the same name and extension, a name containing "/", names without an extension,
a file with three versions, three files in the trash, and entities (leads 1001/1002, contact 2001, company
3001, customer 4001) with files linked to them. Only the Emulator's direct methods are used (no HTTP).
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
import zlib
from typing import TYPE_CHECKING

from amofs.emulator.store import SeedItem

if TYPE_CHECKING:
    from amofs.emulator.server import Emulator

__all__ = ["ENTITIES", "seed_demo"]

_T0 = 1704186000  # 2024-01-02 12:00 MSK
_DAY = 86400

ENTITIES: tuple[tuple[str, int, str], ...] = (
    ("leads", 1001, "Поставка оборудования для ООО «Ромашка»"),
    ("leads", 1002, "Разработка сайта"),
    ("contacts", 2001, "Иван Петров"),
    ("companies", 3001, "ООО «Ромашка»"),
    ("customers", 4001, "ИП Сидоров"),
)


def png(width: int, height: int, color: tuple[int, int, int], seed: int = 0) -> bytes:
    """A valid RGB PNG: a gradient from ``color`` with a little deterministic noise."""
    rng = random.Random(seed)
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter: none
        for x in range(width):
            shade = (x * 255 // max(1, width - 1) + y * 255 // max(1, height - 1)) // 2
            row += bytes(min(255, (c + shade) // 2 + rng.randrange(8)) for c in color)
        rows.append(bytes(row))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def pdf(lines: list[str]) -> bytes:
    """A minimal valid one-page PDF (Helvetica, ASCII text) with a correct xref table."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 14 Tf", "72 770 Td"]
    for line in lines:
        ops += [f"({esc(line)}) Tj", "0 -20 Td"]
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def docx(paragraphs: list[str]) -> bytes:
    """A docx-like zip (the three parts Word needs), with fixed timestamps so the bytes are deterministic."""
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
        ),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body>{body}</w:body></w:document>"
        ),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 2, 12, 0, 0)), text.encode())
    return buf.getvalue()


def _csv(rng: random.Random, rows: int) -> bytes:
    lines = ["Дата;Контрагент;Сумма;Валюта"]
    names = ["ООО «Ромашка»", "ИП Сидоров", "АО «Вектор»", "ООО «Лето»"]
    for i in range(rows):
        day = 1 + i % 28
        lines.append(f"2024-01-{day:02d};{rng.choice(names)};{rng.randrange(1000, 500000)}.00;RUB")
    return ("\n".join(lines) + "\n").encode()


def _text(rng: random.Random, words: int) -> bytes:
    vocab = [
        "поставка",
        "договор",
        "оплата",
        "счёт",
        "акт",
        "сверка",
        "доставка",
        "склад",
        "менеджер",
        "клиент",
        "срок",
        "цена",
    ]
    out = []
    for i in range(words):
        out.append(rng.choice(vocab))
        if i % 12 == 11:
            out.append(".\n")
    return (" ".join(out) + "\n").encode()


def seed_demo(emu: Emulator) -> list[str]:
    """Fill ``emu`` with the demo account; returns the uuids of the seeded files (versions not included)."""
    rng = random.Random(20240102)
    for kind, entity_id, name in ENTITIES:
        emu.add_entity(kind, entity_id, name)
    lead1, lead2 = ("leads", 1001), ("leads", 1002)
    contact, company, customer = ("contacts", 2001), ("companies", 3001), ("customers", 4001)

    files: list[tuple[str, bytes, tuple[tuple[str, int], ...], bool]] = [
        (
            "Договор поставки.pdf",
            pdf(["Dogovor postavki No. 7", "OOO Romashka", "2024-01-02"]),
            (lead1, company),
            False,
        ),
        ("Счёт №15.pdf", pdf(["Schet No. 15", "Summa: 128 400.00 RUB"]), (lead1,), False),
        ("Акт 01/2024.pdf", pdf(["Akt vypolnennyh rabot 01/2024"]), (lead1, company), False),
        ("Коммерческое предложение.docx", docx(["Коммерческое предложение", "Разработка сайта"]), (lead2,), False),
        ("Прайс-лист.csv", _csv(rng, 40), (lead2,), False),
        ("Выписка январь.csv", _csv(rng, 120), (customer,), False),
        ("README.md", "# Демо-аккаунт amofs\n\nФайлы для пробы `amofs mount --demo`.\n".encode(), (), False),
        ("settings.json", json.dumps({"theme": "dark", "lang": "ru", "items": list(range(10))}).encode(), (), False),
        ("logo.png", png(64, 64, (200, 40, 40), 1), (company,), False),
        ("Фото объекта.png", png(320, 200, (40, 120, 200), 2), (lead1,), False),
        ("Отчёт.txt", _text(rng, 300), (contact,), False),
        ("Отчёт.txt", _text(rng, 150), (), False),
        ("empty.txt", b"", (), False),
        ("backup.bin", rng.randbytes(3 * 2**20), (), False),
        ("Сканы.zip", docx(["scan"] * 50), (lead2, contact), False),
        (".env", b"API_URL=https://example.amocrm.ru\nDEBUG=0\n", (), False),
        ("Makefile", b"all:\n\techo demo\n", (), False),
        ("архив.tar.gz", zlib.compress(_text(rng, 2000)), (), False),
        ("Старый договор.pdf", pdf(["Staryj dogovor"]), (lead1,), True),
        ("черновик.txt", _text(rng, 40), (), True),
        ("tmp.csv", _csv(rng, 5), (), True),
    ]
    for month in range(1, 7):
        files.append((f"Выписка 2024-{month:02d}.csv", _csv(rng, 20 * month), (customer,), False))
    for n in range(1, 7):
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        files.append((f"Фото {n:02d}.png", png(48 + 16 * n, 48, color, 10 + n), (lead2,), False))
    files.append(("Большой отчёт.txt", _text(rng, 200_000), (lead1,), False))

    items = [
        SeedItem(name, data, linked, trashed, created_at=_T0 + i * _DAY + rng.randrange(8 * 3600))
        for i, (name, data, linked, trashed) in enumerate(files)
    ]
    uuids = emu.seed_many(items)

    plan = "# План работ\n\n1. Согласовать ТЗ\n"
    versioned = emu.seed_file("План работ.md", plan.encode(), linked=(lead2,), created_at=_T0 - 10 * _DAY)
    plan += "2. Сверстать макет\n"
    emu.add_version(versioned, "План работ.md", plan.encode(), created_at=_T0 - 5 * _DAY)
    plan += "3. Запустить сайт\n"
    emu.add_version(versioned, "План работ.md", plan.encode(), created_at=_T0 - 1 * _DAY)
    return [*uuids, versioned]
