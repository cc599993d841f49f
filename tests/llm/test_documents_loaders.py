"""Reading documents (llm/documents/loaders.py) from generated files of every format, and
hostile files: each is refused with its reason, nothing else is affected."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document
from support.documents_factory import (
    FACTS,
    write_binary,
    write_corrupt_docx,
    write_fact_files,
    write_oversize,
    write_pdf,
    write_text,
    write_zip_bomb_docx,
)

from llm.documents import loaders
from llm.documents.errors import UnreadableFileError
from llm.documents.loaders import DocumentFileLoader, decode_text
from llm.documents.splitting import CHUNK_CHARS, split_documents


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fact_files(tmp_path_factory.mktemp("facts"))


def load(path: Path) -> list[tuple[int | None, str, str]]:
    return [
        (d.metadata.get("page"), d.metadata.get("section", ""), d.page_content)
        for d in DocumentFileLoader(path).load()
    ]


def test_pdf_pages_keep_their_numbers(facts: Path) -> None:
    pages = load(facts / "festival.pdf")
    assert [page for page, _, _ in pages] == [1, 2]
    assert FACTS["festival.pdf"].split(".")[0] in pages[1][2].replace("\n", " ")


def test_docx_sections_and_tables(facts: Path) -> None:
    sections = load(facts / "budget.docx")
    assert [section for _, section, _ in sections] == ["Budget", "Crew"]
    assert FACTS["budget.docx"] in sections[0][2]
    assert "Moonbase | Captain Ferrow" in sections[1][2]  # the table, row by row


def test_markdown_sections(facts: Path) -> None:
    sections = load(facts / "pets.md")
    cats = [text for _, section, text in sections if section == "Cats"]
    assert cats and FACTS["pets.md"] in cats[0]


def test_html_visible_text_only(facts: Path) -> None:
    sections = load(facts / "mountain.html")
    text = "\n".join(t for _, _, t in sections)
    assert FACTS["mountain.html"] in text
    assert "secret" not in text and "Home | About" not in text and "color" not in text
    assert "Mount Brel" in [section for _, section, _ in sections]


def test_text_and_encodings(facts: Path, tmp_path: Path) -> None:
    assert load(facts / "river.txt")[0][2] == FACTS["river.txt"]
    assert decode_text("서울은 크다".encode("cp949")) == "서울은 크다"  # legacy Korean files
    assert decode_text("\ufeffhé".encode()) == "hé"
    assert decode_text("hé".encode("utf-16")) == "hé"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: write_pdf(d / "locked.pdf", ["secret"], password="pw"), "encrypted"),
        (lambda d: write_corrupt_docx(d / "broken.docx"), "not a readable DOCX"),
        (lambda d: write_text(d / "fake.docx", "just text"), "not a zip archive"),
        (lambda d: (d / "fake.pdf").write_bytes(b"%PDF-1.4 garbage") and d / "fake.pdf", "PDF"),
        (lambda d: write_binary(d / "notes.txt"), "binary"),
        (lambda d: write_oversize(d / "huge.txt", 500 * 2**20), "500 MB"),
        (lambda d: write_zip_bomb_docx(d / "bomb.docx", 300 * 2**20), "unpacks to 300 MB"),
        (lambda d: write_text(d / "empty.md", "   \n"), "no text"),
    ],
)
def test_hostile_files_are_refused_with_the_reason(
    tmp_path: Path, make: object, reason: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(UnreadableFileError, match=reason):
        DocumentFileLoader(path).load()


def test_character_cap_keeps_the_start_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loaders, "MAX_CHARS", 1000)
    path = write_pdf(tmp_path / "long.pdf", ["a" * 600, "b" * 600, "c" * 600])
    loader = DocumentFileLoader(path)
    pages = loader.load()
    assert sum(len(d.page_content) for d in pages) == 1000
    assert [d.metadata["page"] for d in pages] == [1, 2]
    assert "page 2" in loader.note


def test_reading_stops_at_the_deadline(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "slow.pdf", ["page"] * 5)
    with pytest.raises(UnreadableFileError, match="longer than"):
        DocumentFileLoader(path, time_limit_s=-1).load()


def test_passages_keep_page_and_section(facts: Path) -> None:
    parts = split_documents(DocumentFileLoader(facts / "festival.pdf").load())
    assert [p.page for p in parts] == [1, 2]
    chunks = split_documents([Document(page_content="word " * 1000)])[0].chunks
    assert len(chunks) > 5 and all(len(c.text) <= CHUNK_CHARS for c in chunks)
