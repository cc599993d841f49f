"""The pages' callbacks, run in this process without a browser: Taipy serves the real pages
(`Gui.run(run_server=False)`), Flask's and Socket.IO's test clients speak to it as a tab does,
and an in-process engine (`support.fake_engine`) answers. Fast checks of page logic; the
browser tests in tests/web/ still cover what the user sees."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.fake_engine import FakeEngine
from support.replies import REPLY, SCRIPT

from llm.chat_export import import_chat
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

    def update(
        self, variable: str, value: Any, *, on_change: str = "", module: str = CHAT_MODULE
    ) -> None:
        """What a tab sends when a bound field changes (naming the control's `on_change`)."""
        payload = {"value": value, **({"on_change": on_change} if on_change else {})}
        self._send("U", self.names[variable], payload, module)

    def action(
        self,
        element_id: str,
        action: str,
        args: list[Any] | None = None,
        *,
        module: str = CHAT_MODULE,
    ) -> None:
        """What a tab sends when a button is pressed or Enter is hit in an input."""
        self._send("A", element_id, {"action": action, "args": args or []}, module)

    def _send(
        self, kind: str, name: str, payload: dict[str, Any], module: str = CHAT_MODULE
    ) -> None:
        self.ws.emit(
            "message",
            {
                "client_id": self.client_id,
                "type": kind,
                "name": name,
                "payload": payload,
                "module_context": module,
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
    names = {}
    for page in ("chat", "documents"):
        jsx = flask.get(f"/taipy-jsx/{page}?client_id={client_id}")
        assert jsx.status_code == 200, jsx.data[:300]
        names.update(
            {short: full for full, short in _UPDATE_NAME.findall(jsx.get_data(as_text=True))}
        )
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


# --- documents ---------------------------------------------------------------------------------
DOCS_MODULE = "pages.documents"


def _alert(tab: Tab, words: str) -> Any:
    """Wait for a notification holding `words`."""
    return _until(
        lambda: [m for m in tab.ws.get_received() if words in str(m.get("args"))],
        f"a notification with {words!r}",
    )


def _docs_action(tab: Tab, element_id: str, action: str, args: list[Any] | None = None) -> None:
    tab.action(element_id, action, args, module=DOCS_MODULE)


def test_documents_page_refuses_hostile_values_and_changes_nothing(
    tab: Tab, served: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gui, _app, context, _fake = served
    library = context.library
    before = set(library.store.collection_names())
    _docs_action(tab, "new_collection_name", "create_collection", ["x", None, "hostile"])
    _until(lambda: "hostile" in library.store.collection_names(), "the collection made")
    for name in ["", "../evil", "a" * 65, "two\nlines", {"x": 1}, ["hostile"], "x\0y", "hostile"]:
        tab.update("new_name", name, module=DOCS_MODULE)
        _docs_action(tab, "create_collection", "create_collection")
    _alert(tab, "Not created")
    assert set(library.store.collection_names()) == before | {"hostile"}

    # Reached from other machines: a typed folder must lie under [documents] roots.
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    for folder in (allowed, outside):
        folder.mkdir()
        (folder / "notes.md").write_text("# Notes\nThe owl is called Hoot.\n")
    wider = context.config.replace(allowed_hosts=("chat.lan",), documents_roots=(allowed,))
    monkeypatch.setattr(context, "config", wider)
    monkeypatch.setattr(library, "config", wider)
    hostile_paths = [
        str(outside),
        str(allowed / ".." / "outside"),
        str(context.config.data_dir),
        str(context.config.models_dir),
        str(context.config.config_file),
        "/definitely/not/here",
        "x" * 300_000,
        {"path": str(allowed)},
        [str(allowed)],
        f"{allowed}\0",
    ]
    for path in hostile_paths:
        tab.update("folder_path", path, module=DOCS_MODULE)
        _docs_action(tab, "add_folder", "add_folder")
    _alert(tab, "not under a folder allowed for documents")
    assert library.collection("hostile").paths == ()
    _docs_action(tab, "folder_path", "add_folder", ["folder_path", None, str(allowed)])
    _until(lambda: library.collection("hostile").paths == (str(allowed),), "the allowed folder")

    # Uploads: only this tab's own files in the app's upload folder are ever read.
    kept = tmp_path / "kept.md"
    kept.write_text("# Kept\n")
    database = context.config.data_dir / "localchat.db"
    tab.update(
        "upload_paths",
        [str(kept), str(database), "../../kept.md", {"a": 1}, 5],
        module=DOCS_MODULE,
    )
    _docs_action(tab, "doc_upload", "upload_files")
    _alert(tab, "not available")
    assert kept.exists() and database.exists()
    uploads = context.config.data_dir / "document-uploads"
    assert not uploads.exists() or not any(uploads.rglob("*.md"))

    # Embedders: only those the page offered.
    for spec in ["gguf:/etc/passwd", "gguf:../x.gguf", "remote:nope/x", 3]:
        tab.update("doc_embedder", spec, module=DOCS_MODULE)
        _docs_action(tab, "apply_embedder", "apply_embedder")
    _alert(tab, "Choose one of the embedders")
    assert library.collection("hostile").embedder == "wordllama"

    # The remove dialog: only its first button removes, and only the tab's own collection.
    tab.update("doc_selected", "../../etc", module=DOCS_MODULE)
    for args in ([1], ["0"], "x", [None]):
        _docs_action(tab, "remove_dialog", "remove_answer", args)  # type: ignore[arg-type]
    time.sleep(0.3)
    assert "hostile" in library.store.collection_names()
    _docs_action(tab, "remove_dialog", "remove_answer", [0])
    _until(lambda: "hostile" not in library.store.collection_names(), "the collection removed")
    assert (allowed / "notes.md").exists()  # the files themselves stay


def test_a_chat_with_a_collection_gets_its_passages_and_keeps_the_sources(
    tab: Tab, served: Any, tmp_path: Path
) -> None:
    _gui, _app, context, fake = served
    library = context.library
    folder = tmp_path / "pets"
    folder.mkdir()
    (folder / "pets.md").write_text("# Pets\n## Cats\nMy cat is named Biscuit Thunderpaw.\n")
    library.create("pets", [folder])
    assert library.index("pets") == "done"
    # Hostile choices are dropped; the real collection is kept.
    tab.update("docs_chosen", ["pets", "../x", {"a": 1}, "nope"], on_change="choose_documents")
    for value in ("999", "-1", {"a": 1}, ["0"]):
        tab.update("whole_choice", value, on_change="choose_whole")
    question = "What is my cat named? (documents)"
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
        "the chat with the question and its reply",
    )
    prompt = fake.calls[-1][-1]["content"]
    assert "Biscuit Thunderpaw" in prompt and prompt.endswith(question)
    assert chat.messages[0].content == question  # the stored message is the user's own
    assert library.chat_collections(chat.id) == ["pets"]  # remembered once stored
    sources = library.sources(chat.messages[1].id)
    assert [Path(s["source"]).name for s in sources] == ["pets.md"]
    assert sources[0]["section"] == "Cats"
    # The conversation shows them under the reply: a label, and the passage as plain text.
    from web import chat_view

    key = next(v.key for v in chat_view._views.values() if v.state_id == tab.client_id)
    _until(lambda: not tab.flask.get(f"/lc-view/{key}").get_json()["busy"], "idle")
    shown = tab.flask.get(f"/lc-view/{key}").get_json()["messages"]
    assert shown[0]["sources"] == []
    assert "pets.md" in shown[1]["sources"][0]["label"]
    assert "Biscuit Thunderpaw" in shown[1]["sources"][0]["text"]
    # Asked again, the reply gets the passages again, and its own sources.
    answer = tab.flask.post(
        f"/lc-view/{key}/action", json={"action": "regenerate", "message_id": chat.messages[1].id}
    )
    assert answer.status_code == 200, answer.get_json()
    again = _until(
        lambda: next(
            (
                m
                for m in [context.store.get_chat(chat.id).messages[-1]]
                if m.id != chat.messages[1].id and m.status == "complete"
            ),
            None,
        ),
        "the regenerated reply",
    )
    assert "Biscuit Thunderpaw" in fake.calls[-1][-1]["content"]
    assert [Path(s["source"]).name for s in library.sources(again.id)] == ["pets.md"]
    _until(lambda: not tab.flask.get(f"/lc-view/{key}").get_json()["busy"], "idle")
    # A question the documents do not answer goes to the model as it is, and the page says so.
    calls = len(fake.calls)

    def sent() -> bool:  # Enter is ignored until the tab has shown the first reply's end
        tab.action("message", "send", ["message", None, "qwxz vvbn"])
        return len(fake.calls) > calls

    _until(sent, "the second message sent")
    assert fake.calls[-1][-1]["content"] == "qwxz vvbn"
    _alert(tab, "Nothing in the chosen documents matches")


def test_a_whole_document_that_fits_goes_to_the_model_whole(
    tab: Tab, served: Any, tmp_path: Path
) -> None:
    _gui, _app, context, fake = served
    library = context.library
    folder = tmp_path / "report"
    folder.mkdir()
    body = "\n\n".join(f"## Part {i}\nThe report's finding number {i} is teal." for i in range(8))
    (folder / "report.md").write_text(f"# Report\n{body}\n")
    library.create("report", [folder])
    assert library.index("report") == "done"
    tab.update("docs_chosen", ["report"], on_change="choose_documents")
    tab.update("whole_choice", "0", on_change="choose_whole")  # the first document offered
    question = "Summarise this (whole)"
    tab.action("message", "send", ["message", None, question])
    chat = _until(
        lambda: next((c for c in _chats(context.store) if c.messages[0].content == question), None),
        "the chat",
    )
    prompt = fake.calls[-1][-1]["content"]
    assert prompt.startswith("The whole document report.md:")
    assert all(f"finding number {i} is teal" in prompt for i in range(8))  # not just passages
    sources = library.sources(chat.messages[1].id)
    assert [Path(s["source"]).name for s in sources] == ["report.md"]


def test_the_app_s_indexing_waits_while_the_model_writes(served: Any, tmp_path: Path) -> None:
    _gui, _app, context, fake = served
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        (folder / f"n{i}.md").write_text(f"# Note {i}\n" + f"word{i} " * 400)
    context.library.create("waits", [folder])
    fake.busy = True  # as while a reply streams (AppContext.generating reads it)
    try:
        assert context.generating()
        context.indexing.start("waits")
        time.sleep(1.5)  # the helper starts and is told to pause
        first = context.library.collection("waits")
        time.sleep(2.0)
        later = context.library.collection("waits")
        assert "waits" in context.indexing.running()
        assert (later.files_indexed, later.chunks) == (first.files_indexed, first.chunks)
        assert later.files_indexed < 60
    finally:
        fake.busy = False
    context.indexing.wait("waits", 60)
    assert context.library.collection("waits").files_indexed == 60


def _downloads(tab: Tab) -> list[dict[str, Any]]:
    """The downloads (Taipy's "DF" messages) the tab received since last asked."""
    return [
        m["args"]
        for m in tab.ws.get_received()
        if isinstance(m.get("args"), dict) and m["args"].get("type") == "DF"
    ]


def _download(tab: Tab, key: str, chat_id: int, fmt: str) -> tuple[str, str]:
    """The chat list's Export of `chat_id` in `tab`: (file name, text) of the download."""
    tab.ws.get_received()  # forget earlier messages
    answer = tab.flask.post(
        f"/lc-view/{key}/action", json={"action": "export", "chat_id": chat_id, "format": fmt}
    )
    assert answer.status_code == 200, answer.get_json()
    sent = _until(lambda: _downloads(tab), f"the {fmt} download")
    content = sent[0]["content"]
    if content.startswith("data:"):  # small files come inline
        text = base64.b64decode(content.split(",", 1)[1]).decode("utf-8")
    else:
        text = tab.flask.get(content).get_data(as_text=True)
    return sent[0]["name"], text


def test_export_json_keeps_every_branch_and_markdown_the_one_shown(tab: Tab, served: Any) -> None:
    _gui, _app, context, _fake = served
    key, chat = _ask(tab, served, "Export question (two versions)")
    first_reply = chat.messages[-1].id
    answer = tab.flask.post(
        f"/lc-view/{key}/action", json={"action": "regenerate", "message_id": first_reply}
    )
    assert answer.status_code == 200, answer.get_json()
    _until(
        lambda: (
            len(context.store.tree(chat.id)) == 3
            and context.store.get_chat(chat.id).messages[-1].status == "complete"
        ),
        "the second version",
    )
    _until(lambda: not tab.flask.get(f"/lc-view/{key}").get_json()["busy"], "idle")
    # This tab shows the first version; the export follows what it shows.
    switched = tab.flask.post(
        f"/lc-view/{key}/action", json={"action": "switch", "message_id": first_reply}
    )
    assert switched.status_code == 200, switched.get_json()

    def downloaded(fmt: str) -> str:
        return _download(tab, key, chat.id, fmt)[1]

    exported = json.loads(downloaded("json"))
    saved = exported["chat"]
    # The question and both versions of the reply (ids renumbered in the file: 0, 1, 2), the
    # first version the one shown.
    assert [(m["id"], m["parent"]) for m in saved["messages"]] == [(0, None), (1, 0), (2, 0)]
    assert saved["current_leaf"] == 1
    imported = import_chat(context.store, json.dumps(exported))
    assert [(m.role, m.content) for m in context.store.tree(imported)] == [
        (m.role, m.content) for m in context.store.tree(chat.id)
    ]
    markdown = downloaded("md")
    assert "Export question (two versions)" in markdown


def test_the_model_picker_loads_only_a_model_the_folder_lists(tab: Tab, served: Any) -> None:
    """`model_choice` is a bound variable any client can set: paths, names outside the folder
    and other types load nothing (the picker goes back to what is loaded)."""
    _gui, _app, context, _fake = served
    loaded = context.engines.local.model_name
    tab.ws.get_received()  # what came before
    for value in ("../chatml-scripted.gguf", "/etc/passwd", "missing.gguf", 7, ["x"], ""):
        tab.update("model_choice", value, on_change="pick_model")
    time.sleep(0.5)
    said = str([m.get("args") for m in tab.ws.get_received()])
    assert "Loading" not in said and "error" not in said.lower()
    assert context.engines.local.model_name == loaded


# --- the chat list (web/static/chat-list.js): its JSON and its menu's actions ------------------


def _list(tab: Tab, key: str) -> dict[str, Any]:
    answer = tab.flask.get(f"/lc-view/{key}/chats")
    assert answer.status_code == 200
    return answer.get_json()


def _post(tab: Tab, key: str, body: dict[str, Any]) -> Any:
    return tab.flask.post(f"/lc-view/{key}/action", json=body)


def _stored_chats(store: ChatStore) -> list[tuple[int, str, bool, int]]:
    return [(c.id, c.title, c.pinned, c.message_count) for c in store.list_chats()]


def test_the_list_menu_acts_on_a_chat_that_is_not_the_open_one(tab: Tab, served: Any) -> None:
    _gui, _app, context, _fake = served
    other_id = context.store.create_chat(title="Not the open one")
    context.store.add_message(other_id, "user", "A question kept elsewhere")
    context.store.add_message(other_id, "assistant", "An answer kept elsewhere")
    key, mine = _ask(tab, served, "The open chat (list menu)")
    listed = _list(tab, key)
    assert listed["open_id"] == mine.id
    rows = {row["id"]: row for row in listed["chats"]}
    assert rows[other_id]["title"] == "Not the open one" and not rows[other_id]["pinned"]
    assert rows[mine.id]["updated"] >= rows[other_id]["updated"] > 0  # ms since 1970 (UTC)
    assert listed["labels"]["list_today"] == "Today" and listed["labels"]["locale"] == "en"
    # Rename: stored, said in the list; the open chat stays open.
    answer = _post(tab, key, {"action": "rename", "chat_id": other_id, "title": "  Trip   plans "})
    assert answer.status_code == 200, answer.get_json()
    assert context.store.get_chat(other_id).title == "Trip plans"
    notice = _list(tab, key)["notice"]
    assert (notice["kind"], notice["text"]) == ("ok", "Renamed to “Trip plans”")
    # Pin and unpin.
    assert (
        _post(tab, key, {"action": "pin", "chat_id": other_id, "pinned": True}).status_code == 200
    )
    assert context.store.get_chat(other_id).pinned
    first = _list(tab, key)["chats"][0]  # pinned chats come first
    assert (first["id"], first["pinned"]) == (other_id, True)
    assert (
        _post(tab, key, {"action": "pin", "chat_id": other_id, "pinned": False}).status_code == 200
    )
    assert not context.store.get_chat(other_id).pinned
    # Export: that chat's file, downloaded in this tab.
    name, markdown = _download(tab, key, other_id, "md")
    assert name == f"chat-{other_id}-Trip-plans.md"
    assert markdown.startswith("# Trip plans\n") and "A question kept elsewhere" in markdown
    name, text = _download(tab, key, other_id, "json")
    assert name == f"chat-{other_id}-Trip-plans.json"
    assert [m["content"] for m in json.loads(text)["chat"]["messages"]] == [
        "A question kept elsewhere",
        "An answer kept elsewhere",
    ]
    # Delete: gone; this tab still shows its own chat.
    answer = _post(tab, key, {"action": "delete_chat", "chat_id": other_id})
    assert answer.status_code == 200, answer.get_json()
    assert other_id not in {c.id for c in context.store.list_chats()}
    assert _list(tab, key)["notice"]["text"] == "Deleted “Trip plans”"
    assert tab.flask.get(f"/lc-view/{key}").get_json()["chat_id"] == mine.id
    assert _list(tab, key)["open_id"] == mine.id


def test_deleting_the_open_chat_from_the_list_starts_a_new_one(tab: Tab, served: Any) -> None:
    _gui, _app, context, _fake = served
    key, mine = _ask(tab, served, "Delete me while open")
    assert _post(tab, key, {"action": "delete_chat", "chat_id": mine.id}).status_code == 200
    assert mine.id not in {c.id for c in context.store.list_chats()}
    view = tab.flask.get(f"/lc-view/{key}").get_json()
    assert view["chat_id"] is None and view["messages"] == []
    assert _list(tab, key)["open_id"] is None


def test_hostile_list_actions_change_nothing(tab: Tab, other_tab: Tab, served: Any) -> None:
    """Any chat id, title or format a stranger posts: an unknown chat gets the words for it,
    a bad title the library's check, a malformed body a 400, a stale key a 404; nothing in
    the store changes, and nothing is downloaded."""
    _gui, _app, context, _fake = served
    key, mine = _ask(tab, served, "Hostile list question (mine)")
    other_key, theirs = _ask(other_tab, served, "Hostile list question (theirs)")
    before = _stored_chats(context.store)
    gone = 987654321
    tab.ws.get_received()
    other_tab.ws.get_received()
    worded = [
        ({"action": "rename", "chat_id": gone, "title": "x"}, "This chat no longer exists"),
        ({"action": "pin", "chat_id": gone, "pinned": True}, "This chat no longer exists"),
        ({"action": "export", "chat_id": gone, "format": "md"}, "This chat no longer exists"),
        ({"action": "delete_chat", "chat_id": gone}, "This chat no longer exists"),
        ({"action": "open", "chat_id": gone}, "This chat no longer exists"),
        ({"action": "rename", "chat_id": mine.id, "title": "   "}, "A chat title cannot be empty"),
        (
            {"action": "rename", "chat_id": mine.id, "title": "t" * 1000},
            "The chat title is too long: 1000 characters, at most 200",
        ),
    ]
    for body, words in worded:
        answer = _post(tab, key, body)
        assert answer.status_code == 409, body
        assert answer.get_json()["error"].startswith(words), answer.get_json()
    malformed = [
        {"action": "rename", "chat_id": mine.id, "title": "t" * 1_000_000},  # a huge title
        {"action": "rename", "chat_id": -1, "title": "x"},
        {"action": "pin", "chat_id": mine.id, "pinned": "yes"},
        {"action": "export", "chat_id": mine.id, "format": "../../config.toml"},
        {"action": "delete_chat", "chat_id": str(mine.id)},
    ]
    assert [_post(tab, key, body).status_code for body in malformed] == [400] * len(malformed)
    # A key that is no tab's (a tab that started over has a new one) reaches nothing.
    stale = _post(tab, "no-such-key", {"action": "delete_chat", "chat_id": theirs.id})
    assert stale.status_code == 404
    time.sleep(0.3)
    assert _stored_chats(context.store) == before
    assert _downloads(tab) == [] and _downloads(other_tab) == []
    # Each tab's key acts in that tab: an export through the other tab's key downloads
    # there, not here; neither tab's open chat changed.
    name, _ = _download(other_tab, other_key, mine.id, "md")
    assert name.startswith(f"chat-{mine.id}-")
    assert _downloads(tab) == []
    assert tab.flask.get(f"/lc-view/{key}").get_json()["chat_id"] == mine.id
    assert tab.flask.get(f"/lc-view/{other_key}").get_json()["chat_id"] == theirs.id


def test_a_change_in_one_tab_refreshes_every_tab_s_list(
    tab: Tab, other_tab: Tab, served: Any
) -> None:
    _gui, _app, _context, _fake = served
    key, mine = _ask(tab, served, "Seen from the other tab")
    other_key, _ = _ask(other_tab, served, "The other tab's own chat")
    other_tab.ws.get_received()
    assert (
        _post(
            tab, key, {"action": "rename", "chat_id": mine.id, "title": "Renamed here"}
        ).status_code
        == 200
    )
    # The other tab is told to fetch its list again (its list_version changes) ...
    _until(
        lambda: any("list_version" in str(m.get("args")) for m in other_tab.ws.get_received()),
        "the other tab's list_version",
    )
    # ... and the list it fetches has the new title, without this tab's notice.
    listed = _list(other_tab, other_key)
    assert "Renamed here" in [row["title"] for row in listed["chats"]]
    assert listed["notice"]["text"] != "Renamed to “Renamed here”"


# --- the model settings panel (context length and threads per model) ---------------------------
MODELS_MODULE = "pages.models"


def _page_names(tab: Tab, page: str) -> dict[str, str]:
    """The names one page's bound variables are sent under (pages share short names)."""
    jsx = tab.flask.get(f"/taipy-jsx/{page}?client_id={tab.client_id}")
    return {short: full for full, short in _UPDATE_NAME.findall(jsx.get_data(as_text=True))}


class _Heard:
    """Everything the tab was sent since this was made, to look for words in."""

    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        tab.ws.get_received()
        self.text = ""

    def wait_for(self, words: str) -> None:
        def heard() -> bool:
            self.text += str([m.get("args") for m in self.tab.ws.get_received()])
            return words in self.text

        _until(heard, f"the page to say {words!r}")
        self.text = ""


@pytest.mark.parametrize("module", [CHAT_MODULE, MODELS_MODULE])
def test_model_settings_refuse_a_strangers_values_and_keep_good_ones(
    tab: Tab, served: Any, module: str
) -> None:
    """`ms_ctx` and `ms_threads` are bound variables any client can set: every bad value is
    said in words and saves nothing; a good one is remembered for the model in use (chat
    page) or the model selected (models page)."""
    _gui, _app, context, fake = served
    model, cpus = fake.model_name, os.cpu_count() or 1
    names = _page_names(tab, "chat" if module == CHAT_MODULE else "models")
    context.prefs.set_load_settings(model, None)

    def update(variable: str, value: Any, on_change: str = "model_settings_changed") -> None:
        tab._send("U", names[variable], {"value": value, "on_change": on_change}, module)

    if module == MODELS_MODULE:
        update("selected_model", model, "select_model")
    heard = _Heard(tab)
    refused = [
        ("4096; drop", 1, "The context length must be a whole number"),
        (None, 1, "The context length must be a whole number"),
        (["x"], 1, "The context length must be a whole number"),
        ({"n_ctx": 1}, 1, "The context length must be a whole number"),
        (True, 1, "The context length must be a whole number"),
        (1024.5, 1, "The context length must be a whole number"),
        (100, 1, "between 256 and 4096 tokens"),
        (10**9, 1, "between 256 and 4096 tokens"),
        (-1, 1, "between 256 and 4096 tokens"),
        (1024, cpus + 1, f"Threads must be 0 (automatic) or between 1 and {cpus}"),
        (1024, -3, f"Threads must be 0 (automatic) or between 1 and {cpus}"),
        (1024, "2 or 3", "Threads must be a whole number"),
    ]
    for n_ctx, n_threads, words in refused:
        update("ms_ctx", n_ctx)
        update("ms_threads", n_threads)
        tab.action("ms_save", "save_model_settings", module=module)
        heard.wait_for(words)
        assert context.prefs.load_settings(model) == {}, (n_ctx, n_threads)
    update("ms_ctx", 1024)
    update("ms_threads", 1)
    heard.wait_for("At 1,024 tokens: about")  # the memory that context needs, said at once
    tab.action("ms_save", "save_model_settings", module=module)
    heard.wait_for("loads with a context of 1,024 tokens, threads: 1")
    assert context.prefs.load_settings(model) == {"n_ctx": 1024, "n_threads": 1}
    tab.action("ms_reset", "reset_model_settings", module=module)
    _until(lambda: context.prefs.load_settings(model) == {}, "the defaults again")


def test_the_models_page_saves_settings_only_for_a_model_of_the_folder(
    tab: Tab, served: Any
) -> None:
    _gui, _app, context, _fake = served
    names = _page_names(tab, "models")
    path = context.prefs.path
    before = path.read_bytes() if path.exists() else b""
    for name in ("../chatml-scripted.gguf", "/etc/passwd", "missing.gguf", ["x"], 3):
        tab._send("U", names["selected_model"], {"value": name}, MODELS_MODULE)
        tab._send("U", names["ms_ctx"], {"value": 1024}, MODELS_MODULE)
        tab._send("U", names["ms_threads"], {"value": 1}, MODELS_MODULE)
        tab.action("ms_save", "save_model_settings", module=MODELS_MODULE)
        tab.action("ms_reset", "reset_model_settings", module=MODELS_MODULE)
    time.sleep(0.5)
    assert (path.read_bytes() if path.exists() else b"") == before


def test_the_picker_refuses_group_headers_and_unoffered_servers(tab: Tab, served: Any) -> None:
    """A server's model is `backend/model`: one no server offers (none is configured here), a
    group header, and anything else not offered switch nothing."""
    _gui, _app, context, _fake = served
    active = context.engines.active
    for value in ("#group:local", "#group:lab", "lab/model", "local/chatml-scripted.gguf", "/"):
        tab.update("model_choice", value, on_change="pick_model")
    time.sleep(0.5)
    said = str([m.get("args") for m in tab.ws.get_received()])
    assert "Loading" not in said and "Switching" not in said
    assert context.engines.active is active and context.engines.active_remote is None
