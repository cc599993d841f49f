"""The chat bar's model picker in real Chromium (issue #20): it lists the models folder,
loads the chosen model from the chat page, and a load asked while another tab's reply is
being written waits for that reply instead of cutting it. At 1280×800 and 390×844.

With `[[backends]]` configured (a real `python -m llama_cpp.server` and an address where
nothing listens), the picker lists the server's models under its name, says the other
cannot be reached, and switches this tab's chat to the server's model and back.

The model settings panel sets the context length and threads of the model in use; Reload
loads it again with them, and llama.cpp's own figures show on the models page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import (
    RunningApp,
    bubbles,
    choose_option,
    free_port,
    go_to,
    live_reply,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model
from support.remote_server import llama_cpp_server
from support.replies import CHATML_TEMPLATE, REPLY

from llm.storage import ChatStore

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

SLOW = "slow.gguf"
SLOW_SCRIPT = [f" s{i}" for i in range(80)]
CONFIG = """
[app]
language = "en"

[inference]
n_ctx = 1024
n_threads = 1
max_tokens = 256
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    models = tmp_path_factory.mktemp("picker-models")
    write_scripted_model(models / "alpha.gguf", ["Alpha", " here"], chat_template=CHATML_TEMPLATE)
    write_scripted_model(models / "beta.gguf", ["Beta", " here"], chat_template=CHATML_TEMPLATE)
    # Each token costs real work: a reply takes seconds, long enough to load meanwhile.
    write_scripted_model(
        models / SLOW,
        SLOW_SCRIPT,
        chat_template=CHATML_TEMPLATE,
        n_embd=1024,
        n_layer=12,
        n_ff=4096,
        dtype="f16",
    )
    work = tmp_path_factory.mktemp("picker-app")
    with running_app(work, models, config_toml=CONFIG, args=("--model", "alpha.gguf")) as running:
        yield running


def _tab(browser: Browser, app: RunningApp, width: int, height: int) -> Page:
    phone = width < 900
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone
    )
    page = context.new_page()
    page.goto(app.url)
    page.wait_for_selector("#message")
    return page


def _pick(page: Page, name: str) -> None:
    choose_option(page, "model_pick", name)
    expect(page.locator("#model_line")).to_contain_text(name, timeout=60_000)
    expect(page.locator("#model_loading")).to_have_count(0, timeout=60_000)


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_the_picker_lists_the_folder_and_loads_the_chosen_model(
    app: RunningApp, browser: Browser, size: tuple[int, int], shots: Path
) -> None:
    page = _tab(browser, app, *size)
    try:
        picker = page.locator("#model_pick")
        expect(picker).to_be_in_viewport()
        picker.click()
        options = page.locator("[role=listbox] [role=option]")
        expect(options).to_have_count(3)
        assert sorted(options.evaluate_all("os => os.map(o => o.dataset.value)")) == [
            "alpha.gguf",
            "beta.gguf",
            SLOW,
        ]
        page.keyboard.press("Escape")
        target = (
            "beta.gguf"
            if page.locator("#model_line").inner_text().find("alpha") >= 0
            else ("alpha.gguf")
        )
        _pick(page, target)
        page.locator("#new_chat").click()
        send_message(page, "Who are you?")
        wait_for_reply_end(page)
        expect(bubbles(page, "received").last).to_contain_text(
            "Beta here" if target == "beta.gguf" else "Alpha here"
        )
        page.screenshot(path=shots / f"model-picker-{size[0]}.png")
    finally:
        page.context.close()


def test_a_load_waits_for_another_tabs_reply_and_never_cuts_it(
    app: RunningApp, browser: Browser, shots: Path
) -> None:
    writer = _tab(browser, app, 1280, 800)
    loader = _tab(browser, app, 1280, 800)
    try:
        _pick(writer, SLOW)
        writer.locator("#new_chat").click()
        send_message(writer, "Write slowly")
        expect(live_reply(writer)).to_contain_text("s3", timeout=60_000)  # it is being written
        choose_option(loader, "model_pick", "beta.gguf")
        # The loader says it is loading, and waits: the writer's reply goes on meanwhile.
        expect(loader.locator("#model_loading")).to_contain_text("Loading beta.gguf")
        loader.screenshot(path=shots / "model-picker-waiting.png")
        text = wait_for_reply_end(writer, timeout_ms=120_000)
        assert "".join(SLOW_SCRIPT).strip() in text  # the whole reply: not cut
        expect(loader.locator("#model_line")).to_contain_text("beta.gguf", timeout=60_000)
        with ChatStore.in_folder(app.data_dir) as store:
            chat = next(c for c in store.list_chats() if c.title == "Write slowly")
            reply = store.get_chat(chat.id).messages[-1]
        assert reply.content == "".join(SLOW_SCRIPT).strip()
    finally:
        writer.context.close()
        loader.context.close()


# --- the model settings panel -------------------------------------------------------------------
def test_context_and_threads_are_set_in_the_chat_page_and_applied_by_reload(
    app: RunningApp, browser: Browser, shots: Path
) -> None:
    page = _tab(browser, app, 1280, 800)
    try:
        _pick(page, "alpha.gguf")
        page.locator("#model_settings").click()  # the disclosure opens
        expect(page.locator("#ms_bounds")).to_contain_text("Context 256 to 4,096 tokens")
        ctx_field = page.locator("#ms_ctx")
        ctx_field.fill("99999")
        expect(page.locator("#ms_error")).to_contain_text(
            "The context length must be between 256 and 4096 tokens for this model"
        )
        ctx_field.fill("512")
        page.locator("#ms_threads").fill("1")
        expect(page.locator("#ms_memory")).to_contain_text("At 512 tokens: about")
        page.locator("#ms_save").click()
        expect(page.locator("#ms_note")).to_contain_text(
            "alpha.gguf loads with a context of 512 tokens, threads: 1"
        )
        page.screenshot(path=shots / "model-settings-1280.png")
        page.locator("#ms_reload").click()
        expect(page.locator("#model_loading")).to_have_count(0, timeout=60_000)
        expect(page.locator("#ms_reload")).to_have_count(0, timeout=30_000)
        go_to(page, "Models")
        # llama.cpp's own figures, from the worker process
        expect(page.locator("#loaded_line")).to_contain_text(
            "alpha.gguf (context 512 tokens, threads: 1)", timeout=30_000
        )
        choose_option(page, "model_select", "alpha.gguf")  # the tab may show another
        page.locator("#model_settings").click()  # the same panel, beside Load
        expect(page.locator("#ms_ctx")).to_have_value("512")
        page.locator("#ms_reset").click()
        expect(page.locator("#ms_note")).to_contain_text("config.toml's defaults")
        expect(page.locator("#ms_ctx")).to_have_value("1024")
        page.locator("#load_model").click()  # Load applies the defaults again
        expect(page.locator("#loaded_line")).to_contain_text(
            "alpha.gguf (context 1024 tokens, threads: 1)", timeout=60_000
        )
    finally:
        page.context.close()


# --- servers in the picker ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def remote_app(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("picker-remote")
    local = tmp_path_factory.mktemp("picker-remote-models")
    write_scripted_model(local / "alpha.gguf", ["Alpha", " here"], chat_template=CHATML_TEMPLATE)
    with llama_cpp_server(
        models_dir / "chatml-scripted.gguf", "scripted", folder / "server.log"
    ) as server:
        config = f"""{CONFIG}
[[backends]]
name = "lab"
base_url = "{server.base_url}"

[[backends]]
name = "gone"
base_url = "http://127.0.0.1:{free_port()}/v1"
"""
        with running_app(
            folder, local, config_toml=config, args=("--model", "alpha.gguf")
        ) as running:
            yield running


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_the_picker_lists_the_servers_models_and_switches_this_tabs_chat(
    remote_app: RunningApp, browser: Browser, size: tuple[int, int], shots: Path
) -> None:
    page = _tab(browser, remote_app, *size)
    try:
        # The server that cannot be reached is said at once; the local model stays.
        expect(page.locator("#backends_line")).to_contain_text(
            "Can't be reached: gone. Local models still work.", timeout=10_000
        )
        page.locator("#model_pick").click()
        options = page.locator("[role=listbox] [role=option]")
        expect(options).to_have_text(
            ["This computer", "alpha.gguf", "lab", "scripted", "gone: can't be reached"],
            ignore_case=True,
        )
        assert options.evaluate_all("os => os.map(o => o.dataset.value)") == [
            "#group:local",
            "alpha.gguf",
            "#group:lab",
            "lab/scripted",
            "#group:gone",
        ]
        page.screenshot(path=shots / f"model-picker-servers-{size[0]}.png")
        page.keyboard.press("Escape")

        title = f"Local first ({size[0]})"
        page.locator("#new_chat").click()
        send_message(page, title)
        assert wait_for_reply_end(page).startswith("Alpha here")
        # The same chat goes on with the server's model.
        choose_option(page, "model_pick", "lab/scripted")
        expect(page.locator("#model_line")).to_contain_text("scripted on lab", timeout=30_000)
        send_message(page, "Now the server")
        expect(bubbles(page, "received")).to_have_count(2, timeout=30_000)
        assert wait_for_reply_end(page).startswith(REPLY)
        with ChatStore.in_folder(remote_app.data_dir) as store:
            chat = next(c for c in store.list_chats() if c.title == title)
            stored = store.get_chat(chat.id)
        assert (stored.backend, stored.model) == ("lab", "scripted")
        assert [m.model for m in stored.messages if m.role == "assistant"] == [
            "alpha.gguf",
            "scripted",
        ]
        # And back to the local model.
        choose_option(page, "model_pick", "alpha.gguf")
        expect(page.locator("#model_line")).to_contain_text("alpha.gguf", timeout=30_000)
        send_message(page, "Local again")
        expect(bubbles(page, "received")).to_have_count(3, timeout=30_000)
        assert wait_for_reply_end(page).startswith("Alpha here")
    finally:
        page.context.close()
