"""Take the user guide's chat page screenshots (docs/images/chat*.png): the starter model
(SmolLM2-135M-Instruct, from the tests' cache or a path given) answering two questions, at
1280×800 and 390×844, dark and light, the phone's chat list drawer, and the chat list with a
chat's menu open (docs/images/chat-list.png), beside a few example chats stored at earlier
dates.

    .venv/bin/python scripts/docs_screenshots.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Uses the tests' helpers (a real app on a free 127.0.0.1 port, Debian's Chromium).
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from playwright.sync_api import expect  # noqa: E402
from support.browser import (  # noqa: E402
    bubbles,
    chat_list,
    chat_row,
    chromium,
    live_reply,
    running_app,
    send_message,
    wait_for_reply_end,
)

STARTER = Path.home() / ".cache/localchat-tests/SmolLM2-135M-Instruct.Q4_1.gguf"
CONFIG = '[app]\nlanguage = "en"\n\n[inference]\ntemperature = 0.0\n'
QUESTIONS = ("What is the capital of France?", "Write a Python function that adds two numbers.")
OUT = ROOT / "docs/images"
# Earlier chats for the list: (title, days ago, pinned).
EXAMPLES = (
    ("Packing list for Jeju", 40, True),
    ("Explain Python decorators", 1, False),
    ("Weekly meal plan", 3, False),
    ("Summarize the meeting notes", 12, False),
    ("A birthday poem for Mina", 50, False),
)


def store_examples(data_dir: Path) -> None:
    """The example chats, last used some days ago (the store stamps them now)."""
    from llm.storage import ChatStore

    now = datetime.now(timezone.utc)
    times = {}
    with ChatStore.in_folder(data_dir) as store:
        for title, days, pinned in EXAMPLES:
            chat_id = store.create_chat(title=title)
            store.add_message(chat_id, "user", title)
            store.add_message(chat_id, "assistant", "(an example reply)")
            store.set_pinned(chat_id, pinned)
            times[chat_id] = (now - timedelta(days=days)).isoformat(timespec="milliseconds")
    db = sqlite3.connect(data_dir / "localchat.db")
    with db:
        db.executemany(
            "UPDATE chats SET updated = ? WHERE id = ?", [(t, i) for i, t in times.items()]
        )
    db.close()


def main() -> None:
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else STARTER
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        shutil.copy(model, models / model.name)
        with (
            running_app(
                Path(tmp) / "app", models, config_toml=CONFIG, args=("--model", model.name)
            ) as app,
            chromium() as browser,
        ):
            store_examples(app.data_dir)
            for name, viewport in (("chat", (1280, 800)), ("chat-phone", (390, 844))):
                width, height = viewport
                context = browser.new_context(
                    viewport={"width": width, "height": height},
                    is_mobile=width < 900,
                    has_touch=width < 900,
                )
                page = context.new_page()
                page.goto(app.url)
                page.wait_for_selector("#message")
                if name == "chat":
                    for done, question in enumerate(QUESTIONS, start=1):
                        send_message(page, question)
                        expect(bubbles(page, "received")).to_have_count(done, timeout=60_000)
                        expect(live_reply(page)).to_have_count(0, timeout=120_000)
                        wait_for_reply_end(page, timeout_ms=120_000)
                    # The list with a chat's menu open (desktop, dark).
                    row = chat_row(page, "Weekly meal plan")
                    row.locator(".lc-chat-more").click()
                    time.sleep(0.3)
                    page.screenshot(
                        path=OUT / "chat-list.png",
                        clip={"x": 0, "y": 80, "width": 640, "height": 560},
                    )
                    page.keyboard.press("Escape")
                else:  # the same chat, opened from the list's drawer
                    page.locator("#open_chats").click()
                    time.sleep(0.5)
                    page.screenshot(path=OUT / "chat-phone-chats.png")
                    chat_list(page).filter(has_text=QUESTIONS[0]).click()
                    page.wait_for_selector("#conversation .lc-msg-assistant")
                for theme in ("dark", "light"):
                    page.locator(f"#theme_toggle button[value={theme}]").click()
                    time.sleep(0.6)
                    suffix = "" if theme == "dark" else "-light"
                    page.screenshot(path=OUT / f"{name}{suffix}.png")
                    page.locator("#theme_toggle button[value=dark]").click()
                context.close()


if __name__ == "__main__":
    main()
