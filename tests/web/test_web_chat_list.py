"""The chat list in real Chromium over a real app and SQLite file (web/static/chat-list.js,
pages/chat_list.py): date groups in the browser's time zone, each chat's menu (rename in the
row, pin, export, delete) on a chat that is not the open one, by mouse and by keyboard,
import said in the list, the phone's drawer, another tab's list kept up to date, a failed
fetch tried again, and 1,000 chats drawn without freezing the page.

Chats are stored straight into the app's database with controlled `updated` times; the
expected group of each is worked out here from the same rule, in the browser's zone.
"""

from __future__ import annotations

import calendar
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from datetime import time as day_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import (
    TOO_WIDE,
    RunningApp,
    bubbles,
    chat_list,
    chat_menu,
    chat_row,
    list_notice,
    notifications,
    open_chat,
    open_chat_row,
    open_page,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model
from support.replies import CHATML_TEMPLATE, REPLY, SCRIPT

from llm.storage import ChatStore

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

MODEL = "list-scripted.gguf"
CONFIG = """
[app]
language = "en"

[inference]
n_ctx = 1024
n_threads = 1
max_tokens = 64
"""
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# What the list shows, group by group: [(heading, [titles])].
GROUPS_JS = """() => [...document.querySelectorAll('#chat_list .lc-chat-group')].map(
    (g) => [g.querySelector('.lc-chat-group-title').textContent,
            [...g.querySelectorAll('.lc-chat-title')].map((b) => b.textContent)])"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    models = tmp_path_factory.mktemp("list-models")
    write_scripted_model(
        models / MODEL, SCRIPT, name="List Scripted", chat_template=CHATML_TEMPLATE
    )
    work = tmp_path_factory.mktemp("list-app")
    with running_app(work, models, config_toml=CONFIG, args=("--model", MODEL)) as running:
        yield running


def _store_chat(
    app: RunningApp, title: str, updated: datetime | None = None, *, pinned: bool = False
) -> int:
    """A chat with one exchange, last active at `updated` (now if None)."""
    with ChatStore.in_folder(app.data_dir) as store:
        chat_id = store.create_chat(title=title, model=MODEL)
        store.add_message(chat_id, "user", f"Question of {title}")
        store.add_message(chat_id, "assistant", f"Answer of {title}")
        if pinned:
            store.set_pinned(chat_id, True)
    if updated is not None:
        _set_updated(app.data_dir, {chat_id: updated})
    return chat_id


def _set_updated(data_dir: Path, times: dict[int, datetime]) -> None:
    db = sqlite3.connect(data_dir / "localchat.db")
    try:
        db.executemany(
            "UPDATE chats SET updated = ? WHERE id = ?",
            [(t.isoformat(timespec="milliseconds"), i) for i, t in times.items()],
        )
        db.commit()
    finally:
        db.close()


def _stored(app: RunningApp) -> dict[int, tuple[str, bool, int]]:
    with ChatStore.in_folder(app.data_dir) as store:
        return {c.id: (c.title, c.pinned, c.message_count) for c in store.list_chats()}


def _expected_group(updated: datetime, now: datetime, zone: ZoneInfo, *, pinned: bool) -> str:
    """The rule of chat-list.js, in `zone`: calendar days back from the local today."""
    if pinned:
        return "Pinned"
    today = now.astimezone(zone).date()
    for name, days in (
        ("Today", 0),
        ("Yesterday", 1),
        ("Previous 7 days", 7),
        ("Previous 30 days", 30),
    ):
        if updated >= datetime.combine(today - timedelta(days=days), day_time(), zone):
            return name
    local = updated.astimezone(zone)
    return f"{calendar.month_name[local.month]} {local.year}"


def _tab(browser: Browser, app: RunningApp, *, zone: str = "UTC", phone: bool = False) -> Page:
    context = browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        timezone_id=zone,
        is_mobile=phone,
        has_touch=phone,
        accept_downloads=True,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(app.url)
    page.wait_for_selector("#message")
    return page


def _groups(page: Page) -> list[tuple[str, list[str]]]:
    return [(heading, titles) for heading, titles in page.evaluate(GROUPS_JS)]


def test_chats_are_grouped_by_last_activity_in_the_browser_s_time_zone(
    app: RunningApp, browser: Browser, shots: Path
) -> None:
    now = datetime.now(timezone.utc)
    made = {
        "Grouped pinned": (now - timedelta(days=200), True),
        **{f"Grouped {h} hours": (now - timedelta(hours=h), False) for h in range(1, 48, 4)},
        "Grouped 4 days": (now - timedelta(days=4), False),
        "Grouped 12 days": (now - timedelta(days=12), False),
        "Grouped 45 days": (now - timedelta(days=45), False),
        "Grouped 400 days": (now - timedelta(days=400), False),
    }
    for title, (updated, pinned) in made.items():
        _store_chat(app, title, updated, pinned=pinned)
    seen: dict[str, dict[str, str]] = {}
    # 25 hours apart: the same chat is "Today" in one and "Yesterday" in the other.
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        page = _tab(browser, app, zone=zone)
        try:
            expect(chat_list(page).filter(has_text="Grouped 400 days")).to_have_count(1)
            groups = _groups(page)
            where = {title: heading for heading, titles in groups for title in titles}
            seen[zone] = {title: where[title] for title in made}
            expected = {
                title: _expected_group(updated, now, ZoneInfo(zone), pinned=pinned)
                for title, (updated, pinned) in made.items()
            }
            assert seen[zone] == expected, zone
            # Groups in order: Pinned, the named ones, then the months, newest first; the
            # chats in each by last activity (the newest first).
            headings = [heading for heading, _ in groups]
            assert headings[0] == "Pinned"
            named = [h for h in headings if h in ("Today", "Yesterday", "Previous 7 days")]
            assert named == sorted(named, key=["Today", "Yesterday", "Previous 7 days"].index)
            assert len(headings) == len(set(headings))  # each group once
            hours = [t for _, titles in groups for t in titles if t.endswith(" hours")]
            assert hours == sorted(hours, key=lambda t: int(t.split()[1]))
            if zone == "Pacific/Kiritimati":
                page.screenshot(path=shots / "chat-list-groups-dark.png")
        finally:
            page.context.close()
    assert seen["Pacific/Kiritimati"] != seen["Pacific/Pago_Pago"]
    # In Korean: the groups' names and the months' (the browser's own month names).
    page = _tab(browser, app, zone="Asia/Seoul")
    try:
        page.locator("#language_switch").click()
        expect(page.locator("#chat_list .lc-chat-group-title").first).to_have_text("고정됨")
        headings = [heading for heading, _ in _groups(page)]
        old = (now - timedelta(days=400)).astimezone(ZoneInfo("Asia/Seoul"))
        assert f"{old.year}년 {old.month}월" in headings
        # Which of them have chats depends on the hour in Seoul: worked out by the same rule.
        seoul = {
            _expected_group(updated, now, ZoneInfo("Asia/Seoul"), pinned=pinned)
            for updated, pinned in made.values()
        }
        korean = {"Today": "오늘", "Yesterday": "어제", "Previous 7 days": "지난 7일"}
        assert {korean[g] for g in seoul if g in korean} <= set(headings)
        assert "Yesterday" in seoul  # 1 to 47 hours ago: some chat is yesterday in any zone
        page.locator("#language_switch").click()  # back to English for the other tests
        expect(page.locator("#chat_list .lc-chat-group-title").first).to_have_text("Pinned")
    finally:
        page.context.close()


def test_the_menu_renames_pins_exports_and_deletes_a_chat_that_is_not_open(
    app: RunningApp, browser: Browser, shots: Path, tmp_path: Path
) -> None:
    other_id = _store_chat(app, "Menu target")
    page = _tab(browser, app)
    watcher = open_page(browser, app.url)  # another tab: its list follows every change
    try:
        send_message(page, "The open chat of the menu test")
        wait_for_reply_end(page)
        expect(open_chat_row(page)).to_have_text("The open chat of the menu test")
        expect(chat_list(watcher).filter(has_text="The open chat of the menu test")).to_have_count(
            1
        )
        # Rename in the row: Escape cancels, Enter saves.
        chat_menu(page, "Menu target", "rename")
        box = page.locator("#chat_list .lc-rename")
        expect(box).to_be_focused()
        expect(box).to_have_value("Menu target")
        box.fill("Never saved")
        box.press("Escape")
        expect(box).to_have_count(0)
        expect(chat_row(page, "Menu target")).to_have_count(1)
        assert _stored(app)[other_id][0] == "Menu target"
        chat_menu(page, "Menu target", "rename")
        box.fill("Trip plans")
        box.press("Enter")
        expect(chat_row(page, "Trip plans")).to_have_count(1)
        expect(list_notice(page)).to_contain_text("Renamed to “Trip plans”")
        assert _stored(app)[other_id][0] == "Trip plans"
        expect(chat_row(watcher, "Trip plans")).to_have_count(1)
        # The open chat stayed open.
        expect(open_chat_row(page)).to_have_text("The open chat of the menu test")
        expect(bubbles(page, "sent")).to_have_text(["The open chat of the menu test"])
        # Pin: first, in "Pinned"; the menu then offers Unpin.
        chat_menu(page, "Trip plans", "pin")
        expect(page.locator("#chat_list .lc-chat-group").first).to_contain_text("Pinned")
        expect(chat_list(page).first).to_have_text("Trip plans")
        assert _stored(app)[other_id][1] is True
        chat_row(page, "Trip plans").locator(".lc-chat-more").click()
        expect(chat_row(page, "Trip plans").locator("[data-act=pin]")).to_have_text("Unpin")
        page.screenshot(path=shots / "chat-list-menu-dark.png")
        page.keyboard.press("Escape")
        # Export: that chat's files, not the open one's.
        with page.expect_download() as md:
            chat_menu(page, "Trip plans", "export-md")
        assert md.value.suggested_filename == f"chat-{other_id}-Trip-plans.md"
        markdown = Path(md.value.path()).read_text(encoding="utf-8")
        assert markdown.startswith("# Trip plans\n")
        assert "Question of Menu target" in markdown and "Answer of Menu target" in markdown
        assert "The open chat of the menu test" not in markdown
        expect(list_notice(page)).to_contain_text(f"Exported “Trip plans” as chat-{other_id}")
        with page.expect_download() as js:
            chat_menu(page, "Trip plans", "export-json")
        exported = json.loads(Path(js.value.path()).read_text(encoding="utf-8"))
        assert exported["chat"]["title"] == "Trip plans"
        assert [m["content"] for m in exported["chat"]["messages"]] == [
            "Question of Menu target",
            "Answer of Menu target",
        ]
        # Delete asks first, in the row: Keep keeps, Delete deletes.
        chat_menu(page, "Trip plans", "delete")
        question = page.locator("#chat_list .lc-chat-confirm")
        expect(question).to_contain_text("Delete “Trip plans” and all its messages for good?")
        page.screenshot(path=shots / "chat-list-delete-dark.png")
        question.get_by_role("button", name="Keep it").click()
        expect(chat_row(page, "Trip plans")).to_have_count(1)
        assert other_id in _stored(app)
        chat_menu(page, "Trip plans", "delete")
        page.locator("#chat_list .lc-chat-confirm").get_by_role("button", name="Delete").click()
        expect(chat_row(page, "Trip plans")).to_have_count(0)
        expect(list_notice(page)).to_contain_text("Deleted “Trip plans”")
        assert other_id not in _stored(app)
        expect(chat_row(watcher, "Trip plans")).to_have_count(0)
        # Still the open chat, with its messages; nothing said in a toast.
        expect(open_chat_row(page)).to_have_text("The open chat of the menu test")
        expect(bubbles(page, "sent")).to_have_text(["The open chat of the menu test"])
        assert bubbles(page, "received").last.inner_text().startswith(REPLY)
        expect(notifications(page)).to_have_count(0)
    finally:
        watcher.close()
        page.context.close()


def test_the_menu_works_from_the_keyboard(app: RunningApp, browser: Browser) -> None:
    chat_id = _store_chat(app, "Keyboard chat")
    page = _tab(browser, app)
    try:
        title = chat_row(page, "Keyboard chat").locator(".lc-chat-title")
        more = chat_row(page, "Keyboard chat").locator(".lc-chat-more")
        title.focus()
        page.keyboard.press("Tab")
        expect(more).to_be_focused()
        expect(more).to_have_attribute("aria-label", "Options for “Keyboard chat”")
        expect(more).to_have_attribute("aria-expanded", "false")
        page.keyboard.press("Enter")
        menu = chat_row(page, "Keyboard chat").get_by_role("menu")
        expect(menu.get_by_role("menuitem", name="Rename")).to_be_focused()
        expect(chat_row(page, "Keyboard chat").locator(".lc-chat-more")).to_have_attribute(
            "aria-expanded", "true"
        )
        page.keyboard.press("ArrowDown")
        expect(menu.get_by_role("menuitem", name="Pin")).to_be_focused()
        page.keyboard.press("End")
        expect(menu.get_by_role("menuitem", name="Delete")).to_be_focused()
        page.keyboard.press("ArrowDown")  # round to the first
        expect(menu.get_by_role("menuitem", name="Rename")).to_be_focused()
        page.keyboard.press("Escape")
        expect(menu).to_have_count(0)
        expect(more).to_be_focused()
        # Rename by keyboard: Escape cancels, Enter saves.
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")  # Rename
        box = page.locator("#chat_list .lc-rename")
        expect(box).to_be_focused()
        page.keyboard.type("Typed away")  # the title is selected: typing replaces it
        page.keyboard.press("Escape")
        expect(box).to_have_count(0)
        expect(more).to_be_focused()
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")
        page.keyboard.press("Delete")  # an empty title: refused, said in the list
        page.keyboard.press("Enter")
        refused = list_notice(page).filter(has_text="A chat title cannot be empty")
        expect(refused).to_have_attribute("role", "alert")
        expect(box).to_be_focused()  # still there, to fix
        assert _stored(app)[chat_id][0] == "Keyboard chat"
        page.keyboard.type("Renamed by keyboard")
        page.keyboard.press("Enter")
        renamed = chat_row(page, "Renamed by keyboard")
        expect(renamed).to_have_count(1)
        expect(renamed.locator(".lc-chat-more")).to_be_focused()
        assert _stored(app)[chat_id][0] == "Renamed by keyboard"
        # Delete by keyboard: the question's safe answer has the focus; Escape keeps.
        page.keyboard.press("Enter")
        page.keyboard.press("End")
        page.keyboard.press("Enter")
        question = page.locator("#chat_list .lc-chat-confirm")  # in the row, in place of it
        expect(question).to_contain_text("Delete “Renamed by keyboard”")
        expect(question.get_by_role("button", name="Keep it")).to_be_focused()
        page.keyboard.press("Escape")
        expect(question).to_have_count(0)
        expect(renamed.locator(".lc-chat-more")).to_be_focused()
        assert chat_id in _stored(app)
        # Up and Down move between the chats' titles.
        renamed.locator(".lc-chat-title").focus()
        page.keyboard.press("ArrowDown")
        assert page.evaluate("document.activeElement.classList.contains('lc-chat-title')")
        assert page.evaluate("document.activeElement.textContent") != "Renamed by keyboard"
        page.keyboard.press("ArrowUp")
        expect(renamed.locator(".lc-chat-title")).to_be_focused()
        # Enter on a title opens that chat.
        page.keyboard.press("Enter")
        expect(open_chat_row(page)).to_have_text("Renamed by keyboard")
        expect(bubbles(page, "sent")).to_have_text(["Question of Keyboard chat"])
    finally:
        page.context.close()


def test_import_says_in_the_list_how_it_went(
    app: RunningApp, browser: Browser, tmp_path: Path, shots: Path
) -> None:
    good = tmp_path / "good.json"
    with ChatStore.in_folder(tmp_path / "elsewhere") as other:
        chat_id = other.create_chat(title="Brought along", model=MODEL)
        other.add_message(chat_id, "user", "An imported question")
        other.add_message(chat_id, "assistant", "An imported answer")
        good.write_text(json.dumps({"format": "localchat-chat", "version": 1, "chat": {
            "title": "Brought along", "messages": [
                {"role": "user", "content": "An imported question"},
                {"role": "assistant", "content": "An imported answer"},
            ]}}), encoding="utf-8")  # fmt: skip
    not_json = tmp_path / "notes.json"
    not_json.write_text("this is not JSON {", encoding="utf-8")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "something-else", "chat": {}}), encoding="utf-8")
    page = _tab(browser, app)
    try:
        expect(page.locator("#chats_drawer .lc-import")).to_have_count(1)  # one Import
        before = _stored(app)
        for refused in (not_json, wrong):
            page.locator("#import_json-upload-file").set_input_files(refused)
            notice = list_notice(page).filter(has_text=f"{refused.name} was not imported")
            expect(notice).to_have_count(1)
            expect(notice).to_have_attribute("role", "alert")
            assert _stored(app) == before
        page.screenshot(path=shots / "chat-list-import-refused-dark.png")
        page.locator("#import_json-upload-file").set_input_files(good)
        expect(list_notice(page)).to_have_text("Imported “Brought along”×")
        expect(list_notice(page)).to_have_attribute("role", "status")
        expect(open_chat_row(page)).to_have_text("Brought along")
        expect(bubbles(page, "sent")).to_have_text(["An imported question"])
        assert len(_stored(app)) == len(before) + 1
        page.locator("#chat_notice .lc-notice-close").click()  # dismissed
        expect(list_notice(page)).to_have_count(0)
        expect(notifications(page)).to_have_count(0)  # no toast, never "Uploaded"
    finally:
        page.context.close()


def test_on_a_phone_the_list_is_a_drawer_with_menus_shown_without_hover(
    app: RunningApp, browser: Browser, shots: Path
) -> None:
    _store_chat(app, "Phone first")
    _store_chat(app, "Phone second")
    page = _tab(browser, app, phone=True)
    try:
        expect(page.locator("#chats_drawer")).not_to_be_in_viewport()
        page.locator("#open_chats").click()
        drawer = page.locator("#chats_drawer")
        expect(drawer).to_be_in_viewport(ratio=0.99)
        more = chat_row(page, "Phone second").locator(".lc-chat-more")
        expect(more).to_be_visible()
        assert more.evaluate("e => getComputedStyle(e).opacity") == "1"  # no hover needed
        box = more.bounding_box()
        assert box and box["width"] >= 32 and box["height"] >= 32  # a finger's target
        more.click()
        menu = chat_row(page, "Phone second").get_by_role("menu")
        expect(menu).to_be_in_viewport(ratio=1)
        too_wide = page.evaluate(TOO_WIDE)
        assert too_wide == []
        page.screenshot(path=shots / "chat-list-phone-menu-dark.png")
        page.keyboard.press("Escape")  # the menu
        page.keyboard.press("Escape")  # the drawer
        expect(drawer).not_to_be_in_viewport()
        page.locator("#theme_toggle button[value=light]").click()
        page.locator("#open_chats").click()
        more.click()
        expect(menu).to_be_in_viewport(ratio=1)
        page.screenshot(path=shots / "chat-list-phone-menu-light.png")
        menu.get_by_role("menuitem", name="Rename").click()
        page.locator("#chat_list .lc-rename").fill("Phone renamed")
        page.locator("#chat_list .lc-rename").press("Enter")
        expect(chat_row(page, "Phone renamed")).to_have_count(1)
        expect(drawer).to_be_in_viewport(ratio=0.99)  # the drawer stays open meanwhile
        # Choosing a chat closes the drawer and shows that chat at its last message.
        chat_list(page).filter(has_text="Phone first").click()
        expect(drawer).not_to_be_in_viewport()
        expect(bubbles(page, "received").last).to_have_text(re.compile("^Answer of Phone first"))
        expect(bubbles(page, "received").last).to_be_in_viewport()
        page.locator("#open_chats").click()
        expect(open_chat_row(page)).to_have_text("Phone first")
        expect(open_chat_row(page)).to_be_in_viewport()
    finally:
        page.context.close()


def test_two_tabs_each_keep_their_own_open_chat(app: RunningApp, browser: Browser) -> None:
    _store_chat(app, "Tab one's chat")
    _store_chat(app, "Tab two's chat")
    first = _tab(browser, app)
    second = _tab(browser, app)
    try:
        open_chat(first, "Tab one's chat")
        open_chat(second, "Tab two's chat")
        expect(open_chat_row(first)).to_have_text("Tab one's chat")
        expect(bubbles(first, "sent")).to_have_text(["Question of Tab one's chat"])
        expect(bubbles(second, "sent")).to_have_text(["Question of Tab two's chat"])
        # A chat made in one tab shows in the other's list at once.
        first.locator("#new_chat").click()
        send_message(first, "Made in tab one")
        wait_for_reply_end(first)
        expect(chat_row(second, "Made in tab one")).to_have_count(1)
        expect(open_chat_row(second)).to_have_text("Tab two's chat")
    finally:
        first.context.close()
        second.context.close()


def test_a_failed_fetch_is_tried_again_until_the_list_and_the_chat_show(
    app: RunningApp, browser: Browser
) -> None:
    """A fetch of the tab's view can fail (a busy server; CI once left a tab's list empty for
    good): the list and the conversation fetch again by themselves, with nothing else changing
    in the page. Every fetch fails for 1.5 s from the first one failed, one route by a 503,
    the other by a dropped connection."""
    _store_chat(app, "Fetched again")
    failing = {"chats": True, "conversation": False}
    failing_until: dict[str, float] = {}
    failures = {"chats": 0, "conversation": 0}

    def fail_for_a_while(kind: str) -> Any:
        def handle(route: Any) -> None:
            if failing[kind]:
                failing_until.setdefault(kind, time.monotonic() + 1.5)
            if not failing[kind] or time.monotonic() >= failing_until[kind]:
                route.continue_()
                return
            failures[kind] += 1
            if kind == "chats":
                route.fulfill(status=503, body="busy")
            else:
                route.abort("connectionreset")

        return handle

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.route("**/lc-view/*/chats", fail_for_a_while("chats"))
    page.route("**/lc-view/*", fail_for_a_while("conversation"))
    try:
        page.goto(app.url)
        expect(chat_row(page, "Fetched again")).to_have_count(1)
        assert failures["chats"] >= 1
        failing["conversation"] = True
        open_chat(page, "Fetched again")
        expect(bubbles(page, "sent")).to_have_text(["Question of Fetched again"])
        expect(bubbles(page, "received")).to_contain_text(["Answer of Fetched again"])
        assert failures["conversation"] >= 1
    finally:
        context.close()


def test_a_thousand_chats_are_drawn_without_freezing_the_page(
    tmp_path: Path, browser: Browser, app: RunningApp, shots: Path
) -> None:
    count = 1000
    data = tmp_path / "many" / "data"
    now = datetime.now(timezone.utc)
    with ChatStore.in_folder(data) as store:
        ids = [store.create_chat(title=f"Chat number {i}", model=MODEL) for i in range(count)]
        store.add_message(ids[0], "user", "The oldest chat's question")
        store.add_message(ids[0], "assistant", "The oldest chat's answer")
    # Spread over three years: Today, Yesterday, ... and some 36 months.
    _set_updated(
        data, {chat_id: now - timedelta(hours=26 * (count - i)) for i, chat_id in enumerate(ids)}
    )
    with running_app(tmp_path / "many", app.models_dir, config_toml=CONFIG) as many:
        page = _tab(browser, many)
        try:
            started = time.monotonic()
            expect(chat_list(page)).to_have_count(count, timeout=30_000)
            shown_s = time.monotonic() - started
            stats: dict[str, Any] = page.evaluate("window.LocalChatList.stats")
            fetch_ms = page.evaluate(
                "() => performance.getEntriesByType('resource')"
                ".filter((e) => e.name.includes('/chats')).map((e) => e.duration)[0]"
            )
            assert stats["rows"] == count
            assert stats["lastDrawMs"] < 1000, stats  # one draw of 1,000 rows
            # A change redraws only what changed (the other rows keep their elements).
            page.evaluate(
                "window.lcKept = document.querySelector('#chat_list .lc-chat-row:last-child')"
            )
            started = time.monotonic()
            chat_list(page).filter(has_text="Chat number 0").scroll_into_view_if_needed()
            chat_list(page).filter(has_text="Chat number 0").click()
            expect(open_chat_row(page)).to_have_text("Chat number 0")
            expect(bubbles(page, "sent")).to_have_text(["The oldest chat's question"])
            open_s = time.monotonic() - started
            redraw: dict[str, Any] = page.evaluate("window.LocalChatList.stats")
            assert redraw["draws"] > stats["draws"]
            assert page.evaluate("window.lcKept.isConnected")
            busy_ms = page.evaluate(
                """() => new Promise((done) => {
                    const t0 = performance.now();
                    requestAnimationFrame(() => done(performance.now() - t0));
                })"""
            )
            print(
                f"\n1,000 chats: list JSON fetched in {fetch_ms:.0f} ms, first draw"
                f" {stats['lastDrawMs']:.1f} ms, rows drawn {stats['firstRowsAt']:.0f} ms after"
                f" the page's navigation began (all on screen {shown_s:.2f} s after it was ready);"
                f" open the oldest {open_s:.2f} s (redraw {redraw['lastDrawMs']:.1f} ms);"
                f" next frame {busy_ms:.0f} ms"
            )
            page.screenshot(path=shots / "chat-list-1000-dark.png")
        finally:
            page.context.close()
