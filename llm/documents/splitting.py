"""Passages: loaded documents split into chunks that fit a prompt and an embedder.

`RecursiveCharacterTextSplitter` (langchain-text-splitters) cuts at paragraph, then line, then
sentence, then word boundaries, so a passage is rarely cut mid-sentence. Each PDF page or
document section is split on its own, so every passage keeps one page number or section.
"""

from __future__ import annotations

from collections.abc import Iterable

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from .store import NewChunk, NewPart

# About 200 English tokens: several fit a 4k context beside the conversation, and one is
# short enough to say one thing (a whole page would blur what its vector stands for).
CHUNK_CHARS = 800
OVERLAP_CHARS = 100
# Korean and Chinese sentence ends after the usual ones, so a passage ends on a sentence.
SEPARATORS = ["\n\n", "\n", ". ", "다. ", "。", "? ", "! ", "; ", ", ", " ", ""]


def split_documents(documents: Iterable[Document]) -> list[NewPart]:
    """One part per document (page or section) with its passages."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_CHARS,
        chunk_overlap=OVERLAP_CHARS,
        separators=SEPARATORS,
        keep_separator="end",
    )
    parts = []
    for document in documents:
        text = document.page_content.strip()
        if not text:
            continue
        part = NewPart(
            text=text,
            page=document.metadata.get("page"),
            section=document.metadata.get("section", ""),
        )
        part.chunks = [
            NewChunk(piece.strip()) for piece in splitter.split_text(text) if piece.strip()
        ]
        parts.append(part)
    return parts
