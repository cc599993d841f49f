"""The chat page's layout in real Chromium at 1280×800 and 390×844 (issue #20): a centred
conversation column, code blocks that scroll inside themselves, bubble text readable in both
themes (WCAG AA), a message input that grows with its text, and on a phone the conversation
and input filling the screen with the chat list and settings in drawers.

One app per module with a scripted model whose reply ends in a code block with a
200-character line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import (
    TOO_WIDE,
    RunningApp,
    bubbles,
    chat_input,
    chat_list,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model
from support.replies import CHATML_TEMPLATE

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

MODEL = "layout-scripted.gguf"
# Ten distinct 20-character pieces: one 200-character code line.
LONG_LINE = [f"v{i}_" + "abcdefghijklmnopq"[: 20 - len(f"v{i}_")] for i in range(10)]
SCRIPT = ["Here", " is", " the", " line", ":", "\n\n```text\n", *LONG_LINE, "\n```"]
CONFIG = """
[app]
language = "en"

[inference]
n_ctx = 1024
n_threads = 1
max_tokens = 256
"""
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
COLUMN_PX = 48 * 16  # the conversation column's widest (48rem)

# The WCAG contrast ratio of an element's text on the first opaque-enough background under it.
_CONTRAST = """(e) => {
    const rgba = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    const over = (top, under) => {
        const a = top.length > 3 ? top[3] : 1;
        return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a));
    };
    let background = [255, 255, 255];
    const layers = [];
    for (let p = e; p; p = p.parentElement) layers.push(rgba(getComputedStyle(p).backgroundColor));
    for (const layer of layers.reverse()) if (layer.length) background = over(layer, background);
    const text = over(rgba(getComputedStyle(e).color), background);
    const lum = (c) => {
        const [r, g, b] = c.map((v) => {
            v /= 255;
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const [hi, lo] = [lum(text), lum(background)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    models = tmp_path_factory.mktemp("layout-models")
    write_scripted_model(
        models / MODEL, SCRIPT, name="Layout Scripted", chat_template=CHATML_TEMPLATE
    )
    work = tmp_path_factory.mktemp("layout-app")
    with running_app(work, models, config_toml=CONFIG, args=("--model", MODEL)) as running:
        yield running


def _tab(browser: Browser, app: RunningApp, viewport: dict, *, phone: bool = False) -> Page:
    context = browser.new_context(viewport=viewport, has_touch=phone, is_mobile=phone)
    page = context.new_page()
    page.goto(app.url)
    page.wait_for_selector("#message")
    return page


def _ask_for_the_long_line(page: Page) -> None:
    page.locator("#new_chat").click()
    expect(bubbles(page, "sent")).to_have_count(0)
    send_message(page, "Show me a long line")
    wait_for_reply_end(page)
    expect(bubbles(page, "received").last.locator(".lc-code code")).to_contain_text(LONG_LINE[-1])


def _set_theme(page: Page, theme: str) -> None:
    page.locator(f"#theme_toggle button[value={theme}]").click()
    expect(page.locator(f".taipy-{theme}").first).to_be_attached()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_long_code_line_scrolls_inside_its_block_and_widens_nothing(
    app: RunningApp, browser: Browser, viewport: dict, shots: Path
) -> None:
    page = _tab(browser, app, viewport, phone=viewport is PHONE)
    try:
        _ask_for_the_long_line(page)
        name = "desktop" if viewport is DESKTOP else "phone"
        page.screenshot(path=shots / f"layout-code-{name}.png")
        assert page.evaluate(TOO_WIDE) == []
        assert page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        thread = page.locator(".lc-thread")
        assert thread.evaluate("e => e.scrollWidth <= e.clientWidth")  # the chat pane
        code = bubbles(page, "received").last.locator(".lc-code code")
        assert code.evaluate("e => e.scrollWidth > e.clientWidth + 100")  # it scrolls itself
        assert code.evaluate("e => e.getBoundingClientRect().right") <= viewport["width"]
    finally:
        page.context.close()


def test_messages_sit_in_a_centred_column_of_comfortable_width(
    app: RunningApp, browser: Browser
) -> None:
    page = _tab(browser, app, {"width": 1920, "height": 1000})
    try:
        _ask_for_the_long_line(page)
        thread = page.locator(".lc-thread").bounding_box()
        user = bubbles(page, "sent").last.bounding_box()
        reply = page.locator("#conversation .lc-msg-assistant").last.bounding_box()
        assert thread and user and reply
        left, right = reply["x"], user["x"] + user["width"]
        assert right - left <= COLUMN_PX + 1
        assert right - left >= COLUMN_PX * 0.8  # a long reply uses the column
        gaps = (left - thread["x"], thread["x"] + thread["width"] - right)
        assert min(gaps) > 40 and abs(gaps[0] - gaps[1]) <= 24, gaps  # centred
    finally:
        page.context.close()


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_bubble_text_meets_wcag_aa_in_both_themes(
    app: RunningApp, browser: Browser, theme: str, shots: Path
) -> None:
    page = _tab(browser, app, DESKTOP)
    try:
        _set_theme(page, theme)
        _ask_for_the_long_line(page)
        for kind in ("sent", "received"):
            bubble = bubbles(page, kind).last
            ratio = bubble.evaluate(_CONTRAST)
            assert ratio >= 4.5, (kind, theme, ratio)
            # the figures line under a reply, fainter, still readable
        footer = bubbles(page, "received").last.locator(".lc-msg-footer")
        assert footer.evaluate(_CONTRAST) >= 4.5
        # The dark code block does not sit on a saturated colour: the reply's bubble is grey.
        colour = bubbles(page, "received").last.evaluate("e => getComputedStyle(e).backgroundColor")
        r, g, b = (float(v) for v in re.findall(r"[\d.]+", colour)[:3])
        assert max(r, g, b) - min(r, g, b) <= 40, colour
        page.screenshot(path=shots / f"layout-bubbles-{theme}.png")
    finally:
        page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_message_input_grows_with_its_lines_up_to_about_ten(
    app: RunningApp, browser: Browser, viewport: dict
) -> None:
    page = _tab(browser, app, viewport, phone=viewport is PHONE)
    try:
        box = chat_input(page)
        one = box.bounding_box()["height"]
        box.fill("\n".join(f"line {i}" for i in range(5)))
        page.wait_for_function(
            "h => document.querySelector('#message').getBoundingClientRect().height > h * 3",
            arg=one,
            timeout=5_000,
        )
        five = box.bounding_box()["height"]
        assert five >= one * 3.5, (one, five)
        assert box.evaluate("e => e.scrollHeight <= e.clientHeight + 1")  # all five shown
        box.fill("\n".join(f"line {i}" for i in range(30)))
        page.wait_for_timeout(200)
        thirty = box.bounding_box()["height"]
        assert five < thirty <= one * 12, (one, thirty)  # about ten lines, then it scrolls
        assert box.evaluate("e => e.scrollHeight > e.clientHeight")
        # Still at the bottom of the screen, whole.
        bottom = box.bounding_box()
        assert bottom["y"] + bottom["height"] <= viewport["height"]
        box.fill("")
        page.wait_for_timeout(200)
        assert box.bounding_box()["height"] <= one + 1  # and shrinks back
    finally:
        page.context.close()


def _in_view(page: Page, selector: str) -> bool:
    """Whether the whole of the element is inside the viewport as the page is scrolled now."""
    return page.locator(selector).evaluate(
        "e => { const r = e.getBoundingClientRect();"
        " return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight + 1"
        " && r.right <= innerWidth + 1; }"
    )


def test_on_a_phone_the_conversation_and_input_fill_the_screen(
    app: RunningApp, browser: Browser, shots: Path
) -> None:
    page = _tab(browser, app, PHONE, phone=True)
    try:
        _ask_for_the_long_line(page)
        page.wait_for_timeout(300)  # the thread's scroll to its end
        # Nothing to scroll on the page itself: the last message and the input are on screen.
        assert page.evaluate(
            "() => document.documentElement.scrollHeight <= innerHeight + 1 && scrollY === 0"
        )
        assert _in_view(page, "#message")
        assert _in_view(page, "#conversation .lc-msg-assistant:last-child .lc-bubble")
        thread = page.locator(".lc-thread").bounding_box()
        assert thread and thread["height"] >= PHONE["height"] * 0.5  # the conversation first
        # The chat list and the settings are closed drawers, out of sight and of the tab order.
        for drawer in ("#chats_drawer", "#settings_drawer"):
            expect(page.locator(drawer)).not_to_be_in_viewport()
            assert page.locator(drawer).evaluate("e => getComputedStyle(e).visibility") == (
                "hidden"
            )
        page.screenshot(path=shots / "layout-phone-dark.png")
    finally:
        page.context.close()


def test_on_a_phone_the_chat_list_and_settings_are_drawers_reached_by_keyboard(
    app: RunningApp, browser: Browser, shots: Path
) -> None:
    page = _tab(browser, app, PHONE, phone=True)
    try:
        expect(page.locator("#chat_search_input")).to_be_attached()  # the list's search, drawn
        page.wait_for_timeout(300)  # the page settled (a re-drawn field loses the focus)
        for button, drawer in (
            ("#open_chats", "#chats_drawer"),
            ("#open_settings", "#settings_drawer"),
        ):
            opener = page.locator(button)
            expect(opener).to_be_visible()
            expect(opener).to_have_attribute("aria-expanded", "false")
            opener.focus()
            page.keyboard.press("Enter")
            expect(page.locator(drawer)).to_be_in_viewport(ratio=0.99)
            expect(opener).to_have_attribute("aria-expanded", "true")
            page.wait_for_function(
                "d => document.querySelector(d).contains(document.activeElement)",
                arg=drawer,
                timeout=5_000,
            )
            assert page.evaluate(TOO_WIDE) == []
            page.screenshot(path=shots / f"layout-phone-drawer-{drawer[1:]}.png")
            page.keyboard.press("Escape")
            expect(page.locator(drawer)).not_to_be_in_viewport()
            expect(opener).to_be_focused()
        # A tap beside an open drawer closes it; choosing a chat in the list shows that chat.
        page.locator("#open_chats").click()
        expect(page.locator("#chats_drawer")).to_be_in_viewport(ratio=0.99)
        page.mouse.click(380, 500)
        expect(page.locator("#chats_drawer")).not_to_be_in_viewport()
        _ask_for_the_long_line(page)
        page.locator("#open_chats").click()
        chat_list(page).first.click()
        expect(page.locator("#chats_drawer")).not_to_be_in_viewport()
        expect(bubbles(page, "received").last).to_be_in_viewport()
    finally:
        page.context.close()


def test_the_drawer_buttons_are_labelled_in_korean_and_hidden_on_a_wide_screen(
    app: RunningApp, browser: Browser
) -> None:
    page = _tab(browser, app, PHONE, phone=True)
    try:
        page.locator("#language_switch").click()
        expect(page.locator("#open_chats")).to_have_text("대화")
        expect(page.locator("#open_settings")).to_have_text("설정")
        page.locator("#language_switch").click()
        expect(page.locator("#open_chats")).to_have_text("Chats")
    finally:
        page.context.close()
    page = _tab(browser, app, DESKTOP)
    try:
        expect(page.locator("#open_chats")).to_be_hidden()
        expect(page.locator("#open_settings")).to_be_hidden()
        expect(page.locator("#chats_drawer")).to_be_in_viewport()
        expect(page.locator("#settings_drawer")).to_be_in_viewport()
    finally:
        page.context.close()
