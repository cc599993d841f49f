"""What the chat page's conversation component is sent (web/chat_view.py serves it): the
visible branch of the open chat as plain JSON values, with the actions each message offers,
the context used, the search hits and the component's labels. Only plain text goes out: the
component renders Markdown itself, safely (web/static/conversation.js).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from llm.figures import Figures, figures_line
from llm.storage import ChatHit, StoredChat, StoredMessage

# Room left for the next message and its template markers when judging whether it will make
# `trim_history` leave out old exchanges (a short message; a long one may drop them earlier).
NEXT_MESSAGE_TOKENS = 64

# The labels the component shows (pages/i18n.py), sent with every conversation.
VIEW_LABELS = (
    "you",
    "assistant",
    "msg_copy",
    "msg_copied",
    "msg_copy_failed",
    "msg_edit",
    "msg_save",
    "msg_cancel",
    "msg_regenerate",
    "msg_continue",
    "msg_delete",
    "msg_delete_question",
    "msg_delete_yes",
    "msg_delete_no",
    "msg_previous",
    "msg_next",
    "msg_version",
    "msg_actions",
    "msg_editor",
    "code_copy",
    "conversation",
    "search_chats",
    "search_none",
    "search_results",
    "empty_reply",
    "docs_sources",
)


def footer(
    labels: Mapping[str, str], status: str, finish_reason: str, error: str, figures: Figures | None
) -> str:
    """The line under a reply: its figures, and how it ended if not as planned."""
    t = labels
    words = {key: t[f"fig_{key}"] for key in ("first_token", "tokens", "tokens_rate", "dropped")}
    notes = [figures_line(figures, words, prompt=False)] if figures else []
    if status == "failed":
        return t["error_reply"].format(error=error)
    if status == "stopped":
        notes.append(t["stopped"])
    elif status in ("interrupted", "streaming"):
        notes.append(t["interrupted"])
    elif finish_reason == "length":
        notes.append(t["cut_at_max_tokens"])
    return " · ".join(notes)


def message_json(
    labels: Mapping[str, str],
    message: StoredMessage,
    *,
    live_id: int | None,
    continue_refusal: str,
    sources: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """One message of the visible branch. `live_id`: the reply this tab is writing now;
    `continue_refusal`: why the engine cannot continue a reply ("" when it can); `sources`:
    the passages a reply was given from documents (label and text each)."""
    live = message.id == live_id
    siblings = list(message.sibling_ids) or [message.id]
    item: dict[str, Any] = {
        "id": message.id,
        "role": message.role,
        "text": message.content,
        "status": message.status,
        "live": live,
        "siblings": siblings,
        "index": siblings.index(message.id) if message.id in siblings else 0,
        "footer": "",
        "can_continue": False,
        "continue_refusal": "",
        "sources": [{"label": str(x["label"]), "text": str(x["text"])} for x in sources],
    }
    if message.role == "assistant" and not live:
        item["footer"] = footer(
            labels,
            message.status,
            message.finish_reason,
            message.error,
            message.figures,
        )
        if message.can_continue:
            item["can_continue"] = not continue_refusal
            item["continue_refusal"] = continue_refusal
    return item


def context_used(
    labels: Mapping[str, str], messages: Sequence[StoredMessage], n_ctx: int, max_tokens: int
) -> dict[str, Any]:
    """How much of the context the conversation fills: the last reply's prompt and reply
    tokens, against the engine's context length (0: unknown), and whether the next message
    will leave out old exchanges (llm/history.py: the prompt must fit `n_ctx - max_tokens`)."""
    used = 0
    for message in reversed(messages):
        if message.role == "assistant" and message.figures is not None:
            used = message.figures.prompt_tokens + message.figures.completion_tokens
            break
    if not used:
        return {"used": 0, "limit": n_ctx, "text": "", "notice": ""}
    if n_ctx:
        text = labels["context_used"].format(used=f"{used:,}", limit=f"{n_ctx:,}")
    else:
        text = labels["context_used_unknown"].format(used=f"{used:,}")
    budget = n_ctx - max_tokens
    drops = bool(n_ctx) and used + NEXT_MESSAGE_TOKENS > budget
    return {
        "used": used,
        "limit": n_ctx,
        "text": text,
        "notice": labels["context_will_drop"] if drops else "",
    }


def with_branch(chat: StoredChat, tree: Sequence[StoredMessage], leaf_id: int) -> StoredChat:
    """`chat` showing the branch that ends at `leaf_id` (from `ChatStore.tree`), or as it
    is when that message is gone."""
    by_id = {m.id: m for m in tree}
    if leaf_id not in by_id:
        return chat
    path: list[StoredMessage] = []
    at: int | None = leaf_id
    while at is not None and at in by_id:
        path.append(by_id[at])
        at = by_id[at].parent_id
    return dataclasses.replace(chat, messages=tuple(reversed(path)), current_leaf_id=leaf_id)


def conversation_json(
    labels: Mapping[str, str],
    chat: StoredChat | None,
    *,
    sources: Mapping[int, Sequence[Mapping[str, str]]] | None = None,
    live_id: int | None,
    live_key: str,
    busy: bool,
    n_ctx: int,
    max_tokens: int,
    continue_refusal: str,
) -> dict[str, Any]:
    """The whole view: the open chat's visible branch (none before its first message), and
    the reply this tab is writing (`live_id`, read from the stream `live_key`)."""
    messages = chat.messages if chat else ()
    return {
        "chat_id": chat.id if chat else None,
        "busy": busy,
        "live_key": live_key,  # the reply being written: GET /lc-live/<key> (web/live.py)
        "messages": [
            message_json(
                labels,
                m,
                live_id=live_id,
                continue_refusal=continue_refusal,
                sources=(sources or {}).get(m.id, ()),
            )
            for m in messages
        ],
        "context": context_used(labels, messages, n_ctx, max_tokens),
        "labels": {name: labels[name] for name in VIEW_LABELS},
    }


def hit_json(labels: Mapping[str, str], hit: ChatHit) -> dict[str, Any]:
    """A search hit: the chat, where the hit is, and its snippet as (text, matched) pieces
    (plain text: the component builds text nodes from them, never HTML)."""
    return {
        "chat_id": hit.chat_id,
        "message_id": hit.message_id,
        "title": hit.title or labels["untitled"],
        "snippet": [[text, bool(matched)] for text, matched in hit.snippet],
        "updated": hit.updated,
    }
