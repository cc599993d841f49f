"""Access: loopback by default; any other address needs a token, and with a token every page,
file and the live (Socket.IO) connection require it. Real app process, real HTTP, Chromium."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.browser import (
    RunningApp,
    chromium,
    run_main,
    running_app,
    screenshots_dir,
    send_message,
    wait_for_reply_end,
)
from support.replies import REPLY

from web.access import is_loopback

TOKEN = "correct-horse-battery-staple"


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.5", "::", "example.org"]))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5"])
def test_refuses_to_listen_beyond_loopback_without_a_token(
    host: str, project_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**project_env, "LOCALCHAT_DATA_DIR": str(tmp_path)}
    env.pop("LOCALCHAT_ACCESS_TOKEN", None)
    result = run_main(["--host", host, "--port", "5999"], env, tmp_path)
    assert result.returncode == 2
    assert f"listening on {host} makes LocalChat reachable from other machines" in result.stderr
    assert "LOCALCHAT_ACCESS_TOKEN" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def guarded(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("guarded-models")
    shutil.copy(models_dir / "tinyllama-scripted.gguf", folder)
    config = f'[app]\naccess_token = "{TOKEN}"\n[inference]\nmax_tokens = 64\n'
    work = tmp_path_factory.mktemp("guarded-app")
    with running_app(
        work, folder, config_toml=config, args=("--model", "tinyllama-scripted.gguf")
    ) as app:
        yield app


def status(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_every_route_needs_the_token(guarded: RunningApp) -> None:
    for path in (
        "",
        "chat",
        "models",
        "main.css",
        "socket.io/?EIO=4&transport=polling",
        "taipy-jsx/taipy.gui.js",
        "lc-live/some-reply-key",
        "lc-view/some-view-key",
        "lc-view/some-view-key/search?q=a",
        "lc-static/conversation.js",
    ):
        assert status(guarded.url + path) == 401, path
    action = b'{"action": "regenerate", "message_id": 1}'
    assert status(guarded.url + "lc-view/some-view-key/action", data=action) == 401
    wrong = urllib.parse.urlencode({"token": "guess"}).encode()
    assert status(guarded.url + "localchat-login", data=wrong) == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert status(guarded.url, headers=bearer) == 200
    assert status(guarded.url + "socket.io/?EIO=4&transport=polling", headers=bearer) == 200
    # Past the token, a reply stream and a conversation view need their random key too.
    assert status(guarded.url + "lc-live/some-reply-key", headers=bearer) == 404
    assert status(guarded.url + "lc-view/some-view-key", headers=bearer) == 404
    assert status(guarded.url, headers={"Cookie": "localchat_access=forged"}) == 401


def test_login_form_then_chat(guarded: RunningApp, request: pytest.FixtureRequest) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(guarded.url)
        assert "needs its access token" in page.content()
        page.locator("#token").fill("wrong-token-123")
        page.locator("#login").click()
        page.get_by_text("Wrong token.").wait_for(timeout=10_000)
        page.locator("#token").fill(TOKEN)
        page.locator("#login").click()
        page.wait_for_selector("#navbar")  # the app itself, connected over Socket.IO
        send_message(page, "What is the capital of France?")
        wait_for_reply_end(page)
        assert REPLY in page.content()
        page.screenshot(path=str(screenshots_dir(request) / "access-chat.png"))
        page.close()
