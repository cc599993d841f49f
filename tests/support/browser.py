"""Helpers for the end-to-end web tests: the app as a real subprocess, Chromium via Playwright.

`running_app()` starts `python main.py` on a free 127.0.0.1 port with its own config file,
models folder and data folder, waits (bounded) until it answers HTTP, and stops it afterwards.
`chromium()` launches Debian's Chromium. The page helpers below drive the chat and models
pages the way a user does (typing, clicking), and wait with deadlines, never sleeps alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from . import PROJECT_DIR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Chromium's own calls to Google (form-field classification), not the page's: the test
    # that no page asks another site for anything counts every request that leaves.
    "--disable-features=AutofillServerCommunication",
]
START_TIMEOUT_S = 60
VIEWPORT = {"width": 1280, "height": 800}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    """A started app: its base URL, process, folders and log file."""

    url: str
    process: subprocess.Popen[bytes]
    models_dir: Path
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _wait_until_serving(app: RunningApp) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise RuntimeError(f"the app exited with {app.process.returncode}:\n{app.log()}")
        try:
            with urllib.request.urlopen(app.url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            if error.code == 401:  # serving, behind its access token
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the app did not answer within {START_TIMEOUT_S} s:\n{app.log()}")


def run_main(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """`python main.py ARGS` to its end (for start-up errors and --help), output as text."""
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "main.py"), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextlib.contextmanager
def running_app(
    work_dir: Path,
    models_dir: Path,
    *,
    config_toml: str = "",
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[RunningApp]:
    """Run main.py until the block ends. `config_toml` is the app's whole config file; `env`
    adds environment variables."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "config.toml"
    config_path.write_text(config_toml, encoding="utf-8")
    data_dir = work_dir / "data"
    log_path = work_dir / "app.log"
    port = free_port()
    extra_env = env
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(PROJECT_DIR),
        LOCALCHAT_CONFIG=str(config_path),
        LOCALCHAT_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    env.pop("LOCALCHAT_MODELS_DIR", None)
    env.update(extra_env or {})
    command = [
        sys.executable,
        str(PROJECT_DIR / "main.py"),
        "--port",
        str(port),
        "--models-dir",
        str(models_dir),
        *args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=work_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    app = RunningApp(f"http://127.0.0.1:{port}/", process, models_dir, data_dir, log_path)
    try:
        _wait_until_serving(app)
        yield app
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


_announced: set[Path] = set()


def screenshots_dir(request: pytest.FixtureRequest) -> Path:
    """The run's screenshots folder (created once, its path printed in the test output):
    `LOCALCHAT_SCREENSHOTS_DIR` if set (e.g. for CI artifacts), else one in pytest's temp."""
    factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    chosen = os.environ.get("LOCALCHAT_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    if folder not in _announced:
        _announced.add(folder)
        # Printed past pytest's output capture, so it shows in every run.
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\nweb test screenshots: {folder}", flush=True)
    return folder


# Page helpers ------------------------------------------------------------------------------


# Blocks of the app's Content-Security-Policy expected on every load: Taipy's Lato font from
# Google and MathJax from cdnjs (web/local_only.py). Anything else it blocks is a defect.
# (Playwright's wait_for_function must be given a function: a polled expression uses eval.)
_EXPECTED_BLOCKS = ("https://fonts.googleapis.com/", "https://cdnjs.cloudflare.com/")
_violations: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def policy_violations(page: Page) -> list[str]:
    """The console's Content-Security-Policy messages in `page` (opened by `open_page`) about
    anything but the expected blocks."""
    return _violations.get(page, [])


# Every element's box, except what scrolls inside a code block or another scroll box and what
# is hidden (a closed drawer): those wider than the viewport (or reaching past its right edge),
# as "tag#id.class left..right".
TOO_WIDE = """() => {
    const limit = document.documentElement.clientWidth + 1;
    const scrolled = (e) => {
        for (let p = e.parentElement; p; p = p.parentElement) {
            const s = getComputedStyle(p);
            if (['auto', 'scroll', 'hidden'].includes(s.overflowX) && p !== document.body
                && p !== document.documentElement) return true;
        }
        return false;
    };
    const out = [];
    for (const e of document.body.querySelectorAll('*')) {
        const r = e.getBoundingClientRect();
        if (r.width === 0 || scrolled(e) || getComputedStyle(e).visibility === 'hidden') continue;
        if (r.width > limit || r.right > limit)
            out.push(`${e.tagName}#${e.id}.${e.className} ${r.left}..${r.right}`);
    }
    return out;
}"""


def open_page(browser: Browser, url: str) -> Page:
    """A new tab (own Taipy client) showing `url`, with the app connected."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(15_000)
    seen = _violations.setdefault(page, [])

    def note(message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text and not any(u in text for u in _EXPECTED_BLOCKS):
            seen.append(text)

    page.on("console", note)
    page.goto(url)
    page.wait_for_selector("#navbar")
    return page


def chat_input(page: Page):  # -> Locator
    return page.locator("#message")


def live_reply(page: Page):  # -> Locator: the reply being written
    return page.locator("#live_reply")


def bubbles(page: Page, kind: str):  # kind: "sent" (user) or "received" (assistant)
    """The message bubbles of the conversation (web/static/conversation.js): text and, for a
    reply, its figures line; not the message's buttons."""
    role = {"sent": "user", "received": "assistant"}[kind]
    return page.locator(f"#conversation .lc-msg-{role} .lc-bubble")


def message(page: Page, kind: str, index: int = -1):  # -> Locator of a whole message
    """A message of the conversation (bubble and buttons); `index` among its kind."""
    role = {"sent": "user", "received": "assistant"}[kind]
    found = page.locator(f"#conversation .lc-msg-{role}")
    return found.last if index == -1 else found.nth(index)


def message_button(page: Page, kind: str, act: str, index: int = -1):  # -> Locator
    """A message's button: act is copy, edit, regenerate, continue, delete, previous, next,
    save, cancel, delete-yes, delete-no."""
    return message(page, kind, index).locator(f"[data-act='{act}']")


def send_message(page: Page, text: str) -> None:
    """Type `text` in the message input and press Enter."""
    box = chat_input(page)
    expect(box).to_be_enabled()
    box.fill(text)
    box.press("Enter")


def wait_for_reply_end(page: Page, timeout_ms: int = 30_000, marker: str = "first token") -> str:
    """Wait until the last assistant bubble shows its figures line (which holds `marker`);
    return the bubble text."""
    last = bubbles(page, "received").last
    expect(last).to_contain_text(marker, timeout=timeout_ms)
    expect(chat_input(page)).to_be_enabled()
    return last.inner_text()


def notifications(page: Page):  # -> Locator of the notification texts
    return page.locator("#notistack-snackbar")


def record_reply_texts(page: Page) -> None:
    """Record every text the reply being written shows (the Markdown it renders, not its
    status line), with the time it appeared
    (`reply_samples` reads them)."""
    page.evaluate(
        """() => {
        window.lcSamples = [];
        new MutationObserver(() => {
            const live = document.querySelector('#live_reply .lc-md');
            if (!live) return;
            const text = live.dataset.source || '';  // the Markdown it shows, as written
            const s = window.lcSamples;
            if (!s.length || s[s.length - 1].text !== text)
                s.push({at: performance.now(), text: text});
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }"""
    )


def reply_samples(page: Page) -> list[dict]:
    """The texts `record_reply_texts` saw, in order: {"at": ms, "text": ...}."""
    return page.evaluate("window.lcSamples")


def go_to(page: Page, name: str) -> None:
    """Click a navbar tab ("Chat"/"Models" or their translations)."""
    page.locator("#navbar").get_by_role("tab", name=name).click()


def choose_option(page: Page, selector_id: str, value: str) -> None:
    """Pick `value` in a Taipy dropdown selector."""
    page.locator(f"#{selector_id}").click()
    page.locator(f"[role=listbox] [role=option][data-value='{value}']").click()
    expect(page.locator("[role=listbox]")).to_have_count(0)


def load_model(page: Page, file_name: str, *, models_tab: str = "Models") -> None:
    """On the models page: select `file_name` and press Load (the caller waits for the end)."""
    if not page.url.endswith("/models"):
        go_to(page, models_tab)
    choose_option(page, "model_select", file_name)
    page.locator("#load_model").click()


def chat_list(page: Page):  # -> Locator of the chat list's rows
    """The chat list's chats (web/static/chat-list.js): one button per chat, its accessible
    name and text the chat's title (its "⋯" menu button is beside it, not in it)."""
    return page.locator("#chat_list .lc-chat-title")


def chat_row(page: Page, title: str):  # -> Locator of one chat's whole row (title and menu)
    return page.locator("#chat_list .lc-chat-row").filter(
        has=page.locator(".lc-chat-title", has_text=re.compile(f"^{re.escape(title)}$"))
    )


def open_chat_row(page: Page):  # -> Locator: the open chat's title in the list
    return page.locator("#chat_list .lc-chat-title[aria-current=page]")


def chat_menu(page: Page, title: str, item: str) -> None:
    """Choose `item` (rename, pin, export-md, export-json, delete) in the chat's "⋯" menu."""
    row = chat_row(page, title)
    row.locator(".lc-chat-more").click()
    row.locator(f"[role=menuitem][data-act='{item}']").click()


def list_notice(page: Page):  # -> Locator: what the last chat list action came to
    return page.locator("#chat_notice .lc-notice")


def open_chat(page: Page, title: str) -> None:
    """Open the stored chat titled `title` from the chat list."""
    chat_list(page).filter(has_text=re.compile(f"^{re.escape(title)}$")).first.click()
    expect(open_chat_row(page)).to_have_text(title)
