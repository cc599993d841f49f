"""The language switch, the generation settings and errors in words, in real Chromium.

One app process (English by default, a scripted model with SmolLM2's template loaded,
HF_ENDPOINT at a closed local port: the Hub cannot be reached). The language switch changes
every label and the words of an error without a restart and survives a reload; a setting
typed and sent at once is the one the message uses; the Hub out of reach is said plainly
within 3 s.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import (
    VIEWPORT,
    RunningApp,
    chat_input,
    go_to,
    open_page,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model
from support.hub_server import HubServer
from support.replies import SCRIPT, SMOLLM2_SYSTEM, SMOLLM2_TEMPLATE

from llm.storage import ChatStore
from pages.i18n import labels

pytestmark = pytest.mark.timeout(120)

EN, KO = labels("en"), labels("ko")
SMOL = "smol-scripted.gguf"  # a scripted model with SmolLM2's template
CONFIG = """
[app]
language = "en"
dark_mode = true

[inference]
n_ctx = 1024
n_threads = 1
"""
# Labels the chat page and the header show as text (the input hints are placeholders).
SHOWN = (
    "nav_chat",
    "nav_models",
    "stop",
    "new_chat",
    "chats",
    "settings",
    "settings_apply",
    "temperature",
    "min_p",
    "seed",
    "help_temperature",
    "help_min_p",
    "help_seed",
    "default_prompt_save",
    "prompt_examples",
    "import_json",
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("web-language")
    models_dir = tmp_path_factory.mktemp("language-models")
    write_scripted_model(models_dir / SMOL, SCRIPT, name="Smol", chat_template=SMOLLM2_TEMPLATE)
    closed = HubServer().start()
    endpoint = closed.endpoint
    closed.stop()  # nothing listens there: the Hub cannot be reached
    env = {"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"}
    with running_app(
        work, models_dir, config_toml=CONFIG, args=("--model", SMOL), env=env
    ) as running:
        yield running


def _open_settings(page: Page) -> None:
    page.locator("#settings").get_by_role("button").first.click()
    expect(page.locator("#temperature")).to_be_visible()


def _body(page: Page) -> str:
    return page.locator("body").inner_text()


def test_the_language_switch_changes_every_label_and_error_and_is_remembered(
    app: RunningApp, browser: Browser, shots: Path
) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(app.url)
    page.wait_for_selector("#navbar")
    pid = app.process.pid
    try:
        _open_settings(page)
        for key in SHOWN:
            expect(page.locator("body")).to_contain_text(EN[key])
        expect(page.locator("#language_switch")).to_have_text("한국어")
        # The system prompt the model's template adds when the chat has none is shown.
        expect(page.locator("#prompt_hint")).to_have_text(
            EN["template_prompt"].format(prompt=SMOLLM2_SYSTEM)
        )
        # An out-of-range setting is said under the settings in plain words.
        page.locator("#temperature").fill("9")
        expect(page.locator("#settings_error")).to_have_text("Temperature must be between 0 and 5")

        started = time.monotonic()
        page.locator("#language_switch").click()
        expect(page.locator("#language_switch")).to_have_text("English")
        expect(page.locator("#navbar")).to_contain_text(KO["nav_chat"])
        switch_s = time.monotonic() - started
        _open_settings(page)
        text = _body(page)
        expect(page.locator("#prompt_hint")).to_have_text(
            KO["template_prompt"].format(prompt=SMOLLM2_SYSTEM)
        )
        for key in SHOWN:
            assert KO[key] in text, key
            if EN[key] != KO[key]:  # (Min-p is Min-p in both)
                assert not re.search(rf"\b{re.escape(EN[key])}\b", text), key
        # The same tab, the same app process: the bad value is still there, said in Korean.
        expect(page.locator("#temperature")).to_have_value(re.compile(r"^9(\.0)?$"))
        page.locator("#temperature").fill("9.5")
        expect(page.locator("#settings_error")).to_have_text("온도 값은 0에서 5 사이여야 합니다")
        send_message(page, "안녕하세요")
        expect(page.locator("#chat_error")).to_have_text("온도 값은 0에서 5 사이여야 합니다")
        expect(chat_input(page)).to_have_value("안녕하세요")  # nothing was sent or lost
        page.screenshot(path=shots / "language-ko-error.png")
        # The line under the box for an over-long paste is in Korean too.
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.evaluate("() => navigator.clipboard.writeText('x'.repeat(1000001))")
        chat_input(page).fill("")
        chat_input(page).press("Control+V")
        expect(page.locator("#message_limit")).to_have_text(
            "메시지가 너무 깁니다: 1,000,001자가 되며, 메시지는 최대 1,000,000자까지 쓸 수 있습니다"
        )

        page.reload()  # remembered by this browser
        page.wait_for_selector("#navbar")
        expect(page.locator("#navbar")).to_contain_text(KO["nav_models"])
        expect(page.locator("#stop")).to_have_text(KO["stop"])
        assert app.process.pid == pid and app.process.poll() is None  # no restart

        fresh = browser.new_context(viewport=VIEWPORT).new_page()  # another browser
        fresh.goto(app.url)
        fresh.wait_for_selector("#navbar")
        expect(fresh.locator("#stop")).to_have_text(EN["stop"])  # config.toml's language
        fresh.context.close()

        page.locator("#language_switch").click()  # and back
        expect(page.locator("#stop")).to_have_text(EN["stop"])
        print(f"language switch to the page in Korean: {switch_s:.2f} s")
    finally:
        context.close()


def test_a_setting_typed_then_sent_at_once_is_used(app: RunningApp, browser: Browser) -> None:
    page = open_page(browser, app.url)
    try:
        expect(page.locator("#model_line")).to_contain_text(SMOL)
        _open_settings(page)
        for attempt, (temperature, seed) in enumerate([(0.25, 1234), (1.5, 98765), (0.0, 7)]):
            if attempt:
                page.locator("#new_chat").click()
                expect(chat_input(page)).to_have_value("")
            # No pause between the fields and Enter: the message must use these values.
            page.locator("#temperature").fill(str(temperature))
            page.locator("#seed").fill(str(seed))
            chat_input(page).fill(f"settings {attempt}")
            chat_input(page).press("Enter")
            wait_for_reply_end(page)
            with ChatStore.in_folder(app.data_dir) as store:
                chat = next(c for c in store.list_chats() if c.title == f"settings {attempt}")
                settings = store.get_chat(chat.id).settings
            assert settings["temperature"] == temperature, (attempt, settings)
            assert settings["seed"] == seed, (attempt, settings)
        expect(page.locator("#chat_error")).to_have_count(0)
    finally:
        page.close()


def test_the_hub_out_of_reach_is_said_plainly_within_3_s(app: RunningApp, page: Page) -> None:
    go_to(page, "Models")
    for query in ("qwen", "Qwen/Qwen2.5-0.5B-Instruct-GGUF"):  # a search, a repository's files
        page.locator("#hub_query").fill(query)
        started = time.monotonic()
        page.locator("#hub_query").press("Enter")
        expect(page.locator("#hub_error")).to_have_text(
            "Hugging Face can't be reached — local models still work", timeout=3_000
        )
        assert time.monotonic() - started < 3.0
        page.locator("#hub_query").fill("")
    assert "Retrying" not in app.log()
