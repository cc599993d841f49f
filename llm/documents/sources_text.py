"""The sources of a reply as people read them: labels and a Markdown list under the reply.

A source is a row as `Library.sources(message_id)` returns it (and `RetrievedContext.
source_rows()` makes): `collection`, `source` (the file's path), `page` (PDF page or None),
`section` (heading or ""), `text` (the passage), `score`. Every field comes from a document,
which is hostile input: the Markdown here escapes it, so a file name or passage can neither
make a link or image nor break the list. Any view (the chat page's rows now, a conversation
component later) takes the same rows; only the wording (`SourceWords`) is the page's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

EXCERPT_CHARS = 240  # of a passage shown under a reply; the whole passage is in the row
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~=:&$])")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SourceWords:
    """The words around sources, in the page's language."""

    title: str = "Sources"
    page: str = "page {page}"
    section: str = "“{section}”"


def escape_markdown(text: str) -> str:
    """`text` on one line, every Markdown character escaped (shown as written)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _SPACE.sub(" ", text).strip())


def file_name(source: Mapping[str, Any]) -> str:
    """The file name of a source (its path's last part)."""
    return PurePath(str(source.get("source") or "")).name or "?"


def source_label(source: Mapping[str, Any], words: SourceWords = SourceWords()) -> str:
    """'report.pdf, page 3', 'notes.md, “Budget”' or 'report.pdf' (plain text)."""
    page, section = source.get("page"), str(source.get("section") or "")
    if isinstance(page, int):
        where = words.page.format(page=page)
    elif section:
        where = words.section.format(section=section)
    else:
        where = ""
    return ", ".join(filter(None, [file_name(source), where]))


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a passage on one line, cut at a word and marked '…' when longer."""
    flat = _SPACE.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] if " " in flat[:limit] else flat[:limit]
    return cut.rstrip(" ,.;:") + "…"


def sources_markdown(
    sources: Sequence[Mapping[str, Any]], words: SourceWords = SourceWords()
) -> str:
    """A 'Sources' list to put under a reply: numbered as the model was told to cite them
    ([1] is the first), each with its label and the start of its passage; "" when none."""
    if not sources:
        return ""
    lines = [f"**{escape_markdown(words.title)}**", ""]
    for number, source in enumerate(sources, start=1):
        label = escape_markdown(source_label(source, words))
        quote = escape_markdown(excerpt(str(source.get("text") or "")))
        lines.append(f"{number}. **{label}**" + (f" — *{quote}*" if quote else ""))
    return "\n".join(lines) + "\n"
