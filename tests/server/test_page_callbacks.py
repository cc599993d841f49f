"""The pages' callbacks, run in this process without a browser: Taipy serves the real pages
(`Gui.run(run_server=False)`), Flask's and Socket.IO's test clients speak to it as a tab does,
and an in-process engine (`support.fake_engine`) answers. Fast checks of page logic; the
browser tests in tests/web/ still cover what the user sees."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.fake_engine import FakeEngine
from support.replies import REPLY, SCRIPT

from llm.config import load_config
from llm.engines import Engines
from llm.preferences import Preferences
from llm.storage import ChatStore

# How the page names a bound variable when it sends a change.
_UPDATE_NAME = re.compile(r"(tpec_TpExPr_([A-Za-z0-9_]+?)_TPMDL_\d+)")
CHAT_MODULE = "pages.chat"  # the module context the chat page's messages carry
WAIT_S = 10.0


@dataclass
class Tab:
    """One tab's connection: the Socket.IO test client and its Taipy client id."""

    gui: Any
    ws: Any
    flask: Any
    client_id: str
    names: dict[str, str]  # page variable -> the name the page sends its changes under

    def update(self, variable: str, value: Any) -> None:
        """What a tab sends when a bound field changes."""
        self._send("U", self.names[variable], {"value": value})

    def action(self, element_id: str, action: str, args: list[Any] | None = None) -> None:
        """What a tab sends when a button is pressed or Enter is hit in an input."""
        self._send("A", element_id, {"action": action, "args": args or []})

    def _send(self, kind: str, name: str, payload: dict[str, Any]) -> None:
        self.ws.emit(
            "message",
            {
                "client_id": self.client_id,
                "type": kind,
                "name": name,
                "payload": payload,
                "module_context": CHAT_MODULE,
            },
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Any]:
    """The app's pages and server in this process, answered by a FakeEngine."""
    from taipy.gui import Gui

    import pages
    from pages.i18n import labels
    from web.context import AppContext, install
    from web.server import make_server, run_settings

    data = tmp_path_factory.mktemp("callbacks-data")
    config = load_config(None).replace(models_dir=str(models_dir), data_dir=str(data))
    prefs = Preferences.in_folder(config.data_dir)
    store = ChatStore.in_folder(config.data_dir)
    fake = FakeEngine(SCRIPT, models_dir / "chatml-scripted.gguf")
    context = AppContext(config, Engines(config, prefs, local=fake), prefs, labels("en"), store)
    install(context)
    gui = Gui(pages=pages.create_pages(), flask=make_server(config))
    context.gui = gui
    pages.install(gui)
    settings = {**run_settings(config), "run_browser": False}
    flask_app = gui.run(run_server=False, **settings)
    yield gui, flask_app, context, fake
    context.close()


@pytest.fixture
def tab(served: Any) -> Iterator[Tab]:
    gui, flask_app, _context, _fake = served
    flask = flask_app.test_client()
    ws = gui._server._ws.test_client(flask_app)
    client_id = f"test-{time.monotonic_ns()}"
    gui._bindings()._get_or_create_scope(client_id)
    jsx = flask.get(f"/taipy-jsx/chat?client_id={client_id}")
    assert jsx.status_code == 200, jsx.data[:300]
    names = {short: full for full, short in _UPDATE_NAME.findall(jsx.get_data(as_text=True))}
    yield Tab(gui, ws, flask, client_id, names)
    ws.disconnect()


def _until(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


def _chats(store: ChatStore) -> list[Any]:
    return [store.get_chat(summary.id) for summary in store.list_chats()]


def test_enter_stores_the_message_and_the_engines_reply(tab: Tab, served: Any) -> None:
    _gui, _app, context, fake = served
    question = "What is the capital of France? (enter)"
    tab.update("draft", question)
    tab.action("message", "send", ["message", None, question])
    chat = _until(
        lambda: next(
            (
                c
                for c in _chats(context.store)
                if c.messages and c.messages[0].content == question and len(c.messages) == 2
            ),
            None,
        ),
        "a new chat with the question and the scripted reply",
    )
    assert [m.role for m in chat.messages] == ["user", "assistant"]
    assert chat.messages[1].content == REPLY
    assert fake.calls[-1][-1] == {"role": "user", "content": question}


def test_an_empty_or_non_text_message_stores_nothing(tab: Tab, served: Any) -> None:
    _gui, _app, context, fake = served
    chats, calls = len(context.store.list_chats()), len(fake.calls)
    for hostile in ("   ", {"not": "text"}, ["a"], 12):
        tab.action("message", "send", ["message", None, hostile])
    time.sleep(0.5)  # a reply would have been stored by now (the first test's took ms)
    assert len(context.store.list_chats()) == chats
    assert len(fake.calls) == calls


def test_out_of_range_settings_are_refused_with_the_reason(tab: Tab, served: Any) -> None:
    _gui, _app, context, fake = served
    chats, calls = len(context.store.list_chats()), len(fake.calls)
    tab.update("temperature", 9.0)
    tab.action("message", "send", ["message", None, "hello"])
    alerts = _until(
        lambda: [m for m in tab.ws.get_received() if "temperature" in str(m.get("args")).lower()],
        "an error naming the temperature",
    )
    assert alerts
    assert len(context.store.list_chats()) == chats and len(fake.calls) == calls


# The conversation component's routes (web/chat_view.py), acting in a real tab's state -------


def _ask(tab: Tab, served: Any, question: str) -> tuple[str, Any]:
    """Send `question` in `tab`; returns the tab's view key and its stored chat, once the
    reply is in."""
    from web import chat_view

    _gui, _app, context, _fake = served
    tab.action("message", "send", ["message", None, question])
    chat = _until(
        lambda: next(
            (
                c
                for c in _chats(context.store)
                if c.messages
                and c.messages[0].content == question
                and c.messages[-1].status == "complete"
            ),
            None,
        ),
        f"the reply to {question!r}",
    )
    views = [v for v in chat_view._views.values() if v.state_id == tab.client_id]
    assert len(views) == 1
    # the tab's busy state ends just after the reply is stored
    _until(lambda: not tab.flask.get(f"/lc-view/{views[0].key}").get_json()["busy"], "idle")
    return views[0].key, chat


def _trees(store: ChatStore) -> dict[int, list[tuple[int, str, str]]]:
    return {c.id: [(m.id, m.role, m.content) for m in store.tree(c.id)] for c in store.list_chats()}


@pytest.fixture
def other_tab(served: Any) -> Iterator[Tab]:
    gui, flask_app, _context, _fake = served
    flask = flask_app.test_client()
    ws = gui._server._ws.test_client(flask_app)
    client_id = f"test-other-{time.monotonic_ns()}"
    gui._bindings()._get_or_create_scope(client_id)
    jsx = flask.get(f"/taipy-jsx/chat?client_id={client_id}")
    names = {short: full for full, short in _UPDATE_NAME.findall(jsx.get_data(as_text=True))}
    yield Tab(gui, ws, flask, client_id, names)
    ws.disconnect()


def test_the_view_shows_the_tabs_own_chat_and_acts_on_it(
    tab: Tab, other_tab: Tab, served: Any
) -> None:
    _gui, _app, context, fake = served
    key, chat = _ask(tab, served, "View question (mine)")
    other_key, _ = _ask(other_tab, served, "View question (theirs)")
    view = tab.flask.get(f"/lc-view/{key}").get_json()
    assert [(m["role"], m["text"]) for m in view["messages"]] == [
        ("user", "View question (mine)"),
        ("assistant", REPLY),
    ]
    assert view["context"]["limit"] > 0 and view["labels"]["msg_copy"] == "Copy"
    # A real action goes through: a second version of the reply, streamed by the same path.
    reply_id = chat.messages[-1].id
    calls = len(fake.calls)
    answer = tab.flask.post(
        f"/lc-view/{key}/action", json={"action": "regenerate", "message_id": reply_id}
    )
    assert answer.status_code == 200, answer.get_json()
    _until(
        lambda: (
            len(context.store.get_chat(chat.id).messages[-1].sibling_ids) == 2
            and context.store.get_chat(chat.id).messages[-1].status == "complete"
        ),
        "a second version of the reply",
    )
    assert len(fake.calls) == calls + 1
    _until(lambda: not tab.flask.get(f"/lc-view/{key}").get_json()["busy"], "idle")
    shown = tab.flask.get(f"/lc-view/{key}").get_json()["messages"][-1]
    assert shown["index"] == 1 and len(shown["siblings"]) == 2
    del other_key


def test_hostile_actions_change_nothing(tab: Tab, other_tab: Tab, served: Any) -> None:
    _gui, _app, context, fake = served
    key, mine = _ask(tab, served, "Hostile question (mine)")
    other_key, theirs = _ask(other_tab, served, "Hostile question (theirs)")
    before, calls = _trees(context.store), len(fake.calls)
    their_reply, my_reply = theirs.messages[-1].id, mine.messages[-1].id
    attempts = [
        # another chat's message through my view, and mine through another tab's view
        (key, {"action": "regenerate", "message_id": their_reply}),
        (key, {"action": "delete", "message_id": theirs.messages[0].id}),
        (key, {"action": "edit", "message_id": theirs.messages[0].id, "text": "taken over"}),
        (other_key, {"action": "switch", "message_id": my_reply}),
        (other_key, {"action": "delete", "message_id": mine.messages[0].id}),
        # ids that are no message, a user message where a reply is needed, a reply to edit
        (key, {"action": "regenerate", "message_id": 987654321}),
        (key, {"action": "continue", "message_id": mine.messages[0].id}),
        (key, {"action": "edit", "message_id": my_reply, "text": "not a user message"}),
        (key, {"action": "continue", "message_id": my_reply}),  # complete: nothing to continue
        # a search hit that names no chat, or another chat's message
        (key, {"action": "open", "chat_id": 987654321}),
        (key, {"action": "open", "chat_id": mine.id, "message_id": their_reply}),
        # malformed
        (key, {"action": "regenerate", "message_id": -1}),
        (key, {"action": "edit", "message_id": mine.messages[0].id, "text": "y" * 2_000_000}),
        ("not-a-key", {"action": "regenerate", "message_id": my_reply}),
    ]
    codes = []
    for view_key, body in attempts:
        answer = tab.flask.post(f"/lc-view/{view_key}/action", json=body)
        codes.append(answer.status_code)
        if answer.status_code == 409:
            assert answer.get_json()["error"], body  # said why, in words
    assert codes == [409] * 11 + [400, 400, 404]
    time.sleep(0.3)  # a reply would have started by now
    assert _trees(context.store) == before
    assert len(fake.calls) == calls
    # Both tabs still show their own chat.
    assert tab.flask.get(f"/lc-view/{key}").get_json()["chat_id"] == mine.id
    assert tab.flask.get(f"/lc-view/{other_key}").get_json()["chat_id"] == theirs.id
