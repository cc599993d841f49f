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
