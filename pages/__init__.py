"""LocalChat's Taipy pages: the root page (navbar, theme toggle), `chat` and `models`.

Each page module holds its variables, its callbacks and a `build_page()` that lays it out with
the Taipy page builder. This package holds only the app-wide callbacks that dispatch to them.
"""

from __future__ import annotations

import inspect

import taipy.gui.builder as tgb
from taipy.gui import Page, State, notify

from . import chat, models
from .context import app

_FRAME = inspect.currentframe()


def create_pages() -> dict[str, Page]:
    """All pages, labelled in the configured language ("/" wraps the others)."""
    return {"/": _root_page(), "chat": chat.build_page(), "models": models.build_page()}


def _root_page() -> tgb.Page:
    ctx = app()
    t = ctx.labels
    with tgb.Page(frame=_FRAME) as page, tgb.layout("auto 1fr auto", class_name="lc-header"):
        tgb.text(ctx.config.title, class_name="lc-title", id="app_title")
        tgb.navbar(
            lov=[("/chat", t["nav_chat"]), ("/models", t["nav_models"])],
            id="navbar",
            class_name="lc-navbar",
        )
        tgb.toggle(theme=True, id="theme_toggle", hover_text=t["theme"])
    return page


def on_init(state: State) -> None:
    """A new browser tab: its own conversation and page data."""
    chat.init_state(state)
    models.init_state(state)


def on_page_load(state: State, page_name: str) -> None:
    """A tab loaded the app (first or again): show the chats other tabs or the command line
    stored meanwhile (a change of model reaches every tab as it happens). Taipy 4.1 calls this
    for the root page "/" only, which holds every page; switching pages in the navbar calls
    nothing. Only what changed is sent: each change re-renders the whole page."""
    chat.refresh_chats(state)


def on_exception(state: State, function_name: str, exc: Exception) -> None:
    """An unexpected error in a callback: tell the user instead of failing silently."""
    notify(state, "error", f"{function_name}: {exc}")
