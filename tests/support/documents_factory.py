"""Documents for tests, generated: one writer per format (PDF pages, DOCX with a table,
Markdown, text, HTML) and hostile files (an encrypted PDF, a corrupt DOCX, binary data named
.txt, a file over the size limit, a DOCX that unpacks to too much)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: Sequence[str], *, password: str | None = None) -> Path:
    """A PDF with one page per text (Helvetica, Latin-1 text, lines split on newlines)."""
    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    for text in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        lines = " T* ".join(f"({_pdf_text(line)}) Tj" for line in text.splitlines() or [""])
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 11 Tf 14 TL 72 720 Td {lines} ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    with open(path, "wb") as file:
        writer.write(file)
    return path


def write_docx(
    path: Path, sections: Sequence[tuple[str, str]], table: Sequence[Sequence[str]] = ()
) -> Path:
    """A DOCX: (heading, paragraph) sections, then a table (rows of cells) if given."""
    import docx

    document = docx.Document()
    for heading, text in sections:
        document.add_heading(heading, level=1)
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    document.save(str(path))
    return path


def write_text(path: Path, text: str) -> Path:
    """A UTF-8 text, Markdown or HTML file."""
    path.write_text(text, encoding="utf-8")
    return path


def write_html(path: Path, title: str, sections: Sequence[tuple[str, str]]) -> Path:
    """An HTML page with a script and a nav (which must not be indexed) and h2 sections."""
    body = "".join(f"<h2>{h}</h2><p>{t}</p>" for h, t in sections)
    html = (
        f"<html><head><title>{title}</title><style>p {{color: red}}</style></head><body>"
        f"<nav>Home | About</nav><script>var secret = 'do not index';</script>"
        f"<h1>{title}</h1>{body}</body></html>"
    )
    return write_text(path, html)


def write_corrupt_docx(path: Path) -> Path:
    """A zip named .docx that holds no Word document."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w:document><unclosed>")
    return path


def write_zip_bomb_docx(path: Path, unpacked_bytes: int) -> Path:
    """A small .docx whose one member unpacks to `unpacked_bytes` of zeros."""
    block = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("word/document.xml", "w") as member,
    ):
        for _ in range(unpacked_bytes // len(block)):
            member.write(block)
    return path


def write_binary(path: Path, size: int = 4096) -> Path:
    """Binary data (with NUL bytes) under whatever name is given, e.g. notes.txt."""
    path.write_bytes(bytes(range(256)) * (size // 256))
    return path


def write_oversize(path: Path, size: int) -> Path:
    """A sparse file of `size` bytes (takes no disk space)."""
    with open(path, "wb") as file:
        file.truncate(size)
    return path


# Made-up facts, one file of each format, that no model can know from training.
FACTS = {
    "festival.pdf": "The Zorblat festival is held in Quenville every April. It celebrates "
    "purple turnips.",
    "budget.docx": "The Moonbase project costs 7,400 gold crowns.",
    "pets.md": "My cat is named Biscuit Thunderpaw.",
    "river.txt": "The Velvo river is 312 kilometres long.",
    "mountain.html": "Mount Brel is 4,210 metres high.",
}
KOREAN = {
    "seoul.md": "# 서울\n서울은 대한민국의 수도이다. 인구가 많다.\n",
    "river-ko.txt": "한강은 서울을 가로질러 흐르는 강이다.",
}


def write_fact_files(folder: Path, *, korean: bool = True) -> Path:
    """One file of each format carrying FACTS (the PDF's fact on page 2, the DOCX's in a
    section with a table), plus KOREAN text files; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    write_pdf(
        folder / "festival.pdf",
        ["An introduction to the town of Quenville and its hills.", FACTS["festival.pdf"]],
    )
    write_docx(
        folder / "budget.docx",
        [("Budget", FACTS["budget.docx"]), ("Crew", "The crew trains in the desert.")],
        [["Item", "Owner"], ["Moonbase", "Captain Ferrow"]],
    )
    write_text(folder / "pets.md", f"# Pets\n## Cats\n{FACTS['pets.md']}\n## Dogs\nNo dogs.\n")
    write_text(folder / "river.txt", FACTS["river.txt"])
    write_html(folder / "mountain.html", "Mountains", [("Mount Brel", FACTS["mountain.html"])])
    if korean:
        for name, text in KOREAN.items():
            write_text(folder / name, text)
    return folder
