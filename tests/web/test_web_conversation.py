"""What people do with a conversation, in real Chromium against a real engine: copy, code
blocks, edit, regenerate and move between versions, continue after Stop, delete, search the
chats, pin, two tabs on one chat (web/static/conversation.js, web/chat_view.py).

One app per module, with one scripted model (ChatML template) whose reply has sixty words
and then a fenced Python block; each token costs real work, so a reply takes a few seconds
and can be stopped midway. A scripted model continues any text with the token after its last
one, so a stopped reply that is continued ends exactly as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import (
    RunningApp,
    bubbles,
    chat_list,
    chat_menu,
    chat_row,
    live_reply,
    message,
    message_button,
    open_chat,
    open_chat_row,
    open_page,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model
from support.replies import CHATML_TEMPLATE

from llm.storage import ChatStore

pytestmark = pytest.mark.timeout(180)

MODEL = "code-scripted.gguf"
CODE = "def f():\n    return 1"
SCRIPT = [
    *[f" w{i}" for i in range(60)],
    "\n\n```python\n",
    "def",
    " f",
    "():\n",
    "    return",
    " 1\n",
    "```",
]
REPLY = "".join(SCRIPT).strip()
WORDS = "".join(SCRIPT[:60]).strip()
CONFIG = """
[app]
language = "en"

[inference]
n_ctx = 1024
n_threads = 1
max_tokens = 512
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    models = tmp_path_factory.mktemp("conversation-models")
    write_scripted_model(
        models / MODEL,
        SCRIPT,
        name="Code Scripted",
        chat_template=CHATML_TEMPLATE,
        n_embd=1024,
        n_layer=12,
        n_ff=4096,
        dtype="f16",
    )
    work = tmp_path_factory.mktemp("conversation-app")
    with running_app(work, models, config_toml=CONFIG, args=("--model", MODEL)) as running:
        yield running


def _stored(app: RunningApp, title: str) -> tuple[int, list[tuple[str, str]], int]:
    """(chat id, the visible branch as (role, content), how many messages in the tree)."""
    with ChatStore.in_folder(app.data_dir) as store:
        chat_id = next(c.id for c in store.list_chats() if c.title == title)
        chat = store.get_chat(chat_id)
        return chat_id, [(m.role, m.content) for m in chat.messages], len(store.tree(chat_id))


def _clipboard(page: Page) -> str:
    return page.evaluate("() => navigator.clipboard.readText()")


def _next_reply(page: Page, marker: str = "first token") -> str:
    """Wait for the reply just asked for (the previous one's figures are on screen already)
    to be written and to end; a reply here takes a few seconds."""
    expect(live_reply(page)).to_have_count(1, timeout=30_000)
    return wait_for_reply_end(page, timeout_ms=60_000, marker=marker)


def _fresh_chat(page: Page, question: str) -> str:
    """A new chat with one exchange; returns the reply's text (with its figures line)."""
    page.locator("#new_chat").click()
    expect(bubbles(page, "sent")).to_have_count(0)
    send_message(page, question)
    return wait_for_reply_end(page)


def test_a_reply_is_copied_as_written_and_its_code_is_highlighted_and_copied(
    page: Page, app: RunningApp, shots: Path
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url[:-1])
    assert _fresh_chat(page, "Show me code").startswith(WORDS)
    reply = bubbles(page, "received").last
    # Highlighted by language, in a block with its own Copy button.
    code = reply.locator(".lc-code code.language-python")
    expect(code).to_have_text(CODE + "\n")
    expect(code.locator(".hljs-keyword").first).to_have_text("def")
    assert code.locator(".hljs-keyword").first.evaluate("e => getComputedStyle(e).color") != (
        code.evaluate("e => getComputedStyle(e).color")
    )
    reply.locator(".lc-code-copy").click()
    expect(reply.locator(".lc-code-copy")).to_have_text("Copied")
    assert _clipboard(page) == CODE  # exactly the code: no fence, no language, no last newline
    # The whole reply, as the raw Markdown the model wrote.
    message_button(page, "received", "copy").click()
    assert _clipboard(page) == REPLY
    # The user's message too, as typed.
    message_button(page, "sent", "copy").click()
    assert _clipboard(page) == "Show me code"
    page.screenshot(path=shots / "conversation-code-dark.png")


def test_an_unknown_language_stays_a_plain_code_block_and_html_stays_text(page: Page) -> None:
    send_message(page, "```brainfudge\n<b>+++</b>\n```\n[x](javascript:alert(1)) <i>no</i>")
    wait_for_reply_end(page)
    sent = bubbles(page, "sent").last
    expect(sent.locator(".lc-code code")).to_have_text("<b>+++</b>\n")
    expect(sent.locator(".lc-code code span")).to_have_count(0)  # nothing highlighted
    expect(sent.locator("b, i, a[href^='javascript']")).to_have_count(0)
    expect(sent).to_contain_text("<i>no</i>")


def test_edit_sends_a_new_branch_and_a_reload_shows_it(page: Page, app: RunningApp) -> None:
    _fresh_chat(page, "Edit me")
    chat_id, branch, count = _stored(app, "Edit me")
    # Cancel changes nothing.
    message_button(page, "sent", "edit").click()
    editor = page.locator(".lc-editor")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("Edit me")
    editor.fill("Not sent")
    message_button(page, "sent", "cancel").click()
    expect(bubbles(page, "sent")).to_have_text(["Edit me"])
    assert _stored(app, "Edit me") == (chat_id, branch, count)
    # Save: a new user message beside the old one, with a new reply streamed under it.
    message_button(page, "sent", "edit").click()
    editor.fill("Edited, with *emphasis*")
    editor.press("Control+Enter")
    assert _next_reply(page).startswith(WORDS)
    expect(bubbles(page, "sent")).to_have_text(["Edited, with emphasis"])
    expect(message(page, "sent").locator(".lc-sibling-pos")).to_have_text("2 / 2")
    _, branch, count = _stored(app, "Edit me")
    assert branch == [("user", "Edited, with *emphasis*"), ("assistant", REPLY)]
    assert count == 4  # both questions and both replies are kept
    page.reload()
    expect(bubbles(page, "sent")).to_have_text(["Edited, with emphasis"])
    expect(message(page, "sent").locator(".lc-sibling-pos")).to_have_text("2 / 2")
    # The old question is one click away, with its own reply.
    message_button(page, "sent", "previous").click()
    expect(bubbles(page, "sent")).to_have_text(["Edit me"])
    expect(message(page, "sent").locator(".lc-sibling-pos")).to_have_text("1 / 2")
    assert _stored(app, "Edit me")[1][0] == ("user", "Edit me")


def test_regenerate_makes_versions_to_move_between_by_keyboard(
    page: Page, app: RunningApp, shots: Path
) -> None:
    _fresh_chat(page, "Say it again")
    first_id = message(page, "received").get_attribute("data-id")
    for n in (2, 3):
        message_button(page, "received", "regenerate").click()
        _next_reply(page)
        expect(message(page, "received").locator(".lc-sibling-pos")).to_have_text(f"{n} / {n}")
    ids = [first_id]
    with ChatStore.in_folder(app.data_dir) as store:
        chat_id = next(c.id for c in store.list_chats() if c.title == "Say it again")
        replies = [m for m in store.tree(chat_id) if m.role == "assistant"]
        assert [m.content for m in replies] == [REPLY] * 3
        ids = [str(m.id) for m in replies]
    assert ids[0] == first_id
    # Back and forth with the keyboard: the focus stays on the button pressed.
    previous = message_button(page, "received", "previous")
    previous.focus()
    for shown in (2, 1):
        page.keyboard.press("Enter")
        expect(message(page, "received").locator(".lc-sibling-pos")).to_have_text(f"{shown} / 3")
        expect(message(page, "received")).to_have_attribute("data-id", ids[shown - 1])
    expect(message_button(page, "received", "previous")).to_be_disabled()
    message_button(page, "received", "next").focus()
    page.keyboard.press("Enter")
    expect(message(page, "received").locator(".lc-sibling-pos")).to_have_text("2 / 3")
    expect(message_button(page, "received", "next")).to_be_focused()
    with ChatStore.in_folder(app.data_dir) as store:
        assert store.get_chat(chat_id).current_leaf_id == int(ids[1])  # stored
    page.reload()
    expect(message(page, "received").locator(".lc-sibling-pos")).to_have_text("2 / 3")
    page.screenshot(path=shots / "conversation-versions-dark.png")


def test_continue_after_stop_finishes_the_same_message(page: Page, app: RunningApp) -> None:
    page.locator("#new_chat").click()
    send_message(page, "Keep going")
    expect(live_reply(page)).to_contain_text(" w5", timeout=30_000)
    page.locator("#stop").click()
    stopped = wait_for_reply_end(page, marker="stopped")
    reply_id = message(page, "received").get_attribute("data-id")
    assert stopped.startswith("w0 w1") and CODE not in stopped
    expect(message_button(page, "received", "continue")).to_be_visible()
    message_button(page, "received", "continue").click()
    final = _next_reply(page)
    assert final.startswith(WORDS) and "stopped" not in final
    expect(bubbles(page, "received")).to_have_count(1)
    expect(message(page, "received")).to_have_attribute("data-id", reply_id)
    expect(message_button(page, "received", "continue")).to_have_count(0)
    _, branch, count = _stored(app, "Keep going")
    assert branch == [("user", "Keep going"), ("assistant", REPLY)] and count == 2


def test_delete_asks_then_removes_the_message_and_all_below(page: Page, app: RunningApp) -> None:
    _fresh_chat(page, "Delete below")
    send_message(page, "Second question")
    _next_reply(page)
    expect(bubbles(page, "sent")).to_have_count(2)
    message_button(page, "sent", "delete", 1).click()
    expect(message(page, "sent", 1)).to_contain_text("Delete this message and everything below it?")
    message_button(page, "sent", "delete-no", 1).click()
    expect(bubbles(page, "sent")).to_have_count(2)
    assert _stored(app, "Delete below")[2] == 4
    message_button(page, "sent", "delete", 1).click()
    message_button(page, "sent", "delete-yes", 1).click()
    expect(bubbles(page, "sent")).to_have_text(["Delete below"])
    _, branch, count = _stored(app, "Delete below")
    assert branch == [("user", "Delete below"), ("assistant", REPLY)] and count == 2


def test_search_finds_a_korean_word_in_a_chat_that_is_not_open(
    page: Page, app: RunningApp, shots: Path
) -> None:
    _fresh_chat(page, "서울은 한강이 아름다운 도시입니다")
    _fresh_chat(page, "Something else entirely")
    search = page.locator("#chat_search_input")
    search.fill("서울")  # a two-syllable word with a particle after it in the message
    hit = page.locator("#chat_search_results .lc-hit").first
    expect(hit.locator(".lc-hit-title")).to_have_text("서울은 한강이 아름다운 도시입니다")
    expect(hit.locator("mark").first).to_contain_text("서울")
    page.screenshot(path=shots / "conversation-search-dark.png")
    search.fill("<img src=x onerror=window.lcHit=1> 한강")
    expect(page.locator("#chat_search_results .lc-hit").first).to_be_visible()
    assert page.evaluate("window.lcHit") is None
    expect(page.locator("#chat_search_results img")).to_have_count(0)
    page.locator("#chat_search_results .lc-hit").first.click()
    expect(open_chat_row(page)).to_have_text("서울은 한강이 아름다운 도시입니다")
    expect(bubbles(page, "sent")).to_have_text(["서울은 한강이 아름다운 도시입니다"])
    search.fill("zzzqqq")
    expect(page.locator("#chat_search_results")).to_have_text("No chat has these words.")


def test_a_pinned_chat_stays_at_the_top(page: Page) -> None:
    _fresh_chat(page, "Pin this one")
    chat_menu(page, "Pin this one", "pin")
    _fresh_chat(page, "A newer chat")
    first = chat_list(page).first
    expect(first).to_have_text("Pin this one")
    expect(page.locator("#chat_list .lc-chat-group-title").first).to_have_text("Pinned")
    chat_row(page, "Pin this one").locator(".lc-chat-more").click()
    expect(chat_row(page, "Pin this one").locator("[data-act=pin]")).to_have_text("Unpin")
    chat_row(page, "Pin this one").locator("[data-act=pin]").click()  # back in its place
    expect(chat_list(page).first).to_have_text("A newer chat")
    expect(chat_list(page).nth(1)).to_have_text("Pin this one")


def test_the_context_used_is_shown_after_each_turn(page: Page, app: RunningApp) -> None:
    _fresh_chat(page, "Count my tokens")
    with ChatStore.in_folder(app.data_dir) as store:
        chat_id = next(c.id for c in store.list_chats() if c.title == "Count my tokens")
        reply = store.get_chat(chat_id).messages[-1]
    used = reply.prompt_tokens + reply.completion_tokens
    expect(page.locator("#context_used")).to_have_text(f"{used:,} / 1,024 tokens")
    send_message(page, "Again")
    _next_reply(page)
    expect(page.locator("#context_used")).not_to_have_text(f"{used:,} / 1,024 tokens")


def test_two_tabs_editing_one_chat_keep_both_branches(app: RunningApp, browser: Browser) -> None:
    first = open_page(browser, app.url)
    second = open_page(browser, app.url)
    try:
        _fresh_chat(first, "Shared question")
        second.reload()  # its chat list, made before the chat was
        for tab in (first, second):
            chat_list(tab).get_by_text("Shared question", exact=True).click()
            expect(bubbles(tab, "sent")).to_have_text(["Shared question"])
        for tab, text in ((first, "From the first tab"), (second, "From the second tab")):
            message_button(tab, "sent", "edit").click()
            tab.locator(".lc-editor").fill(text)
            message_button(tab, "sent", "save").click()
            _next_reply(tab)
            expect(bubbles(tab, "sent")).to_have_text([text])
        with ChatStore.in_folder(app.data_dir) as store:
            chat_id = next(c.id for c in store.list_chats() if c.title == "Shared question")
            users = [m.content for m in store.tree(chat_id) if m.role == "user"]
        assert users == ["Shared question", "From the first tab", "From the second tab"]
        for tab, text in ((first, "From the first tab"), (second, "From the second tab")):
            tab.reload()
            expect(bubbles(tab, "sent")).to_have_text([text])
            expect(message(tab, "sent").locator(".lc-sibling-pos")).to_contain_text("/ 3")
        # The first tab goes on in its own branch.
        send_message(first, "Follow-up in the first tab")
        _next_reply(first)
        expect(bubbles(first, "sent")).to_have_text(
            ["From the first tab", "Follow-up in the first tab"]
        )
    finally:
        first.close()
        second.close()


def test_actions_are_labelled_in_korean(tmp_path: Path, browser: Browser, app: RunningApp) -> None:
    config = CONFIG.replace('language = "en"', 'language = "ko"')
    with running_app(
        tmp_path / "ko", app.models_dir, config_toml=config, args=("--model", MODEL)
    ) as ko:
        page = open_page(browser, ko.url)
        try:
            send_message(page, "안녕하세요")
            wait_for_reply_end(page, marker="첫 토큰")
            expect(message_button(page, "received", "regenerate")).to_have_text("다시 생성")
            expect(message_button(page, "sent", "edit")).to_have_text("수정")
            expect(message_button(page, "received", "copy")).to_have_text("복사")
            expect(page.locator("#chat_search_input")).to_have_attribute("placeholder", "대화 검색")
            expect(bubbles(page, "received").last.locator(".lc-code-copy")).to_have_text(
                "코드 복사"
            )
        finally:
            page.close()


def test_actions_show_without_hover_on_a_phone(
    app: RunningApp, browser: Browser, shots: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    try:
        page.goto(app.url)
        page.wait_for_selector("#message")
        send_message(page, "On a phone")
        wait_for_reply_end(page)
        for act in ("copy", "regenerate", "delete"):
            expect(message_button(page, "received", act)).to_be_visible()
        width = page.evaluate("document.querySelector('.lc-thread').scrollWidth")
        assert width <= 390
        time.sleep(0.2)
        page.screenshot(path=shots / "conversation-phone-dark.png", full_page=True)
    finally:
        context.close()


def test_opening_a_long_chat_shows_its_latest_message(page: Page, app: RunningApp) -> None:
    with ChatStore.in_folder(app.data_dir) as store:
        chat_id = store.create_chat(title="A long one", model=MODEL)
        for i in range(30):
            store.add_message(chat_id, "user", f"Question {i}")
            store.add_message(chat_id, "assistant", f"Answer {i}\n\nwith a second paragraph")
    page.reload()
    open_chat(page, "A long one")
    expect(bubbles(page, "received").last).to_contain_text("Answer 29")
    expect(bubbles(page, "received").last).to_be_in_viewport()
    assert page.evaluate(
        "() => { const t = document.querySelector('.lc-thread');"
        " return t.scrollHeight > 2 * t.clientHeight"
        " && t.scrollHeight - t.scrollTop - t.clientHeight < 2; }"
    )
