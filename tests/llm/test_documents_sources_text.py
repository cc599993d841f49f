"""The sources under a reply: labels and the Markdown list, with hostile document text."""

from __future__ import annotations

from llm.documents.sources_text import SourceWords, excerpt, source_label, sources_markdown


def _row(source: str, page: int | None = None, section: str = "", text: str = "") -> dict:
    return {"collection": "c", "source": source, "page": page, "section": section, "text": text}


def test_labels_name_the_file_and_its_page_or_section() -> None:
    assert source_label(_row("/docs/festival.pdf", page=2)) == "festival.pdf, page 2"
    assert source_label(_row("/docs/pets.md", section="Cats")) == "pets.md, “Cats”"
    assert source_label(_row("/docs/river.txt")) == "river.txt"
    korean = SourceWords("출처", "{page}쪽", "“{section}”")
    assert source_label(_row("/docs/festival.pdf", page=2), korean) == "festival.pdf, 2쪽"


def test_the_list_is_numbered_as_cited_and_empty_without_sources() -> None:
    text = sources_markdown(
        [_row("/d/festival.pdf", 2, text="The Zorblat festival."), _row("/d/pets.md", None, "Cats")]
    )
    lines = text.splitlines()
    assert lines[0] == "**Sources**"
    assert lines[2].startswith("1. **festival\\.pdf, page 2** — *The Zorblat festival\\.*")
    assert lines[3] == "2. **pets\\.md, “Cats”**"
    assert sources_markdown([]) == ""


def test_document_text_cannot_make_links_images_or_break_the_list() -> None:
    hostile = _row(
        "/d/[click](javascript:alert(1)).md",
        section="**bold** <b>x</b>",
        text="![x](http://evil.example/t.png)\n\n# Heading\n- item `code`",
    )
    text = sources_markdown([hostile])
    body = text.split("\n", 2)[2]
    assert body.count("\n") == 1  # one line for the one source
    for raw in ("](", "![", "<b>", "\n#", "`code`"):
        assert raw not in body
    assert "\\]\\(javascript\\:alert\\(1\\)\\)" in body


def test_long_passages_are_cut_at_a_word() -> None:
    passage = "word " * 100
    cut = excerpt(passage, 40)
    assert cut.endswith("…") and len(cut) <= 41 and "wor…" not in cut
    assert excerpt("short one") == "short one"
