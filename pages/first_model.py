"""The first models offered when the models folder is empty: the starter model (from the Python
package index, no Hugging Face needed) and the recommended Hugging Face model (better answers),
each said plainly, with what it is and how big.

Its own Taipy page ("first_model"), shown inside the chat page and the models page
(`tgb.part(page="first_model")`), so its variables live here beside its callbacks.

`get_starter` fetches the starter model (llm/starter.py) in a thread, one fetch for the whole
app; every tab shows its progress (`starter_line`), at most `PUSHES_PER_SECOND` times a second.
Then, unless a model was loaded meanwhile, it is loaded, so the user can type a question at
once; the tab that asked hears how it ended. `get_recommended` queues the recommended model's
download and opens the models page, where its progress shows. The buttons send nothing but the
click: what is fetched, and where, is fixed here.
"""

from __future__ import annotations

import inspect
import threading
import time
from typing import Any

import taipy.gui.builder as tgb
from taipy.gui import Gui, State, get_state_id, invoke_callback, navigate, notify

from llm.catalog import default_catalog
from llm.fit import ram_for_hub_file
from llm.gguf_file import human_size
from llm.model_files import models_folder_empty
from llm.starter import SMOLLM2, StarterProgress, fetch_starter
from web.context import app

from . import model_actions, refresh

PUSHES_PER_SECOND = 4

# Page variables: module-level defaults that `init_state` replaces for every tab.
models_empty = False  # no model in the models folder: the offers show
starter_line = ""  # the starter model's fetch, while it runs

_FRAME = inspect.currentframe()  # binds the page to this module's variables
_lock = threading.Lock()
_running = False
_line = ""  # the progress shown now ("" when no fetch runs), for tabs opened meanwhile
_last_push = 0.0


def init_state(state: State) -> None:
    """A new tab: whether to offer, and a fetch already under way."""
    state.starter_line = _line
    _models_changed(state)


def _models_changed(state: State) -> None:
    empty = models_folder_empty(app().config.models_dir)
    if state.models_empty != empty:  # assigning re-renders the page even when unchanged
        state.models_empty = empty


refresh.subscribe(refresh.MODELS, _models_changed)


def _starter_offer() -> str:
    return (
        app()
        .labels["starter_offer"]
        .format(model=SMOLLM2.name, size=human_size(SMOLLM2.size_bytes))
    )


def _recommended_offer() -> str:
    ctx = app()
    catalog = default_catalog()
    entry = catalog.recommended()
    ram = ram_for_hub_file(
        entry.repo_id, entry.file_name, entry.size_bytes, n_ctx=ctx.config.n_ctx, catalog=catalog
    )
    return ctx.labels["offer_line"].format(
        model=entry.name, size=human_size(entry.size_bytes), ram=human_size(ram.total)
    )


def get_recommended(state: State, *_: Any) -> None:
    """The recommended model's button: queue its download and show it on the models page."""
    entry = default_catalog().recommended()
    if model_actions.download_model(state, entry.repo_id, entry.file_name):
        navigate(state, "models")


def get_starter(state: State, *_: Any) -> None:
    """The starter model's button: fetch it, then load it; the chat page is where the user
    goes next."""
    global _running
    ctx = app()
    t = ctx.labels
    if not models_folder_empty(ctx.config.models_dir):  # only offered then; a client may
        notify(state, "info", t["starter_not_needed"])  # send the click anyway
        return
    with _lock:
        if _running:
            notify(state, "info", t["starter_running"])
            return
        _running = True
    gui = state.get_gui()
    _show(gui, t["starter_starting"], force=True)  # before the thread's own progress
    threading.Thread(
        target=_fetch_and_load, args=(gui, get_state_id(state) or ""), name="starter", daemon=True
    ).start()
    navigate(state, "chat")


def _fetch_and_load(gui: Gui, owner: str) -> None:
    global _running
    ctx = app()
    t = ctx.labels
    error, loaded, failed = "", False, "starter_failed"
    try:
        fetched = fetch_starter(ctx.config.models_dir, on_progress=lambda e: _progress(gui, e))
        if ctx.engines.local.loaded is None:  # a model the user loaded meanwhile stays
            _show(gui, t["starter_loading"], force=True)
            failed = "starter_load_failed"
            ctx.engines.local.load(fetched.path)
            ctx.engines.use_local()
            loaded = True
    except Exception as exc:  # whatever happens, the pages must leave the fetching state
        error = t[failed].format(error=str(exc) or type(exc).__name__)
    with _lock:
        _running = False
    _show(gui, "", force=True)
    refresh.publish_everywhere(gui, refresh.MODELS)  # the new model, in every tab
    if owner:
        invoke_callback(gui, owner, _tell_owner, [error, loaded])


def _progress(gui: Gui, event: StarterProgress) -> None:
    t = app().labels
    percent = 100 * event.done // event.total if event.total else 0
    key = "starter_downloading" if event.phase == "downloading" else "starter_unpacking"
    size = human_size(event.total or SMOLLM2.size_bytes)  # the wheel's size while downloading
    _show(gui, t[key].format(percent=percent, size=size))


def _show(gui: Gui, line: str, *, force: bool = False) -> None:
    """Show `line` in every tab (throttled unless `force`)."""
    global _line, _last_push
    now = time.monotonic()
    with _lock:
        if line == _line or (not force and now - _last_push < 1.0 / PUSHES_PER_SECOND):
            return
        _line, _last_push = line, now
    gui.broadcast_callback(_set_line, [line])


def _set_line(state: State, line: str) -> None:
    state.starter_line = line


def _tell_owner(state: State, error: str, loaded: bool) -> None:
    t = app().labels
    if error:
        notify(state, "error", error)
    else:
        key = "starter_ready" if loaded else "starter_saved"
        notify(state, "success", t[key].format(model=SMOLLM2.name))


def build_page() -> tgb.Page:
    """The offers (and the starter's progress), labelled in the configured language."""
    t = app().labels
    with tgb.Page(frame=_FRAME) as page:
        with tgb.part(render="{starter_line != ''}", id="starter_progress"):
            tgb.text("{starter_line}", class_name="lc-starter-line")
        with tgb.part(
            render="{models_empty and starter_line == ''}",
            class_name="lc-offers",
            id="first_model_offer",
        ):
            tgb.text(t["offer_title"], class_name="lc-offers-title")
            with tgb.part(class_name="lc-offer", id="starter_offer"):
                tgb.text(_starter_offer(), mode="md")
                tgb.button(t["starter_button"], id="get_starter", on_action=get_starter)
            with tgb.part(class_name="lc-offer", id="hub_offer"):
                tgb.text(_recommended_offer(), mode="md")
                tgb.button(t["offer_button"], id="download_recommended", on_action=get_recommended)
    return page
