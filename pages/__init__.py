"""LocalChat's Taipy pages: the root page (navbar, theme toggle), `chat`, `models` and
`documents`, and the two pages shown inside them: `downloads` ("Get models", in the models
page) and `first_model` (the offers of a first model, in both when the models folder is empty).

Each page module holds its variables, its callbacks and a `build_page()` that lays it out with
the Taipy page builder; pages never import each other: what one changes for the others goes
through `refresh`, what several do (load or download a model) is in `model_actions`. This
package holds only the app-wide callbacks that dispatch to them.
"""

from __future__ import annotations

import inspect
import sys

import taipy.gui.builder as tgb
from taipy.gui import Gui, Page, State, notify

from web.context import app

from . import chat, documents, downloads, first_model, model_actions, models

_FRAME = inspect.currentframe()
_PAGES = (chat, models, downloads, first_model, documents)


def create_pages() -> dict[str, Page]:
    """All pages, labelled in the configured language ("/" wraps the others)."""
    pages: dict[str, Page] = {"/": _root_page()}
    for page in _PAGES:
        pages[page.__name__.rsplit(".", 1)[-1]] = page.build_page()
    return pages


def install(gui: Gui) -> None:
    """Give `gui` the pages' app-wide callbacks, and show the download queue in every tab."""
    gui.on_init = on_init
    gui.on_page_load = on_page_load
    gui.on_exception = on_exception
    downloads.watch(gui)
    model_actions.watch_downloads(gui)
    documents.watch(gui)


def _root_page() -> tgb.Page:
    ctx = app()
    t = ctx.labels
    with tgb.Page(frame=_FRAME) as page, tgb.layout("auto 1fr auto", class_name="lc-header"):
        tgb.text(ctx.config.title, class_name="lc-title", id="app_title")
        tgb.navbar(
            lov=[
                ("/chat", t["nav_chat"]),
                ("/models", t["nav_models"]),
                ("/documents", t["nav_documents"]),
            ],
            id="navbar",
            class_name="lc-navbar",
        )
        tgb.toggle(theme=True, id="theme_toggle", hover_text=t["theme"])
    return page


def on_init(state: State) -> None:
    """A new browser tab: its own conversation and page data."""
    for page in _PAGES:
        page.init_state(state)


def on_page_load(state: State, page_name: str) -> None:
    """A tab loaded the app (first or again): show the chats other tabs or the command line
    stored meanwhile (a change of model reaches every tab as it happens). Taipy 4.1 calls this
    for the root page "/" only, which holds every page; switching pages in the navbar calls
    nothing. Only what changed is sent: each change re-renders the whole page."""
    chat.refresh_chats(state)


def on_exception(state: State, function_name: str, exc: Exception) -> None:
    """An unexpected error in a callback: tell the user instead of failing silently (and the
    log, for whoever runs the app)."""
    print(f"error in {function_name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    notify(state, "error", f"{function_name}: {exc}")
