"""Documents in a chat: retrieve passages for a message, ask with them, keep the sources.

    saved, context = ask_with_documents(log, library, text, ["notes"])
    for chunk in saved: ...            # the reply streams as usual
    context.sources                    # what it was shown; also library.sources(saved.message_id)

Works with a `ChatLog` (stored chat: the sources are stored with the reply at once, keyed by
its message id) or a bare `ChatSession` (nothing stored).

`ask_with_whole_document` hands the model all of one document instead ("summarise this"),
when it fits the context; its source is the document itself.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .context import RetrievedContext, WholeDocument, context_budget
from .errors import DocumentsError
from .library import Library

WHOLE_SOURCE_CHARS = 1500  # of the document kept as its source's passage


def ask_with_documents(
    chat: Any,
    library: Library,
    text: str,
    collections: Sequence[str],
    *,
    cancel: threading.Event | None = None,
    **overrides: Any,
) -> tuple[Any, RetrievedContext]:
    """Ask `text` in `chat` (a ChatLog or ChatSession) with passages from `collections`.

    Returns the reply (iterate it to generate) and the context used; with nothing relevant the
    message goes to the model as it is and `context.nothing_relevant` is True."""
    session = getattr(chat, "session", chat)
    budget = context_budget(session, text)
    context = library.retrieve(text, collections, budget) if collections else RetrievedContext("")
    reply = chat.ask(text, cancel=cancel, context=context.block, **overrides)
    message_id = getattr(reply, "message_id", None)
    if message_id is not None and context.sources:
        library.save_sources(message_id, context)
    return reply, context


def whole_document_budget(chat: Any, text: str = "") -> int:
    """Tokens a whole document may take in `chat` with the message `text`: all the context
    the reply, the system prompt and the message leave."""
    return context_budget(getattr(chat, "session", chat), text, share=1.0)


def ask_with_whole_document(
    chat: Any,
    library: Library,
    text: str,
    collection: str,
    source: str,
    *,
    cancel: threading.Event | None = None,
    **overrides: Any,
) -> tuple[Any, WholeDocument]:
    """Ask `text` with all of one indexed document of `collection` in the prompt.

    DocumentsError (nothing asked) when the document is not indexed there or does not fit."""
    document = library.whole_document(collection, source)
    if document is None:
        raise DocumentsError(f"{Path(source).name} is not an indexed file of {collection!r}")
    budget = whole_document_budget(chat, text)
    if not document.fits(budget):
        raise DocumentsError(
            f"{Path(source).name} takes about {document.tokens:,} tokens and the model's "
            f"context leaves {budget:,}: ask with passages instead"
        )
    reply = chat.ask(text, cancel=cancel, context=document.block(), **overrides)
    message_id = getattr(reply, "message_id", None)
    if message_id is not None:
        row = {
            "collection": collection,
            "source": source,
            "page": None,
            "section": "",
            "text": document.text[:WHOLE_SOURCE_CHARS],
            "score": 1.0,
        }
        library.store.save_reply_sources(message_id, [row])
    return reply, document
