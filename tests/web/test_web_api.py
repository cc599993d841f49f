"""A browser tab and an API client on one app (`main.py --api`): they share the model and the
worker's first-come-first-served queue, so whichever sends first is answered first and the
other waits its turn (the tab says so), in both orders. Chromium and the `openai` client
against the running app; a scripted model whose 1,000-token reply lasts about a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import openai
import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import (
    RunningApp,
    bubbles,
    live_reply,
    open_page,
    running_app,
    send_message,
)
from support.gguf_factory import write_scripted_model

pytestmark = pytest.mark.timeout(240)

SCRIPT = [f" w{i}" for i in range(1000)]
MODEL = "thousand-scripted.gguf"
CONFIG = """
[inference]
n_ctx = 2048
n_threads = 1
max_tokens = 1024
[api]
enabled = true
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("web-api")
    models = work / "models"
    models.mkdir()
    write_scripted_model(models / MODEL, SCRIPT, name="Thousand", n_embd=1024, n_ff=128)
    with running_app(work, models, config_toml=CONFIG, args=("--model", MODEL)) as running:
        yield running


@pytest.fixture
def tab(app: RunningApp, browser: Browser) -> Iterator[Page]:
    page = open_page(browser, app.url)
    # Wall-clock times (the test's time.time()) of every text the reply being written shows.
    page.evaluate(
        """() => {
        window.lcTimes = [];
        new MutationObserver(() => {
            // The reply's text as rendered (not its status line under it), while it is written
            // and once finished (its last words may first show in the finished message).
            const all = document.querySelectorAll('#conversation .lc-msg-assistant .lc-md');
            const live = all.length ? all[all.length - 1] : null;
            const text = live ? live.innerText.trim() : '';
            const s = window.lcTimes;
            if (!s.length || s[s.length - 1].text !== text)
                s.push({at: (performance.timeOrigin + performance.now()) / 1000, text: text});
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }"""
    )
    yield page
    page.close()


class _ApiClient(threading.Thread):
    """Streams one reply through /v1 and notes when its first and last text came."""

    def __init__(self, app: RunningApp) -> None:
        super().__init__(daemon=True)
        self.client = openai.OpenAI(base_url=f"{app.url}v1", api_key="x", max_retries=0)
        self.first = self.last = 0.0
        self.started = threading.Event()
        self.text = ""

    def run(self) -> None:
        stream = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Go"}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                self.first = self.first or time.time()
                self.started.set()
                self.last = time.time()
                self.text += chunk.choices[0].delta.content


def _reply_times(page: Page) -> tuple[float, float]:
    """When the tab's reply showed its first and its last text."""
    samples = [s for s in page.evaluate("window.lcTimes") if s["text"].startswith("w0")]
    return samples[0]["at"], next(s["at"] for s in samples if s["text"].endswith("w999"))


def _wait_for_tab_reply(page: Page) -> None:
    expect(bubbles(page, "received").last).to_contain_text("w999", timeout=60_000)


def test_the_api_client_first_then_the_tab(app: RunningApp, tab: Page) -> None:
    api = _ApiClient(app)
    api.start()
    assert api.started.wait(30)
    send_message(tab, "Go")
    # The tab waits behind the API's reply, and says so.
    expect(live_reply(tab)).to_contain_text("waiting — 1 ahead", timeout=5_000)
    api.join(60)
    assert api.text == "".join(SCRIPT).lstrip()
    _wait_for_tab_reply(tab)
    first, _ = _reply_times(tab)
    assert api.last <= first < api.last + 3.0  # after the API's reply, and promptly


def test_the_tab_first_then_the_api_client(app: RunningApp, tab: Page) -> None:
    send_message(tab, "Go")
    expect(live_reply(tab)).to_contain_text("w0", timeout=30_000)  # the tab's reply runs
    sent = time.time()
    api = _ApiClient(app)
    api.start()
    _wait_for_tab_reply(tab)
    api.join(60)
    assert api.text == "".join(SCRIPT).lstrip()
    _, last = _reply_times(tab)
    # The tab's reply still ran well after the API client sent: else the order proves nothing.
    assert last - sent > 0.5
    # The API's first token came after the tab's last (which the tab shows up to 0.1 s late,
    # more on a busy machine), then at once:
    assert last <= api.first + 0.3
    assert api.first < last + 3.0
