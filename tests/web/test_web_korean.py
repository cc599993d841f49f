"""The Korean UI (`language = "ko"`), light mode from config, and starting without a model.

One app process for the module, started with a default model that is not in the folder:
it must start anyway, say so in its log, and the chat page must point to the models page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from support.browser import (
    RunningApp,
    bubbles,
    go_to,
    load_model,
    notifications,
    running_app,
    screenshots_dir,
    send_message,
    wait_for_reply_end,
)
from support.replies import REPLY

from pages.i18n import LANGUAGES, labels

pytestmark = pytest.mark.timeout(120)

KO = labels("ko")
MODEL = "tinyllama-scripted.gguf"
CONFIG = """
[app]
title = "로컬챗"
language = "ko"
dark_mode = false

[models]
default = "gone.gguf"

[inference]
n_ctx = 1024
n_threads = 1
"""


def test_every_label_exists_in_every_language() -> None:
    english = labels("en")
    for language in LANGUAGES:
        translated = labels(language)
        assert set(translated) == set(english), language
        for key, text in translated.items():
            assert text.strip(), (language, key)
            # Same placeholders, or str.format fails in one language only.
            # (Their order may differ: Korean often names the object first.)
            assert sorted(re.findall(r"\{(\w+)", text)) == sorted(
                re.findall(r"\{(\w+)", english[key])
            ), (language, key)
    assert sum(KO[k] != english[k] for k in english) > len(english) * 0.9


@pytest.fixture(scope="module")
def app(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("web-app-ko")
    with running_app(work, models_dir, config_toml=CONFIG) as running:
        yield running


def test_a_missing_default_model_is_reported_and_the_app_starts(
    app: RunningApp, page: Page, request: pytest.FixtureRequest
) -> None:
    assert "warning: default model not loaded: model not found: 'gone.gguf'" in app.log()
    expect(page).to_have_title("로컬챗")
    expect(page.locator(".taipy-light").first).to_be_attached()  # dark_mode = false
    expect(page.locator("#navbar")).to_contain_text(KO["nav_chat"])
    expect(page.locator("#navbar")).to_contain_text(KO["nav_models"])
    expect(page.locator("#model_line")).to_have_text(KO["no_model"])
    expect(page.locator("#stop")).to_have_text(KO["stop"])
    expect(page.locator("#new_chat")).to_have_text(KO["new_chat"])
    expect(page.get_by_label(KO["message_hint"])).to_be_visible()
    page.screenshot(path=screenshots_dir(request) / "chat-no-model-ko.png")
    # Sending without a model says why and adds nothing.
    send_message(page, "안녕하세요")
    expect(page.locator("#chat_error")).to_have_text(KO["err_no_model"])
    expect(bubbles(page, "sent")).to_have_count(0)
    page.locator("#open_models").click()
    expect(page).to_have_url(re.compile(r"/models$"))


def test_korean_pages_load_a_model_and_chat(page: Page, request: pytest.FixtureRequest) -> None:
    shots = screenshots_dir(request)
    go_to(page, KO["nav_models"])
    expect(page.locator("#models_folder")).to_contain_text("모델 폴더")
    expect(page.locator("#rescan")).to_have_text(KO["rescan"])
    table = page.locator("#model_table")
    for key in ("col_file", "col_name", "col_size", "col_format", "col_status"):
        expect(table.locator("th", has_text=KO[key]).first).to_be_visible()
    expect(page.locator("#loaded_line")).to_have_text(KO["current_none"])
    load_model(page, MODEL, models_tab=KO["nav_models"])
    loaded = KO["loaded"].format(model=MODEL)
    expect(notifications(page).filter(has_text=loaded)).to_be_visible(timeout=60_000)
    expect(page.locator("#prompt_preview")).to_contain_text(KO["sample_question"])
    page.screenshot(path=shots / "models-ko.png", full_page=True)
    go_to(page, KO["nav_chat"])
    expect(page.locator("#model_line")).to_contain_text("채팅 형식 zephyr")
    send_message(page, "프랑스의 수도는 어디인가요?")
    text = wait_for_reply_end(page, marker="초당")
    assert text.startswith(REPLY)
    assert re.search(r"첫 토큰 \d+\.\d\d초 · 토큰 7개 · 초당 \d+\.\d 토큰", text), text
    page.screenshot(path=shots / "chat-ko.png")
