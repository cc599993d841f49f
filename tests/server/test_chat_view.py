"""The conversation view's plumbing (web/chat_view.py) without Taipy: what an action body must
be, and the per-tab event stream (changes, the reply's text, its end) over real HTTP through
Flask's test client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from llm.session import MAX_MESSAGE_CHARS
from web import chat_view
from web.chat_view import BadAction, ChatView, ViewAction, parse_action


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
    )
    yield flask, view, gui


def test_the_view_answers_only_to_its_key(served: tuple[Flask, ChatView, _Gui]) -> None:
    flask, view, gui = served
    client = flask.test_client()
    assert client.get(f"/lc-view/{view.key}").get_json() == {"messages": ["a"]}
    assert client.get(f"/lc-view/{view.key}/search?q=서울").get_json() == {
        "hits": [{"words": "서울"}]
    }
    for path in ("/lc-view/guessed", "/lc-view/guessed/events", "/lc-view/guessed/search?q=a"):
        assert client.get(path).status_code == 404
    post = client.post("/lc-view/guessed/action", json={"action": "regenerate", "message_id": 1})
    assert post.status_code == 404 and gui.calls == []
    # A tab that starts over gets a new key; the old one stops working.
    newer = chat_view.open_view(gui, "tab-1", snapshot=dict, act=view.act, search=view.search)  # type: ignore[arg-type]
    assert client.get(f"/lc-view/{view.key}").status_code == 404
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


def _read_events(response: Any, until: str, timeout: float = 5.0) -> list[tuple[str, dict]]:
    """The stream's events up to and including the first named `until`."""
    events: list[tuple[str, dict]] = []
    buffer = ""
    deadline = time.monotonic() + timeout
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "event" in lines:
                events.append((lines["event"], json.loads(lines["data"])))
                if lines["event"] == until:
                    return events
        assert time.monotonic() < deadline, events
    return events


def test_one_stream_carries_changes_and_the_reply_being_written(
    served: tuple[Flask, ChatView, _Gui],
) -> None:
    flask, view, _gui = served
    response = flask.test_client().get(f"/lc-view/{view.key}/events", buffered=False)
    assert response.mimetype == "text/event-stream"

    def write() -> None:
        time.sleep(0.1)
        live = view.start_reply(42)
        view.set_status("waiting — 1 ahead")
        time.sleep(0.05)
        for text in ("Par", "Paris", "Paris is", "Paris is big."):
            live.publish(text)
            time.sleep(0.02)
        live.end()
        view.changed()

    writer = threading.Thread(target=write)
    writer.start()
    events = _read_events(response, "reply-end")
    writer.join()
    response.close()
    assert events[0] == ("view", {"v": 0})  # on connect: fetch the view
    replies = [data for name, data in events if name == "reply"]
    assert all(data["id"] == 42 for data in replies)
    assert {"id": 42, "s": "waiting — 1 ahead"} in replies
    text = ""
    for data in replies:  # the first text whole, then what was appended
        text = data["t"] if "t" in data else text + data.get("a", "")
    assert text == "Paris is big."
    # coalesced: the four texts came faster than MIN_GAP_S apart
    assert len([d for d in replies if "t" in d or "a" in d]) < 4
    assert events[-1] == ("reply-end", {"id": 42})


def test_a_tab_connecting_mid_reply_gets_the_whole_text_first(
    served: tuple[Flask, ChatView, _Gui],
) -> None:
    flask, view, _gui = served
    live = view.start_reply(5)
    live.publish("Already written")
    response = flask.test_client().get(f"/lc-view/{view.key}/events", buffered=False)
    threading.Timer(0.2, lambda: (live.publish("Already written, and more"), live.end())).start()
    events = _read_events(response, "reply-end")
    response.close()
    assert ("reply", {"id": 5, "t": "Already written"}) in events
    assert ("reply", {"id": 5, "a": ", and more"}) in events
