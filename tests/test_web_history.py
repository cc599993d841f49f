"""Stored chats on the web page, and the chat page under stress, in real Chromium.

`python main.py` runs as a subprocess. The history test starts its own app twice on one data
folder (to prove a restart keeps everything); the other tests share one app per module, with a
slow scripted model loaded (replies take a few seconds: long enough to kill the model process
mid-reply, or to queue other tabs behind it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from browser import (
    RunningApp,
    bubbles,
    chromium,
    live_reply,
    notifications,
    open_page,
    running_app,
    send_message,
    wait_for_reply_end,
)
from conftest import REPLY
from gguf_factory import write_scripted_model
from playwright.sync_api import Browser, Page, expect

from llm.storage import ChatStore

pytestmark = pytest.mark.timeout(180)

FAST, SLOW, HTML = "tinyllama-scripted.gguf", "slow-scripted.gguf", "html-scripted.gguf"
SLOW_SCRIPT = [f" w{i}" for i in range(100)]
SLOW_TOKENS = 40  # the slow app's max_tokens: replies of a few seconds
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
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def slow_app(web_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("slow-app")
    with running_app(work, web_models, config_toml=SLOW_CONFIG, args=("--model", SLOW)) as running:
        yield running


def chat_list(page: Page):  # -> Locator of the chat list's entries
    return page.locator("#chat_list").get_by_role("button")


def open_chat(page: Page, title: str) -> None:
    chat_list(page).filter(has_text=re.compile(f"^{re.escape(title)}$")).first.click()
    expect(page.locator("#chat_title")).to_have_value(title)


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
        expect(page.locator("#chat_title")).to_have_value("What is the capital of France?")
        page.locator("#new_chat").click()
        expect(bubbles(page, "sent")).to_have_count(0)
        send_message(page, "And of Italy?")
        wait_for_reply_end(page)
        expect(page.locator("#chat_list")).to_contain_text("And of Italy?")
        expect(chat_list(page)).to_have_text(["And of Italy?", "What is the capital of France?"])
        # Open the first one: its messages come back; rename it.
        open_chat(page, "What is the capital of France?")
        expect(bubbles(page, "sent")).to_have_text(["What is the capital of France?"])
        assert wait_for_reply_end(page).startswith(REPLY)
        page.locator("#chat_title").fill("Geography")
        page.locator("#chat_title").press("Enter")
        expect(page.locator("#chat_list")).to_contain_text("Geography")
        # Delete the other one, after saying yes.
        open_chat(page, "And of Italy?")
        page.locator("#delete_chat").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("“And of Italy?” and all its messages")
        dialog.get_by_role("button", name="Keep it").click()
        expect(page.locator("#chat_list")).to_contain_text("And of Italy?")
        page.locator("#delete_chat").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.locator("#chat_list")).not_to_contain_text("And of Italy?")
        expect(bubbles(page, "sent")).to_have_count(0)  # a new, empty chat
        # A reload shows the same list; the renamed chat has its messages.
        page.reload()
        page.wait_for_selector("#chat_list")
        open_chat(page, "Geography")
        expect(bubbles(page, "sent")).to_have_text(["What is the capital of France?"])
        # Export Markdown and JSON (downloads), then import the JSON as a new chat.
        with page.expect_download() as md_download:
            page.locator("#export_md").click()
        assert md_download.value.suggested_filename == f"chat-{_chat_id(app)}-Geography.md"
        markdown = Path(md_download.value.path()).read_text(encoding="utf-8")
        assert markdown.startswith("# Geography\n")
        assert "## User" in markdown and "What is the capital of France?" in markdown
        assert "## Assistant" in markdown and REPLY in markdown
        with page.expect_download() as json_download:
            page.locator("#export_json").click()
        exported = tmp_path / "geography.json"
        json_download.value.save_as(exported)
        page.locator("#import_json-upload-file").set_input_files(exported)
        expect(notifications(page).filter(has_text="Imported “Geography”")).to_be_visible()
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
        (tmp_path / "markup.json").write_text(other.export_json(chat_id), encoding="utf-8")
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
                for (const e of document.querySelectorAll('#live_reply img, #live_reply script,'
                    + ' #chat img, #chat script')) window.lcTags.push(e.outerHTML);
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
        expect(notifications(page).filter(has_text="the model process stopped")).to_be_visible()
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


def test_tabs_wait_their_turn_see_their_place_and_can_leave_the_queue(
    slow_app: RunningApp, browser: Browser
) -> None:
    tabs = [open_page(browser, slow_app.url) for _ in range(3)]
    try:
        for tab in tabs:
            expect(tab.locator("#model_line")).to_contain_text(SLOW)
        for i, tab in enumerate(tabs):
            send_message(tab, f"Question from tab {i}")
        # The later tabs wait, and say so; the last one gives up while waiting.
        expect(live_reply(tabs[1])).to_contain_text("waiting — 1 ahead")
        expect(live_reply(tabs[2])).to_contain_text("waiting — 2 ahead")
        tabs[2].locator("#stop").click()
        stopped = wait_for_reply_end(tabs[2], marker="stopped")
        assert stopped.startswith("(no text)")
        assert live_reply(tabs[0]).count() == 1, "the queued tab left before the first ended"
        for tab in tabs[:2]:
            assert wait_for_reply_end(tab, timeout_ms=60_000).startswith(SLOW_REPLY)
        for i, tab in enumerate(tabs):  # nothing from one tab in another
            expect(bubbles(tab, "sent")).to_have_text([f"Question from tab {i}"])
            expect(bubbles(tab, "received")).to_have_count(1)
        with ChatStore.in_folder(slow_app.data_dir) as store:
            stored = {c.title: store.get_chat(c.id).messages for c in store.list_chats()}
        assert [m.status for m in stored["Question from tab 2"]] == ["complete", "stopped"]
        for i in (0, 1):
            assert stored[f"Question from tab {i}"][1].content == SLOW_REPLY
    finally:
        for tab in tabs:
            tab.close()
