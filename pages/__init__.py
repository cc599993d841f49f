"""LocalChat's Taipy pages: the root page (navbar, language switch, theme toggle), `chat`,
`models` and `documents`, and the two pages shown inside them: `downloads` ("Get models", in
the models page) and `first_model` (the offers of a first model, in both when the models
folder is empty). Each is built once per language; every request renders the one of the
browser's language (web/language.py).

Each page module holds its variables, its callbacks and a `build_page()` that lays it out with
the Taipy page builder; pages never import each other: what one changes for the others goes
through `refresh`, what several do (load or download a model) is in `model_actions`. This
package holds only the app-wide callbacks that dispatch to them.
"""

from __future__ import annotations

import inspect
import sys
from functools import partial

import taipy.gui.builder as tgb
from taipy.gui import Gui, Page, State, navigate, notify

from web.context import app
from web.language import ROUTE as LANGUAGE_ROUTE
from web.language import TabLabels

from . import chat, documents, downloads, first_model, model_actions, models
from .wording import error_text

_FRAME = inspect.currentframe()
_PAGES = (chat, models, downloads, first_model, documents)


def create_pages() -> dict[str, Page]:
    """All pages ("/" wraps the others), each answering in the language of the browser asking
    (web/language.py): built once per language, the one to render chosen at each request."""
    labels = app().labels
    if not isinstance(labels, TabLabels):  # one fixed language
        return _build_pages()
    built = {}
    for language in labels.languages:
        with labels.building(language):
            built[language] = _build_pages()
    pages = built[labels.default]
    for name, page in pages.items():
        versions = {language: built[language][name] for language in labels.languages}
        # Taipy renders a page's elements at every request for it: render those of the
        # language this browser asks for (its cookie).
        page.render = partial(_render_in_language, labels, versions)  # type: ignore[method-assign]
    return pages


def _render_in_language(labels: TabLabels, versions: dict[str, Page], gui: Gui) -> str:
    page = versions[labels.from_request()]
    return type(page).render(page, gui)  # the class's method: the instance's is this one


def _build_pages() -> dict[str, Page]:
    pages: dict[str, Page] = {"/": _root_page()}
    for page in _PAGES:
        pages[page.__name__.rsplit(".", 1)[-1]] = page.build_page()
    return pages


def install(gui: Gui) -> None:
    """Give `gui` the pages' app-wide callbacks, and show the download queue in every tab."""
    gui.on_init = on_init
    gui.on_page_load = on_page_load
    gui.on_exception = on_exception
    app().describe_error = error_text  # errors from the pages' background work, in words
    downloads.watch(gui)
    model_actions.watch_downloads(gui)
    documents.watch(gui)


def _root_page() -> tgb.Page:
    ctx = app()
    t = ctx.labels
    with (
        tgb.Page(frame=_FRAME) as page,
        tgb.layout("auto 1fr auto", columns__mobile="auto 1fr auto", class_name="lc-header"),
    ):
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
        with tgb.part(class_name="lc-header-tools"):
            other = _other_language()
            if other:  # the switch names the other language in that language
                tgb.button(
                    ctx.labels.by_language[other]["language_name"],  # type: ignore[attr-defined]
                    id="language_switch",
                    on_action=switch_language,
                    hover_text=t["language"],
                    class_name="lc-language",
                )
            tgb.toggle(theme=True, id="theme_toggle", hover_text=t["theme"])
    return page


def _other_language() -> str:
    """The language the switch offers (the labels' other one), or "" when there is none."""
    labels = app().labels
    if not isinstance(labels, TabLabels):
        return ""
    current = labels.current()
    return next((lang for lang in labels.languages if lang != current), "")


def switch_language(state: State) -> None:
    """The language switch: the browser remembers the other language (a cookie set by
    web/language.py's route), and the page loads again in it."""
    other = _other_language()
    if other:
        navigate(state, LANGUAGE_ROUTE, params={"to": other}, tab="_self")


def on_init(state: State) -> None:
    """A new browser tab: its own conversation and page data, in its browser's language."""
    labels = app().labels
    if isinstance(labels, TabLabels):
        labels.adopt_request_language()
    for page in _PAGES:
        page.init_state(state)


def on_page_load(state: State, page_name: str) -> None:
    """A tab loaded the app (first or again): show the chats other tabs or the command line
    stored meanwhile (a change of model reaches every tab as it happens). Taipy 4.1 calls this
    for the root page "/" only, which holds every page; switching pages in the navbar calls
    nothing. Only what changed is sent: each change re-renders the whole page."""
    labels = app().labels
    if isinstance(labels, TabLabels) and labels.adopt_request_language():
        for page in _PAGES:  # the language changed: what the pages show is said again
            getattr(page, "relabel", page.init_state)(state)
    chat.refresh_chats(state)


def on_exception(state: State, function_name: str, exc: Exception) -> None:
    """An unexpected error in a callback: tell the user instead of failing silently (and the
    log, for whoever runs the app)."""
    print(f"error in {function_name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    notify(state, "error", f"{function_name}: {error_text(exc, app().labels)}")
