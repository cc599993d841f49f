"""What the model is shown from the documents for one message, and the sources to list.

`build_context` takes ranked passages and a token budget and returns a `RetrievedContext`: a
clearly marked block of numbered passages (whole ones, in rank order, as many as fit; never cut
mid-passage) that tells the model to cite them by number, plus the passages as sources. When no
passage is relevant the block is empty: the model is not handed noise, and the caller can say
"nothing relevant found". The block goes into the prompt of this message only
(`ChatSession.ask(text, context=block)`); the stored message stays the user's own text.

`context_budget` says how many tokens the passages may take in a session: half the context at
most, and never the room the reply and the new message need. `whole_document` returns all of a
document's text for "summarise this" when it fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .search import Passage

MAX_PASSAGES = 5  # more dilutes a small model's attention more than it adds
# Short, because small models follow short instructions best: with SmolLM2-135M at temperature
# 0 this wording answered 6 of 6 probe questions from the passages, a longer one (adding "if
# they do not answer it, say so") 5, and the model then repeated the instructions once.
HEADER = "Use these passages from the user's documents:"
FOOTER = "Answer from the passages and cite them like [1]."
WHOLE_HEADER = "The whole document {name}:"
WHOLE_FOOTER = "Answer the question below from this document."


def estimate_tokens(text: str) -> int:
    """Tokens `text` may take, erring high: a token per 3 UTF-8 bytes of English-like text,
    and one more per character outside ASCII (Hangul often falls back to byte tokens)."""
    return len(text.encode("utf-8")) // 3 + sum(1 for c in text if ord(c) > 127) + 1


@dataclass(frozen=True)
class RetrievedContext:
    """Passages for one message: `block` for the prompt ("" when nothing is relevant) and
    `sources`, numbered as in the block ([1] is sources[0])."""

    block: str
    sources: tuple[Passage, ...] = ()
    left_out: int = 0  # relevant passages that did not fit the budget
    considered: int = 0  # passages the search returned

    @property
    def nothing_relevant(self) -> bool:
        return not self.block

    def source_rows(self) -> list[dict[str, Any]]:
        """The sources as stored with the reply and shown under it."""
        return [
            {
                "collection": p.collection,
                "source": p.source,
                "page": p.page,
                "section": p.section,
                "text": p.text,
                "score": p.score,
            }
            for p in self.sources
        ]


def _entry(number: int, passage: Passage) -> str:
    return f"[{number}] {passage.label()}\n{passage.text}"


def build_context(
    passages: Sequence[Passage],
    budget_tokens: int,
    *,
    count_tokens: Callable[[str], int] = estimate_tokens,
    max_passages: int = MAX_PASSAGES,
) -> RetrievedContext:
    """The block for the relevant passages that fit `budget_tokens`, best first."""
    relevant = [p for p in passages if p.relevant]
    chosen: list[Passage] = []
    used = count_tokens(f"{HEADER}\n\n{FOOTER}")
    for passage in relevant[:max_passages]:
        cost = count_tokens(_entry(len(chosen) + 1, passage) + "\n\n")
        if used + cost > budget_tokens:
            continue  # a shorter one further down may still fit
        chosen.append(passage)
        used += cost
    if not chosen:
        return RetrievedContext("", (), len(relevant), len(passages))
    entries = "\n\n".join(_entry(i, p) for i, p in enumerate(chosen, start=1))
    block = f"{HEADER}\n\n{entries}\n\n{FOOTER}"
    return RetrievedContext(block, tuple(chosen), len(relevant) - len(chosen), len(passages))


def context_budget(session: Any, text: str, *, share: float = 0.5) -> int:
    """Tokens the passages may take in `session` (a ChatSession) for the message `text`: at
    most `share` of the context, and what is left after the reply's max_tokens and the
    system prompt with the new message (older turns are trimmed by the engine if needed)."""
    loaded = session.engine.loaded
    if loaded is None:
        return 0
    n_ctx = loaded.n_ctx
    messages = session.messages_for(text)
    first_and_last = [*messages[:1], messages[-1]] if len(messages) > 1 else messages
    counted = estimate_tokens("".join(m["content"] for m in first_and_last)) + 16
    room = n_ctx - session.params.max_tokens - counted
    return max(0, min(room, int(n_ctx * share)))


@dataclass(frozen=True)
class WholeDocument:
    """All the text of one document, for whole-document mode."""

    source: str
    text: str
    tokens: int  # estimated
    pages: tuple[int, ...] = field(default=())

    def fits(self, budget_tokens: int) -> bool:
        return self.tokens <= budget_tokens

    def block(self) -> str:
        """The prompt block that hands the model the whole document."""
        name = Path(self.source).name
        return f"{WHOLE_HEADER.format(name=name)}\n\n{self.text}\n\n{WHOLE_FOOTER}"


def whole_document(
    source: str, parts: Sequence[tuple[int | None, str, str]]
) -> WholeDocument | None:
    """A document from its stored parts (page, section, text); None if it has none."""
    if not parts:
        return None
    pieces = [f"[page {page}]\n{text}" if page is not None else text for page, _, text in parts]
    text = "\n\n".join(pieces)
    pages = tuple(page for page, _, _ in parts if page is not None)
    return WholeDocument(source, text, estimate_tokens(text), pages)
