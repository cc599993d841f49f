"""The web app end to end: `python main.py` as a subprocess, driven in real Chromium.

One app process serves the whole module (English UI, dark mode). Its models folder holds the
instant scripted models, a slower scripted model whose replies take a few seconds (to watch
streaming and stop it), and a truncated file. Each test loads the model it needs through the
models page, as a user would, so the tests do not depend on their order.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from support import PROJECT_DIR
from support.browser import (
    VIEWPORT,
    RunningApp,
    bubbles,
    chat_input,
    chat_list,
    choose_option,
    go_to,
    live_reply,
    load_model,
    notifications,
    open_page,
    record_reply_texts,
    reply_samples,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model, write_truncated
from support.local_http import serving
from support.replies import REPLY

from llm.storage import ChatStore

pytestmark = pytest.mark.timeout(120)

# The slow model replies " w0 w1 ... w99": 100 tokens with real per-token cost (a few s).
SLOW_SCRIPT = [f" w{i}" for i in range(100)]
SLOW_REPLY = "".join(SLOW_SCRIPT).strip()
# A reply with markdown and a single newline inside a paragraph.
MARKDOWN_SCRIPT = ["**Paris**", " is", " big.\n", "Really", " big", ".\n\n", "`x = 1`"]
FAST, CHATML, SLOW, MARKDOWN, BROKEN = (
    "tinyllama-scripted.gguf",
    "chatml-scripted.gguf",
    "slow-scripted.gguf",
    "markdown-scripted.gguf",
    "broken.gguf",
)
CONFIG = """
[app]
title = "LocalChat"
language = "en"
dark_mode = true

[inference]
n_ctx = 1024
n_threads = 1
max_tokens = 512
"""


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@pytest.fixture(scope="module")
def web_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-models")
    for name in (FAST, CHATML):
        _link_or_copy(models_dir / name, folder / name)
    write_scripted_model(
        folder / SLOW,
        SLOW_SCRIPT,
        name="Slow Scripted",
        n_embd=1024,
        n_layer=12,
        n_ff=4096,
        dtype="f16",
    )
    write_scripted_model(folder / MARKDOWN, MARKDOWN_SCRIPT, name="Markdown Scripted")
    write_truncated(folder / BROKEN, folder / FAST)
    return folder


@pytest.fixture(scope="module")
def app(web_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("web-app")
    with running_app(work, web_models, config_toml=CONFIG, args=("--model", FAST)) as running:
        yield running


def _use_model(page: Page, name: str) -> None:
    """Load `name` on the models page (if not loaded yet) and come back to the chat."""
    go_to(page, "Models")
    expect(page.locator("#loaded_line")).not_to_be_empty()
    if name not in page.locator("#loaded_line").inner_text():
        load_model(page, name)
        expect(page.locator("#loaded_line")).to_contain_text(name, timeout=60_000)
    go_to(page, "Chat")
    expect(page.locator("#model_line")).to_contain_text(name)


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# HTTP --------------------------------------------------------------------------------------


def test_sources_settings_models_and_data_are_not_served(app: RunningApp) -> None:
    (app.data_dir / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
    (app.data_dir / "notes.txt").write_text("private")
    assert _status(app.url) == 200
    assert _status(app.url + "main.css") == 200  # the style sheet and its files
    assert _status(app.url + "assets/favicon.svg") == 200
    assert _status(app.url + "assets/fonts/lato-latin-400-normal.woff2") == 200
    for path in (
        "main.py",
        "config.toml",
        ".taipyignore",
        "llm/engine.py",
        "llm/config.py",
        "pages/chat.py",
        "pages/i18n.py",
        "tests/conftest.py",
        "requirements.txt",
        "README.md",
        "data/preferences.json",
        f"models/{FAST}",
        "models/anything.gguf",
    ):
        assert _status(app.url + path) == 404, path
    # The app's folders outside the project are not reachable either.
    assert _status(app.url + f"{app.models_dir.name}/{FAST}") == 404
    assert _status(app.url + "data/notes.txt") == 404
    # Nor is a `static` folder where the app was started (Flask's own route would serve it).
    (app.data_dir.parent / "static").mkdir(exist_ok=True)
    (app.data_dir.parent / "static" / "notes.txt").write_text("private")
    assert _status(app.url + "static/notes.txt") == 404


def test_taipyignore_covers_every_file_but_the_style_sheet_and_its_assets() -> None:
    # The same matcher Taipy applies to each request for a file under the project folder,
    # for files the HTTP test above cannot count on existing (models, the database).
    from gitignore_parser import parse_gitignore

    project = PROJECT_DIR
    ignored = parse_gitignore(project / ".taipyignore")
    for path in ("main.css", "assets/favicon.svg", "assets/fonts/lato-latin-700-normal.woff2"):
        assert not ignored(str(project / path)), path
    for path in (
        "main.py",
        "config.toml",
        "models/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
        "models/partial.gguf.incomplete",
        "data/localchat.db",
        "data/preferences.json",
        "llm/worker.py",
        "pages/models.py",
        "bench/run.py",
        ".git/config",
        ".venv/pyvenv.cfg",
        "anything-new.txt",
    ):
        assert ignored(str(project / path)), path


def test_other_web_sites_cannot_open_the_app_socket(app: RunningApp) -> None:
    handshake = app.url + "socket.io/?EIO=4&transport=polling"
    assert _status(handshake) == 200
    assert _status(handshake, {"Origin": app.url.rstrip("/")}) == 200
    assert _status(handshake, {"Origin": "https://evil.example"}) == 400


def _answering(answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> type:
    """A request handler class that calls `answer` for every request, logging nothing."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            answer(self)

        do_GET = do_POST = do_HEAD = do_CONNECT = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def test_other_web_sites_cannot_show_the_app_in_a_frame(app: RunningApp, browser: Browser) -> None:
    # A site could lay the app, framed, under its own buttons (clickjacking).
    def answer(request: http.server.BaseHTTPRequestHandler) -> None:
        body = (
            f'<iframe id="app" src="{app.url}chat"></iframe><iframe id="own" src="own"></iframe>'
            if request.path == "/"
            else '<p id="own">framed</p>'
        ).encode()
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    with serving(_answering(answer)) as other_site:
        page = browser.new_page()
        try:
            page.goto(other_site + "/", wait_until="load")  # "load" waits for the frames
            expect(page.frame_locator("#own").locator("#own")).to_have_text("framed")
            framed = page.locator("#app").element_handle().content_frame()
            assert framed is not None and not framed.url.startswith(app.url)
            assert framed.locator("#navbar").count() == 0
        finally:
            page.close()


def test_the_pages_ask_no_other_site_for_anything(app: RunningApp, browser: Browser) -> None:
    # Everything but the app (on 127.0.0.1) goes through a proxy that notes what it was asked
    # for: what the page would tell other sites.
    asked: list[str] = []

    def refuse(request: http.server.BaseHTTPRequestHandler) -> None:
        asked.append(request.requestline)
        request.send_error(502)

    with serving(_answering(refuse)) as proxy:
        proxy_settings = {"server": proxy, "bypass": "127.0.0.1"}
        context = browser.new_context(proxy=proxy_settings, viewport=VIEWPORT)
        try:
            page = context.new_page()
            page.evaluate("fetch('http://other-site.example/x').catch(() => null)")
            assert asked == ["GET http://other-site.example/x HTTP/1.1"]  # the proxy is in use
            asked.clear()
            for name in ("chat", "models"):
                page.goto(app.url + name, wait_until="networkidle")
                expect(page.locator("#navbar")).to_be_visible()
                page.wait_for_function("() => document.fonts.status === 'loaded'")
            assert asked == [], asked
            # The page keeps its look with what the app serves: the style kit's font, the icon.
            weights = page.evaluate(
                "[...document.fonts].filter(f => f.family.replace(/\"/g, '') === 'Lato'"
                " && f.status === 'loaded').map(f => f.weight)"
            )
            assert {"400", "700"} <= set(weights)
            icon = page.evaluate("document.querySelector('link.taipy-favicon').href")
            assert icon.startswith(app.url + "assets/favicon.svg")
        finally:
            context.close()


# Chat page ---------------------------------------------------------------------------------


def test_root_lands_on_chat_with_the_model_and_its_format(page: Page, shots: Path) -> None:
    expect(page).to_have_url(re.compile(r"/chat$"))
    _use_model(page, FAST)
    expect(page.locator("#model_line")).to_contain_text("chat format zephyr")
    expect(page.locator("#open_models")).to_have_count(0)
    expect(page.locator("#stop")).to_be_disabled()
    expect(page.locator("#system_prompt")).to_have_value("")  # none of LocalChat's own
    page.screenshot(path=shots / "chat-empty-dark.png")


def test_a_message_gets_the_reply_with_its_figures(page: Page, shots: Path) -> None:
    _use_model(page, FAST)
    send_message(page, "What is the capital of France?")
    expect(bubbles(page, "sent").last).to_have_text("What is the capital of France?")
    text = wait_for_reply_end(page)
    assert text.startswith(REPLY)
    assert re.search(r"first token \d+\.\d\d s · 7 tokens at \d+\.\d tokens/s", text), text
    expect(chat_input(page)).to_have_value("")
    expect(chat_input(page)).to_be_focused()  # ready for the next message
    # A second turn goes on in the same conversation.
    send_message(page, "And of Italy?")
    expect(bubbles(page, "received")).to_have_count(2)
    wait_for_reply_end(page)
    expect(bubbles(page, "sent")).to_have_count(2)
    page.screenshot(path=shots / "chat-dark.png")


def test_markdown_is_rendered_with_newlines_and_html_stays_text(page: Page) -> None:
    _use_model(page, MARKDOWN)
    attack = "<img src=x onerror=window.lcInjected=1> **bold** `code`"
    send_message(page, attack)
    wait_for_reply_end(page)
    reply = bubbles(page, "received").last
    expect(reply.locator("strong")).to_have_text("Paris")
    expect(reply.locator("code")).to_have_text("x = 1")
    first_paragraph = reply.locator("p").first
    assert first_paragraph.inner_text() == "Paris is big.\nReally big."  # newline kept
    assert first_paragraph.evaluate("e => e.getBoundingClientRect().height") > 30  # two lines
    sent = bubbles(page, "sent").last
    expect(sent.locator("strong")).to_have_text("bold")  # the user's markdown renders too
    expect(sent).to_contain_text("<img src=x onerror=window.lcInjected=1>")  # as text
    expect(page.locator("#conversation img")).to_have_count(0)
    assert page.evaluate("window.lcInjected") is None


# Pasted the way a browser pastes (execCommand "insertText"), so the text reaches the input
# exactly: a null byte, a lone surrogate (invalid Unicode), a right-to-left override.
PASTE_ODD_TEXT = """() => {
    const box = document.querySelector('#message');
    box.focus();
    document.execCommand('insertText', false, 'nul \\u0000 byte, lone surrogate '
        + String.fromCharCode(0xD800) + ', bidi \\u202e, emoji \\u{1F1EB}\\u{1F1F7}');
    return Array.from(box.value, c => c.codePointAt(0));
}"""
ODD_STORED = "nul \x00 byte, lone surrogate \ufffd, bidi \u202e, emoji \U0001f1eb\U0001f1f7"


def _stored_rows(app: RunningApp) -> list[tuple[str, list[tuple[str, str, str]]]]:
    with ChatStore.in_folder(app.data_dir) as store:
        return [
            (c.title, [(m.role, m.status, m.content) for m in store.get_chat(c.id).messages])
            for c in store.list_chats()
        ]


def test_hostile_text_typed_in_the_page_is_refused_or_kept_as_text(
    page: Page, app: RunningApp, browser: Browser
) -> None:
    _use_model(page, FAST)
    before = _stored_rows(app)
    # 108,000 characters pasted: more than the model can take. One clear message with the
    # numbers; nothing stored or shown in the chat; the text stays in the input to shorten.
    huge = "capital? " * 12_000
    chat_input(page).fill(huge)
    chat_input(page).press("Enter")
    refusal = page.locator("#chat_error")  # above the input, not a toast over it
    expect(refusal).to_contain_text("the message is too long", timeout=30_000)
    assert re.search(r"needs \d+ tokens, but the context leaves room for 512", refusal.inner_text())
    expect(chat_input(page)).to_be_enabled()
    got = chat_input(page).input_value()
    assert got == huge, (len(got), got[:30], got[-30:])
    assert _stored_rows(app) == before
    # Pasting what would make over a million characters: not let in, and said under the input
    # (past 16 MB Engine.IO would drop the message, and the user would see nothing happen).
    # A real paste from the clipboard, of 1,125,000 characters and then of 17 million.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    limit = page.locator("#message_limit")
    copy = "(text) => navigator.clipboard.writeText(text)"
    page.evaluate(copy, "capital? " * 125_000)
    chat_input(page).fill("")
    chat_input(page).press("Control+V")
    expect(limit).to_have_text(
        "the message is too long: it would have 1,125,000 characters, and a message can have "
        "at most 1,000,000"
    )
    assert chat_input(page).input_value() == ""
    page.evaluate("() => navigator.clipboard.writeText('x'.repeat(17000000))")
    chat_input(page).press("Control+V")
    expect(limit).to_contain_text("it would have 17,000,000 characters")
    assert chat_input(page).input_value() == ""
    chat_input(page).press("Enter")  # an empty box: nothing is sent
    send_message(page, "Hello")  # typing clears the line, and the page goes on working
    expect(limit).to_have_count(0)
    assert wait_for_reply_end(page).startswith(REPLY)
    before = _stored_rows(app)
    assert before[0][1][0] == ("user", "complete", "Hello")
    page.locator("#new_chat").click()
    expect(bubbles(page, "sent")).to_have_count(0)
    # The page goes on working: odd text is stored as it came (invalid Unicode made U+FFFD)
    # and shown as text.
    chat_input(page).fill("")
    typed = page.evaluate(PASTE_ODD_TEXT)
    assert 0 in typed and 0xD800 in typed and 0x202E in typed
    chat_input(page).press("Enter")
    assert wait_for_reply_end(page).startswith(REPLY)
    expect(bubbles(page, "sent")).to_have_count(1)  # the refused message is not in the chat
    expect(bubbles(page, "received")).to_have_count(1)
    after = _stored_rows(app)
    title = "nul byte, lone surrogate \ufffd, bidi \u202e, emoji \U0001f1eb\U0001f1f7"
    assert after == [
        (title, [("user", "complete", ODD_STORED), ("assistant", "complete", REPLY)]),
        *before,
    ]
    # The stored chat, opened in another tab, shows the text (the null byte as U+FFFD, as
    # Markdown renders it), and no element came from it.
    other = open_page(browser, app.url)
    try:
        chat_list(other).first.click()
        expect(bubbles(other, "sent")).to_have_count(1)
        shown = bubbles(other, "sent").first
        assert shown.text_content() == ODD_STORED.replace("\x00", "\ufffd")
        assert shown.locator("p *").count() == 0
    finally:
        other.close()


def test_bad_generation_settings_are_refused_and_nothing_is_sent(page: Page) -> None:
    _use_model(page, FAST)
    page.get_by_text("Generation settings").click()
    max_tokens = page.locator("#max_tokens")

    def set_max_tokens(value: str) -> None:
        max_tokens.fill(value)
        max_tokens.press("Tab")

    set_max_tokens("0")
    refused = "Max tokens must be between 1 and 1,000,000"
    expect(page.locator("#settings_error")).to_have_text(refused)  # said as it is typed
    send_message(page, "Hello")
    # Said above the input, not in a toast over it.
    expect(page.locator("#chat_error")).to_have_text(refused)
    expect(notifications(page)).to_have_count(0)
    expect(bubbles(page, "sent")).to_have_count(0)
    expect(chat_input(page)).to_have_value("Hello")
    expect(chat_input(page)).to_be_enabled()
    set_max_tokens("3")  # a valid value is used for the next reply
    send_message(page, "Hello")
    text = wait_for_reply_end(page)
    assert text.startswith("Paris is the\n")
    assert "3 tokens" in text and "cut at the token limit" in text


def test_an_empty_message_does_nothing(page: Page) -> None:
    _use_model(page, FAST)
    for text in ("", "   ", "\n"):
        chat_input(page).fill(text)
        chat_input(page).press("Enter")
    time.sleep(0.5)  # give a wrongly sent message time to show up
    expect(bubbles(page, "sent")).to_have_count(0)
    expect(bubbles(page, "received")).to_have_count(0)
    expect(live_reply(page)).to_have_count(0)


def test_shift_enter_writes_a_second_line(page: Page) -> None:
    _use_model(page, FAST)
    box = chat_input(page)
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(bubbles(page, "sent")).to_have_count(0)
    box.press("Enter")
    expect(bubbles(page, "sent").last).to_have_text("first line\nsecond line")
    wait_for_reply_end(page)


def test_new_chat_starts_an_empty_conversation(page: Page) -> None:
    _use_model(page, FAST)
    send_message(page, "What is the capital of France?")
    wait_for_reply_end(page)
    page.locator("#new_chat").click()
    expect(bubbles(page, "sent")).to_have_count(0)
    expect(bubbles(page, "received")).to_have_count(0)
    send_message(page, "Hello again")
    wait_for_reply_end(page)
    expect(bubbles(page, "sent")).to_have_count(1)


def test_two_tabs_keep_separate_conversations(app: RunningApp, browser: Browser) -> None:
    first = open_page(browser, app.url)
    second = open_page(browser, app.url)
    try:
        _use_model(first, FAST)
        first.locator("#system_prompt").fill("Answer like a pirate")
        first.locator("#system_prompt").press("Tab")
        send_message(first, "Only in the first tab")
        wait_for_reply_end(first)
        second.reload()  # whatever the first tab did, a fresh look at the second
        second.wait_for_selector("#conversation .lc-thread")
        expect(bubbles(second, "sent")).to_have_count(0)
        expect(second.locator("#system_prompt")).to_have_value("")
        send_message(second, "Only in the second tab")
        wait_for_reply_end(second)
        expect(bubbles(second, "sent")).to_have_text(["Only in the second tab"])
        expect(bubbles(first, "sent")).to_have_text(["Only in the first tab"])
        expect(first.locator("#system_prompt")).to_have_value("Answer like a pirate")
        first.reload()  # a tab keeps its own conversation across a reload
        expect(bubbles(first, "sent")).to_have_text(["Only in the first tab"])
    finally:
        first.close()
        second.close()


def test_a_slow_reply_streams_in_many_steps(page: Page, shots: Path) -> None:
    _use_model(page, SLOW)
    record_reply_texts(page)
    send_message(page, "Count for me")
    # While the reply runs: Stop is on, sending is off.
    expect(page.locator("#stop")).to_be_enabled()
    expect(chat_input(page)).to_be_disabled()
    expect(live_reply(page)).to_contain_text(" w20", timeout=30_000)
    # The question is in the conversation above the reply being written.
    expect(bubbles(page, "sent")).to_have_text(["Count for me"])
    expect(live_reply(page).locator(".lc-bubble")).to_have_text(re.compile(r"^w0 w1 .*…$", re.S))
    page.screenshot(path=shots / "chat-streaming-dark.png")
    final = wait_for_reply_end(page)
    assert final.startswith(SLOW_REPLY)
    assert "100 tokens" in final
    expect(live_reply(page)).to_have_count(0)  # the finished reply is an ordinary message
    expect(bubbles(page, "sent")).to_have_text(["Count for me"])
    expect(page.locator("#stop")).to_be_disabled()

    samples = reply_samples(page)
    partial = [s for s in samples if s["text"].strip() not in ("", "…")]
    lengths = [len(s["text"]) for s in partial]
    assert len(partial) >= 5, f"only {len(partial)} updates: {lengths}"
    assert lengths == sorted(lengths), "the text must only grow"
    assert all(SLOW_REPLY.startswith(s["text"].strip()) for s in partial)
    spread_s = (partial[-1]["at"] - partial[0]["at"]) / 1000
    assert spread_s > 0.5, f"updates came all at once ({spread_s:.2f} s apart)"
    rate = len(partial) / max(spread_s, 1e-3)
    # Coalesced to at most one event every 0.1 s (web/live.py); a frame may show two.
    assert 2 <= rate <= 20, f"{rate:.1f} updates/s"


def test_stop_ends_the_reply_and_keeps_its_text(page: Page) -> None:
    _use_model(page, SLOW)
    send_message(page, "Count for me")
    expect(live_reply(page)).to_contain_text(" w10", timeout=30_000)
    # Read before clicking: after Stop the live element goes away as soon as the reply ends.
    shown_at_click = len(live_reply(page).locator(".lc-md").inner_text().split())
    page.locator("#stop").click()
    final = wait_for_reply_end(page)
    assert "stopped" in final
    words = final.split("\n")[0].split()
    assert words == [f"w{i}" for i in range(len(words))], "the text written so far is kept"
    assert len(words) < len(SLOW_SCRIPT)
    assert len(words) <= shown_at_click + 25, "the reply went on after Stop"
    # The conversation goes on after a stop.
    send_message(page, "Go on")
    expect(page.locator("#stop")).to_be_enabled()
    page.locator("#stop").click()
    expect(bubbles(page, "received")).to_have_count(2)
    assert "stopped" in wait_for_reply_end(page)


# Models page -------------------------------------------------------------------------------


def test_models_page_lists_the_folder_and_switches_models(
    page: Page, app: RunningApp, shots: Path
) -> None:
    _use_model(page, FAST)
    go_to(page, "Models")
    expect(page.locator("#models_folder")).to_contain_text(str(app.models_dir))
    table = page.locator("#model_table")
    for name in (FAST, CHATML, SLOW, BROKEN):
        expect(table).to_contain_text(name)
    expect(table).to_contain_text("truncated")
    expect(table.locator("tr", has_text=FAST)).to_contain_text("zephyr")
    expect(table.locator("tr", has_text=FAST)).to_contain_text("loaded")
    table.locator("tr", has_text=CHATML).click()  # a row click selects its model
    expect(page.locator("#model_select")).to_have_text(CHATML)
    page.locator("#load_model").click()
    expect(notifications(page).filter(has_text=f"Loaded {CHATML}")).to_be_visible(timeout=60_000)
    expect(page.locator("#loaded_line")).to_contain_text(CHATML)
    expect(table.locator("tr", has_text=CHATML)).to_contain_text("loaded")
    page.screenshot(path=shots / "models-dark.png", full_page=True)
    go_to(page, "Chat")
    expect(page.locator("#model_line")).to_contain_text(CHATML)
    expect(page.locator("#model_line")).to_contain_text("chatml")
    send_message(page, "Hello")
    assert wait_for_reply_end(page).startswith(REPLY)


def test_loading_shows_progress_and_a_rescan_finds_new_files(page: Page, web_models: Path) -> None:
    _use_model(page, FAST)
    go_to(page, "Models")
    # Loading may be quick: record what the page showed while it lasted.
    page.evaluate(
        """() => {
        window.lcLoading = [];
        new MutationObserver(() => {
            const shown = document.querySelector('#loading');
            const button = document.querySelector('#load_model');
            if (shown) window.lcLoading.push([shown.innerText, button.disabled]);
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }"""
    )
    load_model(page, SLOW)
    expect(page.locator("#loaded_line")).to_contain_text(SLOW, timeout=60_000)
    expect(notifications(page).filter(has_text=f"Loaded {SLOW}")).to_be_visible()
    expect(page.locator("#load_model")).to_be_enabled()
    seen = page.evaluate("window.lcLoading")
    # The loading state was shown with Load disabled; a fast load may end before its text
    # is drawn, but any text shown names the model.
    assert any(disabled for _, disabled in seen), seen
    assert all(text in ("", f"Loading {SLOW}…") for text, _ in seen), seen
    extra = web_models / "dropped-in.gguf"
    _link_or_copy(web_models / CHATML, extra)
    try:
        page.locator("#rescan").click()
        expect(page.locator("#model_table")).to_contain_text("dropped-in.gguf")
    finally:
        extra.unlink()
    page.locator("#rescan").click()
    expect(page.locator("#model_table")).not_to_contain_text("dropped-in.gguf")


def test_a_bad_model_file_shows_why_and_the_chat_keeps_working(page: Page, shots: Path) -> None:
    _use_model(page, FAST)
    go_to(page, "Models")
    load_model(page, BROKEN)
    reason = re.compile(rf"{BROKEN}: truncated: \d+\.\d KB of \d+\.\d KB")
    expect(notifications(page).filter(has_text=reason)).to_be_visible(timeout=30_000)
    expect(page.locator("#load_error")).to_contain_text(reason)
    expect(page.locator("#loaded_line")).to_contain_text(FAST)
    page.screenshot(path=shots / "models-bad-file-dark.png", full_page=True)
    go_to(page, "Chat")
    expect(page.locator("#model_line")).to_contain_text(FAST)
    send_message(page, "Still there?")
    assert wait_for_reply_end(page).startswith(REPLY)


def test_format_override_is_previewed_remembered_and_used(page: Page, app: RunningApp) -> None:
    _use_model(page, FAST)
    go_to(page, "Models")
    choose_option(page, "model_select", FAST)
    preview = page.locator("#prompt_preview")
    expect(preview).to_contain_text("<|user|>")  # zephyr, found from the model's name
    expect(page.locator("#format_select")).to_contain_text("auto (zephyr)")
    choose_option(page, "format_select", "chatml")
    expect(preview).to_contain_text("<|im_start|>user\nWhat is the capital of France?<|im_end|>")
    expect(preview).to_contain_text("<|im_start|>assistant")
    saved = json.loads((app.data_dir / "preferences.json").read_text())
    assert saved == {"chat_formats": {FAST: "chatml"}}
    try:
        go_to(page, "Chat")
        expect(page.locator("#model_line")).to_contain_text("chat format chatml")
        send_message(page, "Hello")
        assert wait_for_reply_end(page).startswith(REPLY)
        page.reload()  # remembered: a new visit shows the same choice
        go_to(page, "Models")
        expect(page.locator("#loaded_line")).to_contain_text(FAST)  # the page has its state
        choose_option(page, "model_select", FAST)
        expect(page.locator("#format_select")).to_contain_text("chatml")
    finally:
        # Back to auto for the next tests (the model is chosen again: under load a late
        # refresh of the reloaded page can still change the selection).
        choose_option(page, "model_select", FAST)
        choose_option(page, "format_select", "auto")
    expect(preview).to_contain_text("<|user|>")
    assert json.loads((app.data_dir / "preferences.json").read_text()) == {"chat_formats": {}}


def test_light_theme_screenshots(page: Page, shots: Path) -> None:
    _use_model(page, FAST)
    page.locator("#theme_toggle button[value=light]").click()
    expect(page.locator("body.taipy-light, .taipy-light").first).to_be_attached()
    send_message(page, "What is the capital of France?")
    wait_for_reply_end(page)
    page.screenshot(path=shots / "chat-light.png")
    go_to(page, "Models")
    expect(page.locator("#model_table")).to_be_visible()
    page.screenshot(path=shots / "models-light.png", full_page=True)
