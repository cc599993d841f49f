"""Stored chats on the web page, and the chat page under stress, in real Chromium.

`python main.py` runs as a subprocess. The history test starts its own app twice on one data
folder (to prove a restart keeps everything); the other tests share one app per module, with a
slow scripted model loaded (replies take a few seconds: long enough to kill the model process
mid-reply); the queue test pauses the model process while eight tabs line up behind it.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import (
    VIEWPORT,
    RunningApp,
    bubbles,
    chat_list,
    chat_menu,
    list_notice,
    live_reply,
    notifications,
    open_chat,
    open_chat_row,
    open_page,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model
from support.replies import REPLY

from llm.chat_export import chat_to_json
from llm.storage import ChatStore

pytestmark = pytest.mark.timeout(180)

FAST, SLOW, HTML = "tinyllama-scripted.gguf", "slow-scripted.gguf", "html-scripted.gguf"
SLOW_SCRIPT = [f" w{i}" for i in range(100)]
SLOW_TOKENS = 100  # the slow app's max_tokens: replies of a few seconds (all of SLOW_SCRIPT)
SLOW_REPLY = "".join(SLOW_SCRIPT[:SLOW_TOKENS]).strip()
# A reply that would run script in the page if it were rendered as HTML.
HTML_SCRIPT = [
    "<img src=x",
    " onerror=window.lcA=1>",
    " and",
    " <script>",
    "window.lcB=1",
    "</script>",
]
CONFIG = """
[app]
language = "en"

[inference]
n_ctx = 1024
n_threads = 1
max_tokens = 512
"""
SLOW_CONFIG = CONFIG.replace("max_tokens = 512", f"max_tokens = {SLOW_TOKENS}")


@pytest.fixture(scope="module")
def web_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history-models")
    try:
        os.link(models_dir / FAST, folder / FAST)
    except OSError:
        shutil.copyfile(models_dir / FAST, folder / FAST)
    write_scripted_model(
        folder / SLOW, SLOW_SCRIPT, name="Slow", n_embd=1024, n_layer=12, n_ff=4096, dtype="f16"
    )
    write_scripted_model(folder / HTML, HTML_SCRIPT, name="Html Scripted")
    return folder


@pytest.fixture(scope="module")
def slow_app(web_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("slow-app")
    with running_app(work, web_models, config_toml=SLOW_CONFIG, args=("--model", SLOW)) as running:
        yield running


# History -----------------------------------------------------------------------------------


def test_chats_are_listed_renamed_deleted_exported_and_kept(
    web_models: Path, browser: Browser, tmp_path: Path
) -> None:
    work = tmp_path / "app"
    with running_app(work, web_models, config_toml=CONFIG, args=("--model", FAST)) as app:
        page = open_page(browser, app.url)
        # Two chats: the first message names each one; the newest is listed first.
        send_message(page, "What is the capital of France?")
        wait_for_reply_end(page)
        expect(open_chat_row(page)).to_have_text("What is the capital of France?")
        page.locator("#new_chat").click()
        expect(bubbles(page, "sent")).to_have_count(0)
        send_message(page, "And of Italy?")
        wait_for_reply_end(page)
        expect(page.locator("#chat_list")).to_contain_text("And of Italy?")
        expect(chat_list(page)).to_have_text(["And of Italy?", "What is the capital of France?"])
        # Open the first one: its messages come back; rename it (in its row of the list).
        open_chat(page, "What is the capital of France?")
        expect(bubbles(page, "sent")).to_have_text(["What is the capital of France?"])
        assert wait_for_reply_end(page).startswith(REPLY)
        chat_menu(page, "What is the capital of France?", "rename")
        page.locator("#chat_list .lc-rename").fill("Geography")
        page.locator("#chat_list .lc-rename").press("Enter")
        expect(open_chat_row(page)).to_have_text("Geography")
        # Delete the other one (the open one), after saying yes.
        open_chat(page, "And of Italy?")
        chat_menu(page, "And of Italy?", "delete")
        question = page.locator("#chat_list .lc-chat-confirm")
        expect(question).to_contain_text("Delete “And of Italy?” and all its messages")
        question.get_by_role("button", name="Keep it").click()
        expect(chat_list(page)).to_have_text(["And of Italy?", "Geography"])
        chat_menu(page, "And of Italy?", "delete")
        page.locator("#chat_list .lc-chat-confirm").get_by_role("button", name="Delete").click()
        expect(chat_list(page)).to_have_text(["Geography"])
        expect(list_notice(page)).to_have_text("Deleted “And of Italy?”×")
        expect(bubbles(page, "sent")).to_have_count(0)  # a new, empty chat
        expect(open_chat_row(page)).to_have_count(0)
        # A reload shows the same list; the renamed chat has its messages.
        page.reload()
        open_chat(page, "Geography")
        expect(bubbles(page, "sent")).to_have_text(["What is the capital of France?"])
        # Export Markdown and JSON (downloads), then import the JSON as a new chat.
        with page.expect_download() as md_download:
            chat_menu(page, "Geography", "export-md")
        assert md_download.value.suggested_filename == f"chat-{_chat_id(app)}-Geography.md"
        markdown = Path(md_download.value.path()).read_text(encoding="utf-8")
        assert markdown.startswith("# Geography\n")
        assert "## User" in markdown and "What is the capital of France?" in markdown
        assert "## Assistant" in markdown and REPLY in markdown
        with page.expect_download() as json_download:
            chat_menu(page, "Geography", "export-json")
        exported = tmp_path / "geography.json"
        json_download.value.save_as(exported)
        page.locator("#import_json-upload-file").set_input_files(exported)
        expect(list_notice(page)).to_contain_text("Imported “Geography”")
        expect(notifications(page)).to_have_count(0)  # said in the list, not in a toast
        expect(chat_list(page)).to_have_text(["Geography", "Geography"])
        expect(bubbles(page, "sent")).to_have_text(["What is the capital of France?"])
        page.close()
        with ChatStore.in_folder(app.data_dir) as store:
            assert [c.title for c in store.list_chats()] == ["Geography", "Geography"]
    # Another app process on the same data folder: everything is still there.
    with running_app(work, web_models, config_toml=CONFIG, args=("--model", FAST)) as app:
        page = open_page(browser, app.url)
        expect(chat_list(page)).to_have_text(["Geography", "Geography"])
        open_chat(page, "Geography")
        expect(bubbles(page, "sent")).to_have_text(["What is the capital of France?"])
        assert wait_for_reply_end(page).startswith(REPLY)
        send_message(page, "And of Spain?")  # the chat goes on where it stopped
        wait_for_reply_end(page)
        expect(bubbles(page, "sent")).to_have_count(2)
        page.close()


def _chat_id(app: RunningApp) -> int:
    with ChatStore.in_folder(app.data_dir) as store:
        return next(c.id for c in store.list_chats() if c.title == "Geography")


def test_a_chat_offers_to_load_its_model_and_model_html_stays_text(
    slow_app: RunningApp, browser: Browser, tmp_path: Path
) -> None:
    # An export of a chat written with the HTML model, imported while the slow one is loaded.
    with ChatStore.in_folder(tmp_path / "other") as other:
        chat_id = other.create_chat(title="Markup", model=HTML)
        other.add_message(chat_id, "user", "Show me markup")
        other.add_message(chat_id, "assistant", "<b>not bold</b>")
        (tmp_path / "markup.json").write_text(
            chat_to_json(other.get_chat(chat_id)), encoding="utf-8"
        )
    page = open_page(browser, slow_app.url)
    try:
        page.locator("#import_json-upload-file").set_input_files(tmp_path / "markup.json")
        offer = page.locator("#chat_model_offer")
        expect(offer).to_contain_text(f"This chat was written with {HTML}")
        expect(bubbles(page, "received").last).to_contain_text("<b>not bold</b>")
        page.evaluate(
            """() => {
            window.lcTags = [];
            new MutationObserver(() => {
                for (const e of document.querySelectorAll('#conversation img,'
                    + ' #conversation script')) window.lcTags.push(e.outerHTML);
            }).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
        )
        page.locator("#load_chat_model").click()
        expect(notifications(page).filter(has_text=f"Loaded {HTML}")).to_be_visible(timeout=60_000)
        expect(offer).to_have_count(0)
        expect(page.locator("#model_line")).to_contain_text(HTML)
        send_message(page, "Go on")
        text = wait_for_reply_end(page)
        assert text.startswith("<img src=x onerror=window.lcA=1> and <script>window.lcB=1</script>")
        assert page.evaluate("[window.lcA, window.lcB, window.lcTags]") == [None, None, []]
    finally:
        # Back to the slow model for the other tests.
        page.locator("#new_chat").click()
        page.close()
        _reload_slow(slow_app, browser)


def _reload_slow(app: RunningApp, browser: Browser) -> None:
    with ChatStore.in_folder(app.data_dir) as store:
        chat_id = store.create_chat(title="Slow one", model=SLOW)
    page = open_page(browser, app.url)
    try:
        open_chat(page, "Slow one")
        page.locator("#load_chat_model").click()
        expect(page.locator("#model_line")).to_contain_text(SLOW, timeout=60_000)
    finally:
        page.close()
    with ChatStore.in_folder(app.data_dir) as store:
        store.delete_chat(chat_id)


# Robustness --------------------------------------------------------------------------------


def _worker_pid(app: RunningApp) -> int:
    for child in psutil.Process(app.process.pid).children():
        if "llm.worker" in " ".join(child.cmdline()):
            return child.pid
    raise AssertionError("no model worker process")


def test_a_killed_model_process_fails_one_reply_and_the_next_works(
    slow_app: RunningApp, browser: Browser
) -> None:
    page = open_page(browser, slow_app.url)
    try:
        expect(page.locator("#model_line")).to_contain_text(SLOW)
        send_message(page, "Count for me")
        expect(live_reply(page)).to_contain_text(" w10", timeout=30_000)
        os.kill(_worker_pid(slow_app), signal.SIGKILL)
        text = wait_for_reply_end(page, marker="the model process stopped")
        assert "the model process stopped: it was killed" in text
        assert text.startswith("w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10")  # the cut reply is kept
        expect(page.locator("#chat_error")).to_contain_text("the model process stopped")
        with ChatStore.in_folder(slow_app.data_dir) as store:
            chat = store.get_chat(store.list_chats()[0].id)  # this tab's, the latest active
        assert [m.content for m in chat.messages if m.role == "user"] == ["Count for me"]
        reply = chat.messages[-1]
        assert reply.status == "failed" and reply.content.startswith("w0 w1 w2")
        assert "the model process stopped" in reply.error
        # The next message restarts the worker with the same model.
        send_message(page, "Again")
        assert f"{SLOW_TOKENS} tokens" in wait_for_reply_end(page, timeout_ms=60_000)
        expect(bubbles(page, "received")).to_have_count(2)
    finally:
        page.close()


TABS = 8
LEAVER = 4  # the queued tab that gives up
QUEUE_TOKENS = 8  # short replies: the queue, not the model, is under test
QUEUE_REPLY = "".join(SLOW_SCRIPT[:QUEUE_TOKENS]).strip()
# In each tab: when its reply's first words appeared (Date.now(), ms) and every "N ahead" shown.
WATCH_LIVE_REPLY = """() => {
    window.lcLive = {firstText: null, ahead: []};
    const look = () => {
        const live = document.querySelector('#live_reply .lc-bubble');
        const text = live ? live.innerText.trim() : '';
        const waiting = /^waiting — (\\d+) ahead/.exec(text);
        const ahead = window.lcLive.ahead;
        if (waiting && ahead[ahead.length - 1] !== Number(waiting[1])) {
            ahead.push(Number(waiting[1]));
        }
        // Its first words, live or (a short reply may first be drawn finished) in the
        // finished message: the live reply is drawn at most every 100 ms.
        const all = document.querySelectorAll('#conversation .lc-msg-assistant .lc-md');
        const last = all.length ? all[all.length - 1].innerText.trim() : '';
        if (window.lcLive.firstText === null && (/^w0\\b/.test(text) || /^w0\\b/.test(last))) {
            window.lcLive.firstText = Date.now();
        }
    };
    new MutationObserver(look).observe(document.body,
        {subtree: true, childList: true, characterData: true});
}"""


def _open_tabs(browser: Browser, url: str, count: int) -> list[Page]:
    """`count` tabs of one browser window, loading side by side. They share cookies, storage
    and cache like a user's tabs do; each must still be its own Taipy client."""
    window = browser.new_context(viewport=VIEWPORT)
    tabs = [window.new_page() for _ in range(count)]
    for tab in tabs:
        tab.set_default_timeout(30_000)  # eight tabs on two busy cores
        tab.goto(url, wait_until="commit")
    for tab in tabs:
        tab.wait_for_selector("#navbar")
    return tabs


def _epoch_ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp() * 1000


def test_eight_tabs_are_served_in_arrival_order_and_a_queued_one_can_leave(
    slow_app: RunningApp, browser: Browser
) -> None:
    questions = [f"Question from tab {i}" for i in range(TABS)]
    # Each tab continues a chat of its own whose settings ask for short replies.
    with ChatStore.in_folder(slow_app.data_dir) as store:
        for i in range(TABS):
            settings = {"max_tokens": QUEUE_TOKENS}
            store.create_chat(title=f"Queue {i}", model=SLOW, settings=settings)
    tabs = _open_tabs(browser, slow_app.url, TABS)
    # The model process is paused while the tabs send: the first request is then still
    # running when the last one arrives, however fast or busy the machine is.
    worker = psutil.Process(_worker_pid(slow_app))
    try:
        for i, tab in enumerate(tabs):  # opened side by side too
            chat_list(tab).filter(has_text=re.compile(f"^Queue {i}$")).click()
        for i, tab in enumerate(tabs):
            expect(open_chat_row(tab)).to_have_text(f"Queue {i}", timeout=30_000)
            expect(tab.locator("#model_line")).to_contain_text(SLOW)
            tab.evaluate(WATCH_LIVE_REPLY)
        worker.suspend()
        try:
            # One after another, each once the one before is visibly running or waiting.
            send_message(tabs[0], questions[0])
            expect(live_reply(tabs[0])).to_have_text("…", timeout=15_000)  # running: no queue
            for i in range(1, TABS):
                send_message(tabs[i], questions[i])
                expect(live_reply(tabs[i])).to_have_text(f"waiting — {i} ahead", timeout=15_000)
            # A queued tab gives up: it leaves the line, the ones behind it move up.
            tabs[LEAVER].locator("#stop").click()
            assert wait_for_reply_end(tabs[LEAVER], marker="stopped").startswith("(no text)")
            for i in range(LEAVER + 1, TABS):
                expect(live_reply(tabs[i])).to_have_text(f"waiting — {i - 1} ahead", timeout=15_000)
            for i in range(LEAVER):
                expect(live_reply(tabs[i])).to_have_text("…" if i == 0 else f"waiting — {i} ahead")
        finally:
            worker.resume()
        served = [i for i in range(TABS) if i != LEAVER]
        for i in served:  # every other tab gets its whole reply
            reply = wait_for_reply_end(tabs[i], timeout_ms=120_000)
            assert reply.startswith(f"{QUEUE_REPLY}\n") and f"{QUEUE_TOKENS} tokens" in reply
        # Nothing from one tab in another.
        for i, tab in enumerate(tabs):
            expect(bubbles(tab, "sent")).to_have_text([questions[i]])
            expect(bubbles(tab, "received")).to_have_count(1)
            conversation = tab.locator("#conversation").inner_text()
            assert [q for q in questions if q in conversation] == [questions[i]]
        # Each waiting tab saw its place count down to 1, one step per reply ended (or, for
        # the tabs behind it, when the leaver went).
        seen = [tab.evaluate("window.lcLive") for tab in tabs]
        for i in served[1:]:
            assert seen[i]["ahead"] == list(range(i, 0, -1)), (i, seen[i]["ahead"])
        assert seen[0]["ahead"] == [] and seen[LEAVER]["ahead"] == [LEAVER]
        # Arrival order, from the store: replies ended in the order the tabs sent, and each
        # began (its first words on screen) only after the one before it had ended.
        with ChatStore.in_folder(slow_app.data_dir) as store:
            chats = {c.title: store.get_chat(c.id) for c in store.list_chats()}
        stored = [chats[f"Queue {i}"] for i in range(TABS)]
        for i in served:
            assert [(m.status, m.content) for m in stored[i].messages] == [
                ("complete", questions[i]),
                ("complete", QUEUE_REPLY),
            ]
        assert [(m.status, m.content) for m in stored[LEAVER].messages] == [
            ("complete", questions[LEAVER]),
            ("stopped", ""),
        ]
        ended = {i: _epoch_ms(stored[i].updated) for i in range(TABS)}  # when each reply ended
        assert ended[LEAVER] < ended[0]  # it left before the first reply was done
        for before, after in itertools.pairwise(served):
            assert ended[before] < ended[after]
            began = seen[after]["firstText"]
            assert began > ended[before], (after, began - ended[before])
    finally:
        tabs[0].context.close()
