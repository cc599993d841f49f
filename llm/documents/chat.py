"""Documents in a chat: retrieve passages for a message, ask with them, keep the sources.

    saved, context = ask_with_documents(log, library, text, ["notes"])
    for chunk in saved: ...            # the reply streams as usual
    context.sources                    # what it was shown; also library.sources(saved.message_id)

Works with a `ChatLog` (stored chat: the sources are stored with the reply at once, keyed by
its message id) or a bare `ChatSession` (nothing stored).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from .context import RetrievedContext, context_budget
from .library import Library


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
