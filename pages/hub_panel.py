"""The "Get models" panel of the models page: catalog, Hub search, verdicts, downloads.

- The curated catalog (recommended first model marked) and a Hub search; a repository's `.gguf`
  files with size, quantization, RAM needed and the fits / tight / does-not-fit verdict for this
  machine. A file that does not fit needs a second click ("Download anyway").
- One `DownloadQueue` for the whole app (downloads run one at a time in its thread). Its
  progress events reach every tab through `Gui.broadcast_callback`, throttled to
  `PUSHES_PER_SECOND`; the tab that asked also gets the final notification. When a download is
  verified, every tab rescans the models folder, so the model can be loaded at once.
- `first_model_offer` / `download_recommended`: the one-click offers of a first model (the
  starter model, and the recommended one from the Hub), for the models page and the chat page
  when the models folder is empty.

The panel's page variables are declared in `pages/models.py` (a Taipy page binds the variables
of the module that builds it); the callbacks here reach them through `_page(state)`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import taipy.gui.builder as tgb
from taipy.gui import Gui, State, get_state_id, invoke_callback, navigate, notify

from llm.catalog import Catalog, load_catalog
from llm.errors import LocalChatError
from llm.fit import Fit, hub_file_fit, machine_status
from llm.gguf_file import human_size
from llm.hub import (
    DownloadProgress,
    DownloadQueue,
    HubError,
    list_gguf_files,
    search_models,
)
from llm.model_files import model_paths

from . import starter_offer
from .context import app
from .per_tab import PerTab

PAGE = "pages.models"  # the module whose variables this panel binds
SLOTS = 4  # downloads shown at once (unfinished first, then the latest finished)
PUSHES_PER_SECOND = 4  # progress updates sent to the tabs while a download runs
SEARCH_LIMIT = 20

# --- app-wide objects -------------------------------------------------------------------------
_lock = threading.Lock()
_queue: DownloadQueue | None = None
_gui: Gui | None = None
_owners: dict[str, str] = {}  # job id -> state id of the tab that queued it
_last_push = 0.0
_last_states: dict[str, str] = {}
_catalog: Catalog | None = None


@dataclass
class _Rows:
    """What the rows of this tab's tables stand for, kept by the server (a click sends only a
    row's index): [repo id, file name, size] per catalog and file row, the repository of each
    search result, the download job of each slot."""

    catalog: list[list[Any]] = field(default_factory=list)
    files: list[list[Any]] = field(default_factory=list)
    repos: list[str] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)


_rows = PerTab(_Rows)


def catalog() -> Catalog:
    """llm/catalog.toml, read once."""
    global _catalog
    if _catalog is None:
        _catalog = load_catalog()
    return _catalog


def download_queue(gui: Gui | None = None) -> DownloadQueue:
    """The app's one download queue (made on first use, in the models folder)."""
    global _queue, _gui
    with _lock:
        if gui is not None and _gui is None:
            _gui = gui
        if _queue is None:
            _queue = DownloadQueue(app().config.models_dir, on_event=_on_progress)
        return _queue


def close_queue() -> None:
    """Stop the downloads (partial files are kept, so they resume next time)."""
    if _queue is not None:
        _queue.close()


def models_folder_empty() -> bool:
    """True when the models folder has no model (the chat page's offer shows then)."""
    return next(model_paths(app().config.models_dir), None) is None


class _page:  # lower case: used like a function, _page(state).var
    """The models page's variables of one tab, from callbacks defined in this module."""

    def __init__(self, state: State) -> None:
        object.__setattr__(self, "_state", state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state[PAGE], name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._state[PAGE], name, value)


# --- initial state ----------------------------------------------------------------------------
def init_state(state: State) -> None:
    """Fill the panel for a new tab: machine line, catalog, current downloads."""
    download_queue(state.get_gui())
    page = _page(state)
    page.machine_line = _machine_line()
    page.catalog_table, _rows(state).catalog = _catalog_table()
    # Tables take their columns from their first value: give them the right ones, empty.
    t = app().labels
    page.hub_results = pd.DataFrame(columns=[t[k] for k in _RESULT_COLUMNS])
    page.hub_files = pd.DataFrame(columns=[t[k] for k in _FILE_COLUMNS])
    _apply_downloads(state, _downloads_view())


def _machine_line() -> str:
    t = app().labels
    machine = machine_status(app().config.models_dir)
    return t["hub_machine"].format(
        ram=human_size(machine.ram_total),
        free=human_size(machine.ram_available),
        disk=human_size(machine.disk_free),
    )


def _verdict(fit: Fit) -> str:
    t = app().labels
    text = t[f"fit_{fit.ram}"]
    return text if fit.disk_ok else f"{text} · {t['fit_no_disk']}"


def _fit(repo_id: str, file_name: str, size: int) -> Fit:
    """The verdict at the configured context size (llm.fit's rule, as the CLI and loading)."""
    ctx = app()
    machine = machine_status(ctx.config.models_dir)
    return hub_file_fit(
        repo_id, file_name, size, machine, n_ctx=ctx.config.n_ctx, catalog=catalog()
    )


def _catalog_table() -> tuple[pd.DataFrame, list[list[Any]]]:
    t = app().labels
    rows, keys = [], []
    for entry in catalog().entries:
        fit = _fit(entry.repo_id, entry.file_name, entry.size_bytes)
        rows.append(
            {
                " ": "★" if entry.recommended else "",
                t["col_model"]: entry.name,
                t["col_file"]: entry.file_name,
                t["col_quant"]: entry.quantization,
                t["col_download"]: human_size(entry.size_bytes),
                t["col_ram"]: human_size(fit.ram_needed),
                t["col_fit"]: _verdict(fit),
            }
        )
        keys.append([entry.repo_id, entry.file_name, entry.size_bytes])
    return pd.DataFrame(rows), keys


def _offer_line() -> str:
    entry = catalog().recommended()
    fit = _fit(entry.repo_id, entry.file_name, entry.size_bytes)
    return (
        app()
        .labels["offer_line"]
        .format(model=entry.name, size=human_size(entry.size_bytes), ram=human_size(fit.ram_needed))
    )


# --- search and listing -----------------------------------------------------------------------
_RESULT_COLUMNS = ("col_repo", "col_downloads", "col_likes", "col_access")
_FILE_COLUMNS = ("col_file", "col_quant", "col_size", "col_ram", "col_fit")


def hub_search(state: State, var_name: str = "", payload: dict[str, Any] | None = None) -> None:
    """Search button (or Enter): GGUF repositories, or the files of an `owner/name` typed in."""
    page = _page(state)
    args = payload.get("args") if isinstance(payload, dict) else None
    # Enter in the box carries the text itself (the bound value may lag by the change delay).
    typed = args[2] if isinstance(args, list) and len(args) > 2 else page.hub_query
    query = typed.strip() if isinstance(typed, str) else ""
    page.hub_query = query
    page.hub_error = ""
    page.confirm_big = False
    try:
        if "/" in query:  # a repository id: go straight to its files
            _show_files(state, query)
            return
        found = search_models(query, limit=SEARCH_LIMIT)
    except LocalChatError as exc:
        _fail(state, str(exc))
        return
    t = app().labels
    page.hub_results = pd.DataFrame(
        [
            {
                t["col_repo"]: r.repo_id,
                t["col_downloads"]: f"{r.downloads:,}",
                t["col_likes"]: r.likes,
                t["col_access"]: t["gated"] if r.gated else "",
            }
            for r in found
        ],
        columns=[t[k] for k in _RESULT_COLUMNS],
    )
    _rows(state).repos = [r.repo_id for r in found]
    page.has_results = True
    page.results_line = t["results_line"].format(n=len(found), query=query or "*")


def hub_pick_repo(state: State, var_name: str, payload: dict[str, Any]) -> None:
    """A click on a search result: list that repository's GGUF files."""
    page = _page(state)
    index = payload.get("index") if isinstance(payload, dict) else None
    ids = _rows(state).repos
    if not isinstance(index, int) or not 0 <= index < len(ids):
        return
    page.hub_error = ""
    try:
        _show_files(state, ids[index])
    except LocalChatError as exc:
        _fail(state, str(exc))


def _show_files(state: State, repo_id: str) -> None:
    page = _page(state)
    t = app().labels
    listing = list_gguf_files(repo_id)
    folder = Path(app().config.models_dir)
    rows, keys = [], []
    for model in listing.models:
        fit = _fit(model.repo_id, model.file_name, model.size_bytes)
        here = (folder / model.local_name).exists()
        rows.append(
            {
                t["col_file"]: model.name,
                t["col_quant"]: model.quantization or "?",
                t["col_size"]: human_size(model.size_bytes),
                t["col_ram"]: ("~" if fit.ram_estimated else "") + human_size(fit.ram_needed),
                t["col_fit"]: t["in_folder"] if here else _verdict(fit),
            }
        )
        keys.append([model.repo_id, model.file_name, model.size_bytes])
    page.hub_files = pd.DataFrame(rows, columns=[t[k] for k in _FILE_COLUMNS])
    _rows(state).files = keys
    page.has_files = True
    gated = f" · {t['gated']}" if listing.gated else ""
    page.files_line = t["files_line"].format(repo=listing.repo_id, n=len(keys)) + gated
    if len(keys) == 1:  # nothing to choose: select it
        _select(page, *keys[0])


def hub_pick_file(state: State, var_name: str, payload: dict[str, Any]) -> None:
    """A click on a file (or catalog) row: select it for Download."""
    page = _page(state)
    index = payload.get("index") if isinstance(payload, dict) else None
    rows = _rows(state)
    keys = rows.catalog if var_name == "catalog_table" else rows.files
    if isinstance(index, int) and 0 <= index < len(keys):
        _select(page, *keys[index])


def _select(page: _page, repo_id: str, file_name: str, size: int) -> None:
    t = app().labels
    fit = _fit(repo_id, file_name, size)
    page.chosen_repo = repo_id
    page.chosen_file = file_name
    page.chosen_fit = fit.ram if fit.disk_ok else "no_disk"
    page.confirm_big = False
    page.chosen_line = t["pick_line"].format(
        file=file_name.rsplit("/", 1)[-1], repo=repo_id, size=human_size(size), fit=fit.message
    )


# --- downloads --------------------------------------------------------------------------------
def hub_download(state: State, *_: Any) -> None:
    """Download button: queue the selected file (a file that does not fit asks first)."""
    page = _page(state)
    if not page.chosen_file:
        return
    if page.chosen_fit in ("does_not_fit", "no_disk") and not page.confirm_big:
        page.confirm_big = True  # the warning shows, with "Download anyway"
        return
    page.confirm_big = False
    _queue_download(state, page.chosen_repo, page.chosen_file)


def hub_download_anyway(state: State, *_: Any) -> None:
    """ "Download anyway" after the warning."""
    page = _page(state)
    page.confirm_big = False
    _queue_download(state, page.chosen_repo, page.chosen_file)


def hub_cancel_confirm(state: State, *_: Any) -> None:
    _page(state).confirm_big = False


def download_recommended(state: State, *_: Any) -> None:
    """The chat page's one-click offer: queue the recommended first model, show its progress."""
    hub_offer(state)
    navigate(state, "models")


def hub_offer(state: State, *_: Any) -> None:
    """The models page's one-click offer of the recommended first model."""
    entry = catalog().recommended()
    _queue_download(state, entry.repo_id, entry.file_name)


def _queue_download(state: State, repo_id: str, file_name: str) -> None:
    queue = download_queue(state.get_gui())
    try:
        job_id = queue.add(repo_id, file_name)
    except LocalChatError as exc:
        _fail(state, str(exc))
        return
    with _lock:
        _owners[job_id] = get_state_id(state) or ""
    _apply_downloads(state, _downloads_view())
    name = file_name.rsplit("/", 1)[-1]
    notify(state, "info", app().labels["download_queued"].format(file=name))


def hub_cancel_download(state: State, button_id: str, *_: Any) -> None:
    """A slot's Cancel button (`dl_cancel_<slot>`): stop that download, delete its part."""
    try:
        slot = int(str(button_id).rsplit("_", 1)[-1])
        job_id = _rows(state).downloads[slot]
    except (ValueError, IndexError):
        return
    if job_id:
        try:
            download_queue().cancel(job_id)
        except HubError as exc:
            notify(state, "error", str(exc))


def _downloads_view() -> dict[str, list[Any]]:
    """What the download slots show, for every tab alike (padded to SLOTS)."""
    t = app().labels
    jobs = download_queue().jobs() if _queue is not None else []
    running = [j for j in jobs if not j.finished]
    finished = [j for j in jobs if j.finished][::-1]
    shown = (running + finished)[:SLOTS]
    view: dict[str, list[Any]] = {"ids": [], "title": [], "pct": [], "line": [], "open": []}
    for job in shown:
        view["ids"].append(job.job_id)
        view["title"].append(f"{job.file_name} · {job.repo_id}")
        view["pct"].append(round(job.percent, 1) if job.state != "done" else 100.0)
        view["line"].append(_progress_line(job, t))
        view["open"].append(not job.finished)
    for _ in range(SLOTS - len(shown)):
        for key, empty in (("ids", ""), ("title", ""), ("pct", 0.0), ("line", ""), ("open", False)):
            view[key].append(empty)
    view["count"] = [len(shown)]
    return view


def _progress_line(job: DownloadProgress, t: Any) -> str:
    if job.state == "downloading":
        parts = [
            f"{job.percent:.0f}%",
            t["dl_of"].format(done=human_size(job.bytes_done), total=human_size(job.bytes_total)),
        ]
        if job.mb_per_s:
            parts.append(f"{job.mb_per_s:.1f} MB/s")
        if job.eta_s is not None:
            parts.append(t["dl_left"].format(time=_duration(job.eta_s)))
        if job.resumed_from:
            parts.append(t["dl_resumed"].format(size=human_size(job.resumed_from)))
        return " · ".join(parts)
    if job.state == "failed":
        return t["dl_failed"].format(error=job.message or "?")
    return t[f"dl_{job.state}"]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _apply_downloads(state: State, view: dict[str, list[Any]]) -> None:
    page = _page(state)
    _rows(state).downloads = view["ids"]
    page.dl_title = view["title"]
    page.dl_pct = view["pct"]
    page.dl_line = view["line"]
    page.dl_open = view["open"]
    page.dl_count = view["count"][0]


def _on_progress(progress: DownloadProgress) -> None:
    """Download thread: send the slots to every tab, at most PUSHES_PER_SECOND a second
    (state changes always); a finished download also refreshes the models tables."""
    global _last_push
    now = time.monotonic()
    with _lock:
        changed = _last_states.get(progress.job_id) != progress.state
        _last_states[progress.job_id] = progress.state
        if not changed and now - _last_push < 1.0 / PUSHES_PER_SECOND:
            return
        _last_push = now
        gui = _gui
        owner = _owners.get(progress.job_id, "") if progress.finished else ""
    if gui is None:
        return
    view = _downloads_view()
    gui.broadcast_callback(_show_downloads, [view, progress.finished], module_context=PAGE)
    if owner:
        invoke_callback(gui, owner, _tell_owner, [progress], module_context=PAGE)


def _show_downloads(state: State, view: dict[str, list[Any]], finished: bool) -> None:
    page = _page(state)
    _apply_downloads(state, view)
    if finished:  # a new model (or none): every tab rescans the folder
        from . import models

        models.refresh_everywhere(state)
        files = _rows(state).files
        if page.has_files and files:
            with contextlib.suppress(LocalChatError):
                _show_files(state, files[0][0])  # "in the folder" marks
        page.machine_line = _machine_line()


def _tell_owner(state: State, progress: DownloadProgress) -> None:
    """The tab that asked for a download hears how it ended; a new model gets selected."""
    t = app().labels
    if progress.state == "done":
        page = _page(state)
        names = list(page.model_names)
        if progress.file_name in names:
            page.selected_model = progress.file_name
            from . import models

            models.select_model(state)
        notify(state, "success", t["download_done"].format(file=progress.file_name))
    elif progress.state == "failed":
        notify(state, "error", progress.message)


def _fail(state: State, message: str) -> None:
    _page(state).hub_error = message
    notify(state, "error", message)


# --- layout -----------------------------------------------------------------------------------
def first_model_offer(render: str | bool, on_action: Any, on_starter: Any) -> None:
    """The one-click offers of a first model (inside a page being built): the starter model
    from the package index (`on_starter`, see pages/starter_offer.py) and the recommended
    Hugging Face model (`on_action` queues its download).

    `render`: the page's expression for when to show them (e.g. "{models_empty}").
    """
    t = app().labels
    with tgb.part(render=render, class_name="lc-offers", id="first_model_offer"):
        tgb.text(t["offer_title"], class_name="lc-offers-title")
        with tgb.part(class_name="lc-offer", id="starter_offer"):
            tgb.text(starter_offer.offer_line(), mode="md")
            tgb.button(t["starter_button"], id="get_starter", on_action=on_starter)
        with tgb.part(class_name="lc-offer", id="hub_offer"):
            tgb.text(_offer_line(), mode="md")
            tgb.button(t["offer_button"], id="download_recommended", on_action=on_action)


def build_section() -> None:
    """The panel (inside the models page being built; its variables are in pages.models)."""
    t = app().labels
    with tgb.part(class_name="lc-card lc-hub", id="hub_panel"):
        tgb.text(t["hub_title"], class_name="lc-card-title")
        with tgb.part(id="machine_line"):
            tgb.text("{machine_line}", mode="md")
        with tgb.part(render="{dl_count > 0}", class_name="lc-downloads", id="downloads"):
            tgb.text(t["downloads_title"], class_name="lc-hub-subtitle")
            for slot in range(SLOTS):
                with tgb.part(render=f"{{dl_count > {slot}}}", class_name="lc-download"):
                    with tgb.layout("1fr auto", class_name="lc-download-head"):
                        tgb.text(f"{{dl_title[{slot}]}}", class_name="lc-download-title")
                        tgb.button(
                            t["cancel"],
                            id=f"dl_cancel_{slot}",
                            on_action=hub_cancel_download,
                            active=f"{{dl_open[{slot}]}}",
                        )
                    tgb.progress(f"{{dl_pct[{slot}]}}", linear=True, id=f"dl_bar_{slot}")
                    tgb.text(f"{{dl_line[{slot}]}}", id=f"dl_line_{slot}", class_name="lc-dl-line")
        tgb.text(t["catalog_title"], class_name="lc-hub-subtitle")
        tgb.table(
            "{catalog_table}",
            id="catalog_table",
            show_all=True,
            height="auto",
            on_action=hub_pick_file,
            row_class_name=hub_fit_class,
            class_name="lc-model-table lc-hub-table",
        )
        tgb.text(t["search_title"], class_name="lc-hub-subtitle")
        with tgb.layout("1fr auto", class_name="lc-load-bar"):
            tgb.input(
                "{hub_query}",
                label=t["search_hint"],
                id="hub_query",
                on_action=hub_search,
                class_name="fullwidth",
            )
            tgb.button(t["search"], id="hub_search", on_action=hub_search)
        with tgb.part(render="{has_results}", id="hub_results_part"):
            tgb.text("{results_line}", class_name="lc-dl-line")
            tgb.table(
                "{hub_results}",
                id="hub_results",
                show_all=True,
                height="auto",
                on_action=hub_pick_repo,
                class_name="lc-model-table lc-hub-table",
            )
        with tgb.part(render="{has_files}", id="hub_files_part"):
            with tgb.part(id="files_line"):
                tgb.text("{files_line}", mode="md")
            tgb.table(
                "{hub_files}",
                id="hub_files",
                show_all=True,
                height="auto",
                on_action=hub_pick_file,
                row_class_name=hub_fit_class,
                class_name="lc-model-table lc-hub-table",
            )
        with tgb.part(render="{chosen_file != ''}", class_name="lc-pick", id="pick"):
            with tgb.layout("1fr auto", class_name="lc-load-bar"):
                with tgb.part(id="chosen_line"):
                    tgb.text("{chosen_line}", mode="md")
                tgb.button(t["download"], id="hub_download", on_action=hub_download)
            with tgb.part(render="{confirm_big}", class_name="lc-error", id="confirm_big"):
                tgb.text(t["confirm_big"])
                with tgb.layout("auto auto 1fr", class_name="lc-confirm-bar"):
                    tgb.button(
                        t["download_anyway"], id="download_anyway", on_action=hub_download_anyway
                    )
                    tgb.button(t["cancel"], id="confirm_cancel", on_action=hub_cancel_confirm)
        with tgb.part(render="{hub_error != ''}", class_name="lc-error"):
            tgb.text("{hub_error}", id="hub_error")


def hub_fit_class(state: State, index: int, row: Any) -> str:
    t = app().labels
    verdict = str(row.get(t["col_fit"], ""))
    if verdict == t["in_folder"]:
        return "lc-fit-here"
    for key in ("does_not_fit", "tight", "fits"):
        if verdict.startswith(t[f"fit_{key}"]):
            return f"lc-fit-{key}" + (" lc-fit-nodisk" if t["fit_no_disk"] in verdict else "")
    return ""


# Scoped to the models page (Taipy adds it with the page).
STYLE: dict[str, dict[str, Any]] = {
    ".lc-hub": {"margin-top": "1rem"},
    ".lc-hub-subtitle": {
        "display": "block",
        "font-weight": "700",
        "margin": "1rem 0 0.4rem",
        "opacity": "0.9",
    },
    ".lc-hub-table td:first-child": {"font-weight": "700", "color": "var(--lc-red)"},
    ".lc-hub-table tr td:last-child": {"font-weight": "600"},
    ".lc-hub-table tr.lc-fit-fits td:last-child": {"color": "#2fa35f"},
    ".lc-hub-table tr.lc-fit-tight td:last-child": {"color": "#d38b00"},
    ".lc-hub-table tr.lc-fit-does_not_fit td:last-child": {"color": "var(--lc-red)"},
    ".lc-hub-table tr.lc-fit-nodisk td:last-child": {"color": "var(--lc-red)"},
    ".lc-hub-table tr.lc-fit-here td:last-child": {"opacity": "0.7", "font-style": "italic"},
    ".lc-hub-table tbody tr": {"cursor": "pointer"},
    ".lc-downloads": {"margin-top": "0.5rem"},
    ".lc-download": {
        "border": "1px solid var(--lc-muted)",
        "border-radius": "8px",
        "padding": "0.5rem 0.75rem",
        "margin-bottom": "0.5rem",
    },
    ".lc-download-head": {"align-items": "center", "gap": "0.5rem !important"},
    ".lc-download-title": {"font-weight": "700", "overflow-wrap": "anywhere"},
    ".lc-download .MuiLinearProgress-root": {"height": "8px", "border-radius": "4px"},
    ".lc-dl-line": {"display": "block", "font-size": "0.9rem", "opacity": "0.85"},
    ".lc-pick": {
        "margin-top": "0.75rem",
        "padding": "0.5rem 0.75rem",
        "border-left": "4px solid var(--lc-red)",
        "background": "rgba(127, 127, 127, 0.08)",
    },
    ".lc-pick p": {"margin": "0"},
    ".lc-confirm-bar": {"gap": "0.5rem !important", "margin-top": "0.5rem"},
}
