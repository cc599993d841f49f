"""The web app with a remote backend, in Chromium: a real `python -m llama_cpp.server` on
127.0.0.1 serving two scripted models behind an API key, configured as `[[backends]]`.

The models page lists the server's models and makes one answer new chats; replies stream, Stop
keeps the partial reply, the backend and model are stored with the chat, and a reopened chat
continues on its own backend (in the page and with `python -m llm ask --chat`). An unreachable
server and a refused key are shown as one clear line.

The same app (to share its start-up) checks the models page's other choice about where a model
runs: a model file bigger than the free RAM is refused with both numbers, and loads when the
user ticks the override.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Page, expect
from support.browser import (
    RunningApp,
    bubbles,
    choose_option,
    free_port,
    go_to,
    live_reply,
    notifications,
    open_chat,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.commands import run_llm
from support.gguf_factory import write_scripted_model
from support.remote_server import Server, llama_cpp_server
from support.replies import REPLY

from llm.storage import ChatStore

FAST = "tinyllama-scripted.gguf"  # the local model
HUGE = "huge-padded.gguf"  # FAST with a sparse tail: bigger than the free RAM
KEY = "web-remote-key-81d2"
KEY_ENV = "LOCALCHAT_TEST_LAB_KEY"
WRONG_KEY_ENV = "LOCALCHAT_TEST_WRONG_KEY"
LONG_SCRIPT = [f" w{i}" for i in range(300)]


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Serves "scripted" (replies REPLY) and "long" (300 tokens at about 100 tokens/s)."""
    folder = tmp_path_factory.mktemp("lab")
    long_model = folder / "long-scripted.gguf"
    write_scripted_model(long_model, LONG_SCRIPT, name="Long", n_embd=512, n_layer=8, n_ff=1024)
    with llama_cpp_server(
        models_dir / "chatml-scripted.gguf",
        "scripted",
        folder / "server.log",
        api_key=KEY,
        more_models=[(long_model, "long")],
        interrupt_requests=False,
    ) as running:
        yield running


def _config(server: Server) -> str:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    return f"""
[inference]
n_ctx = 1024
n_threads = 1

[[backends]]
name = "lab"
base_url = "{server.base_url}"
api_key_env = "{KEY_ENV}"

[[backends]]
name = "badkey"
base_url = "{server.base_url}"
api_key_env = "{WRONG_KEY_ENV}"

[[backends]]
name = "down"
base_url = "{closed}"
"""


@pytest.fixture(scope="module")
def app_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-remote-models")
    shutil.copyfile(models_dir / FAST, folder / FAST)
    shutil.copyfile(models_dir / FAST, folder / HUGE)
    # A hole, not data: the file takes no disk space and llama.cpp maps it (reading zeros
    # from the hole takes seconds), but its size is what the RAM check counts as weights.
    os.truncate(folder / HUGE, psutil.virtual_memory().available + 2 * 1024**3)
    return folder


@pytest.fixture(scope="module")
def app(
    server: Server, app_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("web-remote")
    with pytest.MonkeyPatch.context() as env:  # the app inherits the keys
        env.setenv(KEY_ENV, KEY)
        env.setenv(WRONG_KEY_ENV, "not-the-key")
        with running_app(
            work, app_models, config_toml=_config(server), args=("--model", FAST)
        ) as running:
            yield running


def _use_remote(page: Page, backend: str, model: str) -> None:
    """On the models page: choose `backend`, then `model` from its list, then Use."""
    go_to(page, "Models")
    choose_option(page, "backend_select", backend)
    expect(page.locator("#use_remote")).to_be_enabled(timeout=30_000)  # the list arrived
    choose_option(page, "remote_model", model)
    page.locator("#use_remote").click()
    expect(page.locator("#active_line")).to_contain_text(f"{model} on {backend}", timeout=30_000)
    go_to(page, "Chat")
    expect(page.locator("#model_line")).to_contain_text(f"{model} on {backend}")


def _chats(app: RunningApp) -> dict[str, object]:
    with ChatStore.in_folder(app.data_dir) as store:
        return {c.title: store.get_chat(c.id) for c in store.list_chats()}


def test_a_server_model_answers_and_its_chat_continues_there(
    app: RunningApp, page: Page, project_env: dict[str, str]
) -> None:
    go_to(page, "Models")
    expect(page.locator("#active_line")).to_contain_text(f"{FAST} on this computer")
    choose_option(page, "backend_select", "lab")
    page.locator("#remote_model").click()  # the server's own list
    options = page.locator("[role=listbox] [role=option]")
    expect(options).to_have_text(["scripted", "long"])
    page.keyboard.press("Escape")
    _use_remote(page, "lab", "scripted")

    send_message(page, "Remote question")
    assert wait_for_reply_end(page).startswith(REPLY)
    chat = _chats(app)["Remote question"]
    assert (chat.backend, chat.model) == ("lab", "scripted")
    assert [m.status for m in chat.messages] == ["complete", "complete"]
    assert chat.messages[1].content == REPLY

    # Back to llama.cpp here: new chats use it; the stored chat stays on its server.
    go_to(page, "Models")
    choose_option(page, "backend_select", "local")
    expect(page.locator("#active_line")).to_contain_text(f"{FAST} on this computer")
    go_to(page, "Chat")
    page.locator("#new_chat").click()
    expect(page.locator("#model_line")).to_contain_text(FAST)
    send_message(page, "Local question")
    wait_for_reply_end(page)
    open_chat(page, "Remote question")
    expect(page.locator("#model_line")).to_contain_text("scripted on lab")
    send_message(page, "Second remote question")
    expect(bubbles(page, "received")).to_have_count(2, timeout=30_000)
    wait_for_reply_end(page)
    chats = _chats(app)
    assert (chats["Local question"].backend, chats["Local question"].model) == ("local", FAST)
    remote = chats["Remote question"]
    assert [m.model for m in remote.messages if m.role == "assistant"] == ["scripted"] * 2

    # The command line continues it on the same server too.
    env = {**project_env, KEY_ENV: KEY, "LOCALCHAT_DATA_DIR": str(app.data_dir)}
    env["LOCALCHAT_CONFIG"] = str(app.data_dir.parent / "config.toml")  # the app's
    done = run_llm("ask", "--chat", str(remote.id), "Third", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == REPLY
    assert len(_chats(app)["Remote question"].messages) == 6


def test_stop_keeps_the_partial_reply_of_a_server(app: RunningApp, page: Page) -> None:
    _use_remote(page, "lab", "long")
    send_message(page, "Count for me")
    expect(live_reply(page)).to_contain_text(" w20", timeout=60_000)
    page.locator("#stop").click()
    text = wait_for_reply_end(page, marker="stopped")
    assert text.startswith("w0 w1 w2")
    reply = _chats(app)["Count for me"].messages[1]
    assert reply.status == "stopped"
    assert "w20" in reply.content and "w299" not in reply.content
    assert "".join(LONG_SCRIPT).lstrip().startswith(reply.content.lstrip())
    # A server cannot continue the reply: no Continue button, the reason in its place.
    last = page.locator("#conversation .lc-msg-assistant").last
    expect(last.locator(".lc-continue-refused")).to_contain_text(
        "Continue is not offered here: continuing a reply works with models run by LocalChat"
    )
    expect(last.locator("[data-act='continue']")).to_have_count(0)
    expect(last.locator("[data-act='regenerate']")).to_be_enabled()


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("down", "cannot reach backend 'down'"),
        ("badkey", f"refused the API key from ${WRONG_KEY_ENV}"),
    ],
)
def test_server_errors_are_one_clear_line(page: Page, backend: str, expected: str) -> None:
    go_to(page, "Models")
    before = page.locator("#active_line").inner_text()
    choose_option(page, "backend_select", backend)
    expect(page.locator("#remote_error")).to_contain_text(expected, timeout=30_000)
    expect(page.locator("#use_remote")).to_be_disabled()
    expect(page.locator("#active_line")).to_have_text(before)  # nothing changed
    expect(notifications(page)).to_have_count(0)


def test_a_model_bigger_than_free_ram_loads_only_when_the_user_says_so(page: Page) -> None:
    go_to(page, "Models")
    choose_option(page, "model_select", HUGE)
    page.locator("#load_model").click()
    error = page.locator("#load_error")
    needs = re.compile(rf"{HUGE} needs about [\d.]+ GB of RAM .* but only [\d.]+ GB is available")
    expect(error).to_contain_text(needs, timeout=30_000)
    expect(page.locator("#loaded_line")).not_to_contain_text(HUGE)  # the old model stays
    toggle = page.locator("#ignore_memory input")
    toggle.dispatch_event("click")  # the error's notification may lie over it
    expect(toggle).to_be_checked()
    expect(error).to_be_hidden()  # the app has the override: the error it answers goes
    page.locator("#load_model").click()
    # Loaded, or an error that says why not (a failure here once gave no clue). llama.cpp's
    # read-ahead of the hole (the size of the free RAM) takes 15 s here idle, far more when busy.
    outcome = page.locator(f"#loaded_line:has-text('{HUGE}'), #load_error")
    try:
        expect(outcome.first).to_be_visible(timeout=120_000)
    except AssertionError as exc:
        said = notifications(page).all_inner_texts()
        raise AssertionError(f"neither loaded nor an error; notifications: {said}") from exc
    assert not error.is_visible(), error.inner_text()
    go_to(page, "Chat")
    send_message(page, "Hello")
    assert wait_for_reply_end(page).startswith(REPLY)
