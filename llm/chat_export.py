"""A stored chat as a file and back: Markdown for reading (`chat_to_markdown`: the visible
branch), JSON that LocalChat reads back (`chat_to_json`: every branch and which one is shown),
and import of such a JSON export as a new chat (`import_chat`).

The JSON export (version 2) lists the messages parents first; each has an `id` (the file's
own numbering) and a `parent` (the id of an earlier message, or null), and the chat names its
`current_leaf`. A version-1 export (no ids) is one branch, as older LocalChat wrote it.

An import is a file from anywhere: `parse_export` checks the whole document first (size,
encoding, JSON, every field by the rules of `llm.chat_values`, and the tree: unique ids,
parents that come earlier in the file, so no cycles, at most IMPORT_MAX_MESSAGES messages) and
raises ChatImportError naming the first problem; only a valid export is stored, in one
transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .chat_values import (
    FIGURE_FIELDS,
    ROLES,
    STATUSES,
    TITLE_MAX_CHARS,
    checked_backend,
    checked_format,
    checked_settings,
    clean_text,
    now,
    one_line,
    title_from_message,
)
from .config import LOCAL_BACKEND
from .errors import ChatImportError, StorageError
from .markdown_text import close_open_fence
from .storage import FINISH_REASONS, ChatStore, StoredChat, StoredMessage

EXPORT_FORMAT = "localchat-chat"
EXPORT_VERSION = 2
IMPORT_MAX_BYTES = 64 * 1024 * 1024
IMPORT_MAX_MESSAGES = 100_000


_STATUS_NOTES = {
    "stopped": "Stopped before the end.",
    "failed": "Failed",
    "interrupted": "Interrupted: LocalChat stopped while this reply was being written.",
    "streaming": "Still being written when this was exported.",
}


def _md_text(text: str) -> str:
    return text.replace("\x00", "\ufffd")  # NUL makes tools treat the file as binary


def _md_time(stamp: str) -> str:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def chat_to_markdown(chat: StoredChat) -> str:
    """A chat as Markdown: title, facts, system prompt, then each message of the visible
    branch under a heading."""
    lines = [f"# {_md_text(chat.title) or 'New chat'}", ""]
    lines.append(f"- Created: {_md_time(chat.created)}")
    if chat.model:
        where = "" if chat.backend == LOCAL_BACKEND else f" on {_md_text(chat.backend)}"
        lines.append(f"- Model: {_md_text(chat.model)}{where} (format {chat.chat_format})")
    if chat.settings:
        settings = ", ".join(f"{k} {v}" for k, v in chat.settings.items())
        lines.append(f"- Settings: {settings}")
    lines.append("")
    if chat.system_prompt:
        lines += ["## System prompt", "", _md_text(chat.system_prompt), ""]
    for message in chat.messages:
        heading = "User" if message.role == "user" else "Assistant"
        lines += [f"## {heading} · {_md_time(message.created)}", ""]
        if message.content:  # a code block left open would swallow the rest
            lines += [close_open_fence(_md_text(message.content)), ""]
        notes = []
        if message.status in _STATUS_NOTES:
            note = _STATUS_NOTES[message.status]
            notes.append(f"{note}: {message.error}" if message.error else note)
        if message.figures is not None:
            notes.append(message.figures.line())
        if notes:
            lines += [f"*{_md_text(' · '.join(notes))}*", ""]
    return "\n".join(lines)


def chat_to_export(chat: StoredChat, tree: Sequence[StoredMessage] | None = None) -> dict[str, Any]:
    """A chat as the JSON-ready export document (see `parse_export`): every message of `tree`
    (`ChatStore.tree`), or of the visible branch when it is None."""
    source = list(chat.messages if tree is None else tree)
    number = {message.id: index for index, message in enumerate(source)}
    messages = []
    for message in source:
        row = message.to_dict()
        for key in ("id", "chat_id", "position", "parent_id", "sibling_ids"):
            del row[key]
        parent = number.get(message.parent_id) if message.parent_id is not None else None
        messages.append({"id": number[message.id], "parent": parent, **row})
    leaf = number.get(chat.current_leaf_id) if chat.current_leaf_id is not None else None
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported": now(),
        "chat": {
            "title": chat.title,
            "created": chat.created,
            "updated": chat.updated,
            "system_prompt": chat.system_prompt,
            "settings": chat.settings,
            "model": chat.model,
            "chat_format": chat.chat_format,
            "backend": chat.backend,
            "pinned": chat.pinned,
            "current_leaf": leaf if leaf is not None else len(messages) - 1 if messages else None,
            "messages": messages,
        },
    }


def chat_to_json(chat: StoredChat, tree: Sequence[StoredMessage] | None = None) -> str:
    """A chat as the JSON document that `import_chat` reads back: pass `ChatStore.tree` as
    `tree` to keep every branch (None: the visible branch only)."""
    return json.dumps(chat_to_export(chat, tree), ensure_ascii=False, indent=2)


def export_json(store: ChatStore, chat_id: int) -> str:
    """Stored chat `chat_id` as a JSON export with every branch."""
    return chat_to_json(store.get_chat(chat_id), store.tree(chat_id))


def import_chat(store: ChatStore, data: str | bytes) -> int:
    """Store a JSON export as a new chat; returns its id. The whole document is checked first
    (ChatImportError naming the bad field); nothing is stored if it is invalid."""
    return store.create_chat(**parse_export(data))


def _text(data: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ChatImportError(f"{where}.{key} must be a string")
    return value


def _stamp(data: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(data, key, where)
    if not value:
        return now()
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ChatImportError(f"{where}.{key} = {value!r} is not an ISO 8601 time") from None
    return value


def parse_export(data: str | bytes) -> dict[str, Any]:
    """Check a JSON export and return the chat's values with its "messages": the arguments of
    `ChatStore.create_chat`.

    Raises ChatImportError naming the first problem.
    """
    if len(data) > IMPORT_MAX_BYTES:
        raise ChatImportError("the file is too large for a chat export (over 64 MB)")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ChatImportError(f"the file is not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ChatImportError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ChatImportError(f'not a LocalChat chat export (no "format": "{EXPORT_FORMAT}")')
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ChatImportError("version must be a positive integer")
    if version > EXPORT_VERSION:
        raise ChatImportError(
            f"the export is from a newer LocalChat (version {version}; this one reads "
            f"up to {EXPORT_VERSION})"
        )
    chat = document.get("chat")
    if not isinstance(chat, dict):
        raise ChatImportError('"chat" must be an object')
    settings = chat.get("settings", {})
    if not isinstance(settings, dict):
        raise ChatImportError("chat.settings must be an object")
    try:
        settings = checked_settings(settings)
        chat_format = checked_format(_text(chat, "chat_format", "chat", "auto"))
        backend = checked_backend(_text(chat, "backend", "chat", LOCAL_BACKEND))
    except StorageError as exc:
        raise ChatImportError(f"chat: {exc}") from None
    raw_messages = chat.get("messages")
    if not isinstance(raw_messages, list):
        raise ChatImportError("chat.messages must be a list")
    if len(raw_messages) > IMPORT_MAX_MESSAGES:
        raise ChatImportError(f"chat.messages can hold at most {IMPORT_MAX_MESSAGES:,} messages")
    messages = [_parse_message(m, f"chat.messages[{i}]") for i, m in enumerate(raw_messages)]
    current_leaf = _parse_tree(raw_messages, messages, chat.get("current_leaf"))
    pinned = chat.get("pinned", False)
    if not isinstance(pinned, bool):
        raise ChatImportError("chat.pinned must be true or false")
    title = _text(chat, "title", "chat")
    if len(one_line(title)) > TITLE_MAX_CHARS:
        raise ChatImportError(f"chat.title can have at most {TITLE_MAX_CHARS} characters")
    if not one_line(title):
        first = next((m["content"] for m in messages if m["role"] == "user"), "")
        title = first and title_from_message(first)
    return {
        "title": one_line(title),
        "created": _stamp(chat, "created", "chat"),
        "system_prompt": clean_text(_text(chat, "system_prompt", "chat")),
        "settings": settings,
        "model": clean_text(_text(chat, "model", "chat")),
        "chat_format": chat_format,
        "backend": backend,
        "messages": messages,
        "current_leaf": current_leaf,
        "pinned": pinned,
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_tree(raw_messages: list[Any], messages: list[dict[str, Any]], leaf: Any) -> int | None:
    """Set each message's "parent" (an index in `messages`) from the file's ids; returns the
    index of the current leaf. Without ids (a version-1 export) the messages are one branch.
    Parents must come earlier in the file: a tree with no cycles by construction, whatever
    its depth."""
    with_ids = ["id" in m for m in raw_messages]
    if not any(with_ids):
        if leaf is not None:
            raise ChatImportError("chat.current_leaf needs messages with ids")
        return None  # one branch: `create_chat` makes each message the child of the last
    index: dict[int, int] = {}
    for i, (raw, message) in enumerate(zip(raw_messages, messages, strict=True)):
        where = f"chat.messages[{i}]"
        own = raw.get("id")
        if not _is_int(own):
            raise ChatImportError(f"{where}.id must be an integer (every message has one)")
        if own in index:
            raise ChatImportError(f"{where}.id {own} is used twice")
        parent = raw.get("parent")
        if parent is not None and (not _is_int(parent) or parent not in index):
            raise ChatImportError(
                f"{where}.parent must be null or the id of a message before it in the file"
            )
        message["parent"] = None if parent is None else index[parent]
        index[own] = i
    if leaf is None:
        return len(messages) - 1 if messages else None
    if not _is_int(leaf) or leaf not in index:
        raise ChatImportError("chat.current_leaf must be the id of one of its messages")
    return index[leaf]


def _parse_message(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ChatImportError(f"{where} must be an object")
    role = data.get("role")
    if role not in ROLES:
        raise ChatImportError(f"{where}.role must be one of {', '.join(ROLES)}")
    if not isinstance(data.get("content"), str):
        raise ChatImportError(f"{where}.content must be a string")
    status = _text(data, "status", where, "complete")
    if status not in STATUSES:
        raise ChatImportError(f"{where}.status must be one of {', '.join(STATUSES)}")
    if status == "streaming":  # no process is writing it here
        status = "interrupted"
    finish_reason = _text(data, "finish_reason", where)
    if finish_reason not in FINISH_REASONS:
        choices = ", ".join(repr(r) for r in FINISH_REASONS)
        raise ChatImportError(f"{where}.finish_reason must be one of {choices}")
    figures = {}
    for key in FIGURE_FIELDS:
        value = data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            raise ChatImportError(f"{where}.{key} must be a number, at least 0, or null")
        if key in ("prompt_tokens", "completion_tokens") and isinstance(value, float):
            if not value.is_integer():
                raise ChatImportError(f"{where}.{key} must be a whole number")
            value = int(value)
        figures[key] = value
    return {
        "role": role,
        "content": clean_text(data["content"]),
        "created": _stamp(data, "created", where),
        "model": clean_text(_text(data, "model", where)),
        "format": clean_text(_text(data, "format", where)),
        "status": status,
        "finish_reason": finish_reason,
        "error": clean_text(_text(data, "error", where)),
        **figures,
    }
