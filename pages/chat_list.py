"""What the chat page's chat list component is sent (web/chat_view.py serves it at
`/lc-view/<key>/chats`, web/static/chat-list.js draws it), and the files its Export gives.

The list goes out as plain values: each chat's id, title, pin and last activity (`updated`,
as milliseconds since 1970 UTC). The browser sorts them into date groups (Pinned, Today,
Yesterday, Previous 7 days, Previous 30 days, then by month) in its own time zone: the day
that matters is the user's, and the server may be another machine in another zone (LocalChat
served to a phone on the network), or the zone may change under a running server (summer
time); the browser also names the months in the page's language (`Intl.DateTimeFormat`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llm import chat_export
from llm.storage import ChatStore, ChatSummary

from .conversation import with_branch

# The labels the component shows (pages/i18n.py), sent with every list.
LIST_LABELS = (
    "locale",  # the month names' language (Intl.DateTimeFormat)
    "chats",
    "untitled",
    "list_pinned",
    "list_today",
    "list_yesterday",
    "list_week",
    "list_month",
    "list_empty",
    "chat_menu",
    "rename",
    "rename_field",
    "pin_chat",
    "unpin_chat",
    "export_md",
    "export_json",
    "delete",
    "keep",
    "delete_question",
    "notice_close",
)


@dataclass(frozen=True)
class Notice:
    """What the tab's last chat list action (or import) came to, said in the list: `kind`
    "ok" or "error", in the tab's language; `seq` tells a new notice from the one shown."""

    seq: int = 0
    kind: str = ""
    text: str = ""


def updated_ms(stamp: str) -> int:
    """A stored time (ISO 8601, UTC) as milliseconds since 1970; 0 for one that cannot be
    read (the oldest group)."""
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except (TypeError, ValueError, OverflowError):
        return 0


def chat_list_json(
    labels: Mapping[str, str],
    chats: Sequence[ChatSummary],
    *,
    open_id: int | None,
    notice: Notice,
) -> dict[str, Any]:
    """The whole list: chats as `ChatStore.list_chats` orders them (pinned first, then the most
    recently active), the chat this tab has open, the notice, the labels."""
    return {
        "chats": [
            {
                "id": c.id,
                "title": c.title or labels["untitled"],
                "pinned": c.pinned,
                "updated": updated_ms(c.updated),
            }
            for c in chats
        ],
        "open_id": open_id,
        "notice": {"seq": notice.seq, "kind": notice.kind, "text": notice.text},
        "labels": {name: labels[name] for name in LIST_LABELS},
    }


def file_name(chat_id: int, title: str, suffix: str) -> str:
    """An export's file name: `chat-<id>-<title's words>.<suffix>`."""
    words = re.sub(r"[^\w-]+", "-", title, flags=re.UNICODE).strip("-")
    return f"chat-{chat_id}{'-' + words[:50] if words else ''}.{suffix}"


def export_file(
    store: ChatStore, chat_id: int, fmt: str, *, leaf_id: int | None = None
) -> tuple[str, str]:
    """A chat's export as (file name, text): Markdown holds the branch shown (`leaf_id`, the
    branch a tab shows; None: the chat's own), JSON every branch and which one is shown.
    ChatNotFoundError for a chat that is not (or no longer) stored."""
    chat = store.get_chat(chat_id)
    tree = store.tree(chat_id)
    if leaf_id is not None:
        chat = with_branch(chat, tree, leaf_id)
    if fmt == "md":
        text = chat_export.chat_to_markdown(chat)
    else:
        text = chat_export.chat_to_json(chat, tree)
    return file_name(chat_id, chat.title, fmt), text
