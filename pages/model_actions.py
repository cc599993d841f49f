"""What more than one page does with models: load one, download one. The library does the work
(`Engines`, `DownloadQueue`); these show it in the tab that asked and tell every tab.

- `load_model`: a model of the folder loads in a thread (with the context and threads chosen
  for it); the tab hears how it went, every tab shows the new model (`refresh.MODELS`).
- `use_remote_model`: a model on a `[[backends]]` server answers new chats (the server is
  asked first that it offers it), told the same way.
- `download_model`: a file from the Hub joins the app's download queue; the downloads page
  shows its progress in every tab; the tab that asked hears how it ended, and once a model
  is there every tab rescans the folder and the asking tab selects it (`MODEL_ADDED`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from taipy.gui import Gui, State, get_state_id, invoke_callback, notify

from llm.errors import LocalChatError
from llm.hub import DownloadProgress
from llm.model_files import resolve_model
from web.context import app, in_background

from . import refresh
from .wording import coded_text

# --- loading ----------------------------------------------------------------------------------


def load_model(
    state: State,
    name: object,
    on_done: Callable[[State, str, str], None],
    *,
    ignore_memory_check: bool = False,
) -> bool:
    """Load `name` (a file name in the models folder, as a page sends it) in a thread, then
    call `on_done(state, name, error)` in this tab ("" on success). False, with the reason
    shown, when the name is refused; a loaded model answers new chats."""
    ctx = app()
    try:
        path = resolve_model(str(name or ""), ctx.config.models_dir, allow_paths=False)
    except LocalChatError as exc:
        notify(state, "error", str(exc))
        return False

    def work() -> None:
        ctx.engines.local.load(path, ignore_memory_check=ignore_memory_check)
        ctx.engines.use_local()

    def done(state: State, name: str, error: str, _result: object) -> None:
        if error:
            notify(state, "error", error)
        else:
            notify(state, "success", app().labels["loaded"].format(model=name))
            refresh.publish_everywhere(state.get_gui(), refresh.MODELS)
        on_done(state, name, error)

    in_background(state, path.name, work, done)
    return True


def use_remote_model(
    state: State, backend: str, model: str, on_done: Callable[[State, str, str], None]
) -> None:
    """Make `model` on `backend` answer new chats, in a thread (the server is asked that it
    offers it), then call `on_done(state, backend, error)` in this tab ("" on success)."""
    ctx = app()

    def done(state: State, backend: str, error: str, engine: object) -> None:
        if error:
            notify(state, "error", error)
        else:
            # Notifications are plain text: no Markdown.
            words = app().labels["remote_used"].format(model=model, backend=backend)
            notify(state, "success", words)
            refresh.publish_everywhere(state.get_gui(), refresh.MODELS)  # every tab shows it
        on_done(state, backend, error)

    in_background(state, backend, lambda: ctx.engines.use_remote(backend, model), done)


# --- downloading ------------------------------------------------------------------------------

_lock = threading.Lock()
_owners: dict[str, str] = {}  # job id -> state id of the tab that queued it


def download_model(state: State, repo_id: object, file_name: object) -> bool:
    """Queue `file_name` of `repo_id` (checked by the queue: an owner/name and a `.gguf` name
    that stays in the folder). False, with the reason shown, when refused."""
    ctx = app()
    try:
        job_id = ctx.downloads.add(repo_id, file_name)  # type: ignore[arg-type]
    except LocalChatError as exc:
        notify(state, "error", str(exc))
        return False
    with _lock:
        _owners[job_id] = get_state_id(state) or ""
    name = str(file_name).rsplit("/", 1)[-1]
    notify(state, "info", ctx.labels["download_queued"].format(file=name))
    return True


def watch_downloads(gui: Gui) -> None:
    """Tell the tab that asked for a download how it ended (once, at start-up)."""

    def on_progress(progress: DownloadProgress) -> None:
        if not progress.finished:
            return
        with _lock:
            owner = _owners.pop(progress.job_id, "")
        if progress.state == "done":
            refresh.publish_everywhere(gui, refresh.MODELS)  # a new model in the folder
        if owner:
            invoke_callback(gui, owner, _tell_owner, [progress])

    app().downloads.subscribe(on_progress)


def _tell_owner(state: State, progress: DownloadProgress) -> None:
    t = app().labels
    if progress.state == "done":
        refresh.publish(state, refresh.MODEL_ADDED, progress.file_name)
        notify(state, "success", t["download_done"].format(file=progress.file_name))
    elif progress.state == "failed":  # the row says it too, with Retry and Dismiss
        notify(state, "error", coded_text(progress.error_code, {}, progress.message, t))
