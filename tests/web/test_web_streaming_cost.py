"""What a streaming reply costs the page (issue #23), asserted as behaviour, not CPU numbers:
the live text is drawn at most once an animation frame and at most about 10 times a second,
yet in visible steps; a hidden tab reads and draws nothing while the reply runs and shows the
whole reply once it is seen again (web/static/conversation.js; bench/chromium_cpu.py measures
the CPU).

Headless Chromium never hides a page, so the hidden tab is emulated before the app's scripts
run: `document.hidden` / `visibilityState` answer from a flag and a `visibilitychange` event
is sent when it changes, which is all the app's code looks at.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.browser import (
    RunningApp,
    bubbles,
    chat_input,
    live_reply,
    open_page,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model
from support.replies import CHATML_TEMPLATE

pytestmark = pytest.mark.timeout(180)

MODEL = "slow-scripted.gguf"
SCRIPT = [f" w{i}" for i in range(120)]
REPLY = "".join(SCRIPT).strip()
CONFIG = """
[app]
language = "en"

[inference]
n_ctx = 1024
n_threads = 1
max_tokens = 512
"""

# Before the app's scripts: the hidden-tab switch, and every drawing of the live reply's text
# (a childList change of its Markdown box) with the animation frame it landed in.
_PROBE = """
(() => {
  let hidden = false, frame = 0;
  const tick = () => { frame += 1; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  Object.defineProperty(document, 'visibilityState', {configurable: true,
    get: () => (hidden ? 'hidden' : 'visible')});
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
  const draws = window.__draws = [];
  new MutationObserver((records) => {
    const live = document.querySelector('#live_reply .lc-md');
    if (live && records.some((r) => r.target === live && r.type === 'childList')) {
      // The frame's own time (its start), not the moment this callback runs.
      draws.push({t: document.timeline.currentTime, frame, text: live.textContent});
    }
  }).observe(document, {subtree: true, childList: true});
})();
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    models = tmp_path_factory.mktemp("streaming-models")
    # Heavy enough per token that the 120-token reply streams for a few seconds.
    write_scripted_model(
        models / MODEL,
        SCRIPT,
        name="Slow Scripted",
        chat_template=CHATML_TEMPLATE,
        n_embd=1024,
        n_layer=12,
        n_ff=4096,
        dtype="f16",
    )
    work = tmp_path_factory.mktemp("streaming-app")
    with running_app(work, models, config_toml=CONFIG, args=("--model", MODEL)) as running:
        yield running


@pytest.fixture
def tab(app: RunningApp, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(_PROBE)
    page = open_page_in(context, app.url)
    yield page
    context.close()


def open_page_in(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(url)
    page.wait_for_selector("#navbar")
    return page


def _stats(page: Page) -> dict[str, int]:
    return page.evaluate("() => ({...window.LocalChatView.stats})")


def test_streamed_text_is_drawn_once_a_frame_at_most_ten_times_a_second(tab: Page) -> None:
    send_message(tab, "Write")
    expect(live_reply(tab)).to_have_count(1, timeout=30_000)
    assert wait_for_reply_end(tab, timeout_ms=90_000).startswith(REPLY)
    draws = tab.evaluate("window.__draws")
    texts = [d["text"] for d in draws if d["text"]]
    # Visible steps: the text grew on screen many times, each step a longer prefix.
    assert len(set(texts)) >= 5, draws
    assert all(REPLY.startswith(t.strip()) for t in texts), texts
    frames = [d["frame"] for d in draws]
    assert len(frames) == len(set(frames)), "two drawings of the live text in one frame"
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(draws)]
    # At most one drawing per 100 ms, counted from the frames' start times.
    assert min(gaps) >= 95, gaps
    stats = _stats(tab)
    assert stats["liveRenders"] <= stats["streamEvents"] + 1, stats


def test_a_hidden_tab_does_no_work_per_token_and_catches_up_when_shown(
    tab: Page, app: RunningApp, browser: Browser
) -> None:
    send_message(tab, "Write")
    # Some text on screen first: the tab was reading the stream.
    expect(live_reply(tab).locator(".lc-md")).to_contain_text("w3", timeout=30_000)
    tab.evaluate("window.__setHidden(true)")
    tab.wait_for_timeout(300)  # what was already on its way lands
    before = _stats(tab)
    drawn_before = tab.evaluate("window.__draws.length")
    # The reply runs on for seconds while the tab is hidden; its end reaches the page through
    # Taipy (the input enabled again), which the hidden tab still receives.
    expect(chat_input(tab)).to_be_enabled(timeout=90_000)
    tab.wait_for_timeout(500)
    after = _stats(tab)
    assert after == before, (before, after)  # no stream event read, nothing rendered
    assert tab.evaluate("window.__draws.length") == drawn_before
    assert not tab.locator("#live_reply .lc-md").inner_text().strip().startswith(REPLY)
    # Seen again, it shows the finished reply at once.
    tab.evaluate("window.__setHidden(false)")
    expect(bubbles(tab, "received").last).to_contain_text(REPLY, timeout=15_000)
    expect(live_reply(tab)).to_have_count(0)
    # A tab opened on the app meanwhile was never hidden and works as before.
    other = open_page(browser, app.url)
    try:
        expect(chat_input(other)).to_be_visible()
    finally:
        other.close()


def test_a_tab_hidden_and_shown_again_while_the_reply_runs_streams_on(tab: Page) -> None:
    send_message(tab, "Write")
    expect(live_reply(tab).locator(".lc-md")).to_contain_text("w3", timeout=30_000)
    tab.evaluate("window.__setHidden(true)")
    tab.wait_for_timeout(400)
    tab.evaluate("window.__setHidden(false)")
    # The stream is opened again: the reply keeps growing on screen before it ends.
    shown = tab.evaluate("window.__draws.length")
    tab.wait_for_function(f"() => window.__draws.length > {shown}", timeout=30_000)
    assert wait_for_reply_end(tab, timeout_ms=90_000).startswith(REPLY)


def test_an_idle_page_with_the_message_box_focused_draws_nothing(tab: Page) -> None:
    """No animation runs on an idle page, not even the caret's blink (each blink cost a
    style, layout and paint of the page)."""
    tab.bring_to_front()  # a caret blinks only in the focused window's page
    tab.focus("#message")
    tab.wait_for_timeout(300)
    cdp = tab.context.new_cdp_session(tab)
    cdp.send("Performance.enable")

    def layouts() -> float:
        got = cdp.send("Performance.getMetrics")["metrics"]
        return next(m["value"] for m in got if m["name"] == "LayoutCount")

    before = layouts()
    tab.wait_for_timeout(2_000)  # a blinking caret changes four times in this time
    assert layouts() == before
    assert tab.evaluate("document.getAnimations().length") == 0
    assert tab.evaluate("document.activeElement.id") == "message"
