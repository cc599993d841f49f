"""The conversation as a component LocalChat owns: one secret view key per tab, the
conversation as JSON, the chat search, and actions posted back.

Why: Taipy 4.1's `chat` control has no per-message buttons and no code highlighter, and every
change of a bound page variable re-renders the whole Taipy page in the browser. So the page
script `web/static/conversation.js` draws the visible branch itself:

- `GET /lc-view/<key>` — the conversation (whatever the page's `snapshot` gives: messages of
  the visible branch, their actions, the context used, the labels, and the key of the reply
  being written, whose text it reads from web/live.py's stream), as JSON;
- `GET /lc-view/<key>/search?q=WORDS` — the page's `search`, as JSON;
- `GET /lc-view/<key>/chats` — the chat list (the page's `chats`: every stored chat, which
  one the tab has open, what its last list action said), as JSON; drawn by
  `web/static/chat-list.js`;
- `POST /lc-view/<key>/action` — a JSON action (`ViewAction`): checked here as a stranger's
  input (types, sizes, known kinds), then run in the tab's Taipy state through
  `invoke_callback`, so the page's own send / stream / Stop flow does it. The page checks
  what only it can (the message belongs to the open chat, the chat exists, no reply is
  running). The chat list's actions (rename, pin, export, delete) name any stored chat.

The tab learns that its conversation (or its chat list) changed from one small page variable
each (a counter the page bumps in the callbacks that already change the page), not from a
stream of its own: a
browser keeps at most six connections to a site, and an always-open stream per tab would
leave a seventh tab with none.

The key (128 random bits) is given only to its tab, in that tab's state; the access checks
in front of the whole app (web/access.py: host, origin, token) cover these routes too, and a
cross-site page cannot send the JSON body without a preflight, which the app refuses.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from taipy.gui import Gui

from llm.session import MAX_MESSAGE_CHARS

MAX_QUERY_CHARS = 200  # a search box's words
MAX_BODY_BYTES = 4 * MAX_MESSAGE_CHARS + 4096  # the longest message as UTF-8, and the rest
MAX_ID = 2**63 - 1  # SQLite's largest integer
MAX_TITLE_CHARS = 1000  # a title as typed (the store keeps at most 200, spaces squeezed)
MESSAGE_ACTIONS = ("edit", "regenerate", "continue", "switch", "delete")
CHAT_ACTIONS = ("open", "rename", "pin", "export", "delete_chat")  # on a chat of the list
ACTIONS = MESSAGE_ACTIONS + CHAT_ACTIONS
EXPORT_FORMATS = ("md", "json")


class BadAction(ValueError):
    """An action body that is not one this route takes (the reason is for the log, not shown
    as a user message: a page never sends it)."""


@dataclass(frozen=True)
class ViewAction:
    """One checked action: `kind` in `ACTIONS`, and the fields it needs."""

    kind: str
    message_id: int = 0  # edit, regenerate, continue, switch, delete; open: the hit (or 0)
    chat_id: int = 0  # open, rename, pin, export, delete_chat
    text: str = ""  # edit: the message; rename: the title; export: "md" or "json"
    pinned: bool = False  # pin: pin (True) or unpin


def _positive_id(body: dict[str, Any], name: str, *, required: bool) -> int:
    value = body.get(name)
    if value is None and not required:
        return 0
    # bool is an int in Python; JSON true is not an id
    if type(value) is not int or not 0 < value <= MAX_ID:
        raise BadAction(f"{name} must be a positive integer")
    return value


def parse_action(body: Any) -> ViewAction:
    """The action in a decoded JSON body; BadAction for anything else."""
    if not isinstance(body, dict):
        raise BadAction("the body must be a JSON object")
    kind = body.get("action")
    if kind not in ACTIONS:
        raise BadAction("unknown action")
    if kind in CHAT_ACTIONS:
        return _chat_action(kind, body)
    message_id = _positive_id(body, "message_id", required=True)
    if kind != "edit":
        return ViewAction(kind, message_id=message_id)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_MESSAGE_CHARS:
        raise BadAction(f"text must be non-empty text of at most {MAX_MESSAGE_CHARS} characters")
    return ViewAction(kind, message_id=message_id, text=text)


def _chat_action(kind: str, body: dict[str, Any]) -> ViewAction:
    chat_id = _positive_id(body, "chat_id", required=True)
    if kind == "open":
        return ViewAction(
            kind, chat_id=chat_id, message_id=_positive_id(body, "message_id", required=False)
        )
    if kind == "rename":
        title = body.get("title")
        if not isinstance(title, str) or len(title) > MAX_TITLE_CHARS:
            raise BadAction(f"title must be text of at most {MAX_TITLE_CHARS} characters")
        return ViewAction(kind, chat_id=chat_id, text=title)
    if kind == "pin":
        pinned = body.get("pinned")
        if not isinstance(pinned, bool):
            raise BadAction("pinned must be true or false")
        return ViewAction(kind, chat_id=chat_id, pinned=pinned)
    if kind == "export":
        fmt = body.get("format")
        if fmt not in EXPORT_FORMATS:
            raise BadAction(f"format must be one of {', '.join(EXPORT_FORMATS)}")
        return ViewAction(kind, chat_id=chat_id, text=fmt)
    return ViewAction(kind, chat_id=chat_id)  # delete_chat


Snapshot = Callable[[], dict[str, Any]]
Search = Callable[[str], list[dict[str, Any]]]
# Run in the tab's state: (state, action) -> "" when done, else the reason shown to the user.
Act = Callable[[Any, ViewAction], str]


@dataclass
class ChatView:
    """One tab's conversation view: its key and what answers for it."""

    gui: Gui
    state_id: str
    snapshot: Snapshot
    act: Act
    search: Search
    chats: Snapshot
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))


_lock = threading.Lock()
_views: dict[str, ChatView] = {}


def open_view(
    gui: Gui,
    state_id: str,
    *,
    snapshot: Snapshot,
    act: Act,
    search: Search,
    chats: Snapshot,
) -> ChatView:
    """A new view for the tab `state_id` (a tab that starts over gets a new key; its old one
    stops working)."""
    view = ChatView(gui, state_id, snapshot, act, search, chats)
    with _lock:
        for key in [k for k, v in _views.items() if v.state_id == state_id]:
            del _views[key]
        _views[view.key] = view
    return view


def _view(key: str) -> ChatView | None:
    with _lock:
        return _views.get(key)


def _json(data: Any, status: int = 200) -> Response:
    response = Response(json.dumps(data, ensure_ascii=False), status=status)
    response.mimetype = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


_NOT_FOUND = {"error": "no such view"}


def add_view_routes(flask_app: Flask) -> None:
    """Serve the routes in the module doc."""

    @flask_app.get("/lc-view/<key>")
    def _conversation(key: str) -> Response:
        view = _view(key)
        return _json(view.snapshot()) if view else _json(_NOT_FOUND, 404)

    @flask_app.get("/lc-view/<key>/search")
    def _search(key: str) -> Response:
        view = _view(key)
        if view is None:
            return _json(_NOT_FOUND, 404)
        words = request.args.get("q", "")
        if len(words) > MAX_QUERY_CHARS:
            return _json({"error": f"at most {MAX_QUERY_CHARS} characters"}, 400)
        return _json({"hits": view.search(words) if words.strip() else []})

    @flask_app.get("/lc-view/<key>/chats")
    def _chats(key: str) -> Response:
        view = _view(key)
        return _json(view.chats()) if view else _json(_NOT_FOUND, 404)

    @flask_app.post("/lc-view/<key>/action")
    def _action(key: str) -> Response:
        view = _view(key)
        if view is None:
            return _json(_NOT_FOUND, 404)
        if not request.is_json:
            return _json({"error": "the body must be JSON"}, 415)
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _json({"error": "the body is too long"}, 413)
        body = request.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:  # sent without a length (chunked): counted here
            return _json({"error": "the body is too long"}, 413)
        try:
            action = parse_action(json.loads(body))
        except (ValueError, RecursionError) as exc:  # BadAction, or not JSON at all
            return _json({"error": str(exc) if isinstance(exc, BadAction) else "bad JSON"}, 400)
        error = view.gui.invoke_callback(view.state_id, view.act, [action])
        if error is None:  # the callback raised: Taipy's on_exception has reported it
            error = "the action failed"
        return _json({"ok": not error, "error": error}, 200 if not error else 409)
