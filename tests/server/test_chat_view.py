"""The conversation view's routes (web/chat_view.py) without Taipy, through Flask's test
client: what an action body must be, and that a view answers only to its own key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from llm.session import MAX_MESSAGE_CHARS
from web import chat_view
from web.chat_view import MAX_TITLE_CHARS, BadAction, ChatView, ViewAction, parse_action


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"action": "regenerate", "message_id": 7}, ViewAction("regenerate", message_id=7)),
        ({"action": "edit", "message_id": 3, "text": "hi"}, ViewAction("edit", 3, text="hi")),
        ({"action": "open", "chat_id": 2}, ViewAction("open", chat_id=2)),
        (
            {"action": "open", "chat_id": 2, "message_id": 9},
            ViewAction("open", message_id=9, chat_id=2),
        ),
        # the chat list's menu, on any chat
        (
            {"action": "rename", "chat_id": 4, "title": "Trip"},
            ViewAction("rename", chat_id=4, text="Trip"),
        ),
        ({"action": "rename", "chat_id": 4, "title": ""}, ViewAction("rename", chat_id=4)),
        (
            {"action": "pin", "chat_id": 4, "pinned": True},
            ViewAction("pin", chat_id=4, pinned=True),
        ),
        ({"action": "pin", "chat_id": 4, "pinned": False}, ViewAction("pin", chat_id=4)),
        (
            {"action": "export", "chat_id": 4, "format": "md"},
            ViewAction("export", chat_id=4, text="md"),
        ),
        (
            {"action": "export", "chat_id": 4, "format": "json"},
            ViewAction("export", chat_id=4, text="json"),
        ),
        ({"action": "delete_chat", "chat_id": 4}, ViewAction("delete_chat", chat_id=4)),
    ],
)
def test_well_formed_actions_are_taken(body: dict[str, Any], expected: ViewAction) -> None:
    assert parse_action(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        [],
        "regenerate",
        {"action": "drop_tables", "message_id": 1},
        {"action": "regenerate"},
        {"action": "regenerate", "message_id": "7"},
        {"action": "regenerate", "message_id": True},
        {"action": "regenerate", "message_id": 0},
        {"action": "regenerate", "message_id": -4},
        {"action": "regenerate", "message_id": 2**63},
        {"action": "regenerate", "message_id": 1.5},
        {"action": "edit", "message_id": 1},
        {"action": "edit", "message_id": 1, "text": "   "},
        {"action": "edit", "message_id": 1, "text": ["a"]},
        {"action": "edit", "message_id": 1, "text": "x" * (MAX_MESSAGE_CHARS + 1)},
        {"action": "open", "message_id": 1},
        {"action": "open", "chat_id": None},
        {"action": "rename", "title": "no chat named"},
        {"action": "rename", "chat_id": 4},
        {"action": "rename", "chat_id": 4, "title": 7},
        {"action": "rename", "chat_id": 4, "title": "x" * (MAX_TITLE_CHARS + 1)},
        {"action": "rename", "chat_id": "4", "title": "a string id"},
        {"action": "pin", "chat_id": 4},
        {"action": "pin", "chat_id": 4, "pinned": 1},
        {"action": "pin", "chat_id": 4, "pinned": "true"},
        {"action": "export", "chat_id": 4},
        {"action": "export", "chat_id": 4, "format": "../../etc/passwd"},
        {"action": "export", "chat_id": 4, "format": "html"},
        {"action": "delete_chat"},
        {"action": "delete_chat", "chat_id": 0},
        {"action": "delete_chat", "chat_id": [4]},
    ],
)
def test_anything_else_is_refused(body: Any) -> None:
    with pytest.raises(BadAction):
        parse_action(body)


class _Gui:
    """Stands in for Taipy's Gui: runs the action as Taipy would, in "the tab's state"."""

    def __init__(self) -> None:
        self.calls: list[ViewAction] = []

    def invoke_callback(self, state_id: str, callback: Any, args: list[Any]) -> Any:
        return callback(f"state of {state_id}", *args)


@pytest.fixture
def served() -> Iterator[tuple[Flask, ChatView, _Gui]]:
    gui = _Gui()

    def act(state: str, action: ViewAction) -> str:
        gui.calls.append(action)
        return "" if action.message_id != 13 else "not that one"

    flask = Flask("view-test")
    chat_view.add_view_routes(flask)
    view = chat_view.open_view(
        gui,  # type: ignore[arg-type]
        "tab-1",
        snapshot=lambda: {"messages": ["a"]},
        act=act,
        search=lambda words: [{"words": words}],
        chats=lambda: {"chats": ["c"]},
    )
    yield flask, view, gui


def test_the_view_answers_only_to_its_key(served: tuple[Flask, ChatView, _Gui]) -> None:
    flask, view, gui = served
    client = flask.test_client()
    assert client.get(f"/lc-view/{view.key}").get_json() == {"messages": ["a"]}
    assert client.get(f"/lc-view/{view.key}/search?q=서울").get_json() == {
        "hits": [{"words": "서울"}]
    }
    assert client.get(f"/lc-view/{view.key}/chats").get_json() == {"chats": ["c"]}
    guesses = ("", "/events", "/search?q=a", "/chats")
    for path in (f"/lc-view/guessed{tail}" for tail in guesses):
        assert client.get(path).status_code == 404
    post = client.post("/lc-view/guessed/action", json={"action": "regenerate", "message_id": 1})
    assert post.status_code == 404 and gui.calls == []
    # A tab that starts over gets a new key; the old one stops working.
    newer = chat_view.open_view(
        gui,  # type: ignore[arg-type]
        "tab-1",
        snapshot=dict,
        act=view.act,
        search=view.search,
        chats=view.chats,
    )
    assert client.get(f"/lc-view/{view.key}").status_code == 404
    assert client.get(f"/lc-view/{view.key}/chats").status_code == 404
    assert client.get(f"/lc-view/{newer.key}").status_code == 200


def test_actions_are_checked_before_the_tab_runs_them(
    served: tuple[Flask, ChatView, _Gui],
) -> None:
    flask, view, gui = served
    client = flask.test_client()
    url = f"/lc-view/{view.key}/action"
    ok = client.post(url, json={"action": "regenerate", "message_id": 12})
    assert ok.status_code == 200 and ok.get_json() == {"ok": True, "error": ""}
    refused = client.post(url, json={"action": "regenerate", "message_id": 13})
    assert refused.status_code == 409 and refused.get_json()["error"] == "not that one"
    assert gui.calls == [ViewAction("regenerate", 12), ViewAction("regenerate", 13)]
    hostile = [
        client.post(url, data="action=regenerate&message_id=1"),  # a cross-site form's body
        client.post(url, data="{not json", content_type="application/json"),
        client.post(url, json={"action": "regenerate", "message_id": "1 OR 1=1"}),
        client.post(url, json={"action": "edit", "message_id": 1, "text": "x" * 5_000_000}),
        client.post(url, data="[" * 100_000, content_type="application/json"),
    ]
    assert [r.status_code for r in hostile] == [415, 400, 400, 413, 400]
    assert len(gui.calls) == 2  # none of them reached the tab
