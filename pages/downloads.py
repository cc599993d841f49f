"""The "Get models" page, shown inside the models page: catalog, Hub search, verdicts, downloads.

- The curated catalog (recommended first model marked) and a Hub search; a repository's `.gguf`
  files with size, quantization, RAM needed and the fits / tight / does-not-fit verdict for this
  machine. A file that does not fit needs a second click ("Download anyway").
- The app's one download queue (`AppContext.downloads`, one download at a time) shows its jobs
  in every tab: its progress events reach every tab through `Gui.broadcast_callback`, at most
  `PUSHES_PER_SECOND` a second (changes of state always). How a download ends reaches the tab
  that asked, and a new model every tab, through pages/model_actions.py.

Its own Taipy page ("downloads"), so its variables live here beside its callbacks; the models
page embeds it (`tgb.part(page="downloads")`).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import taipy.gui.builder as tgb
from taipy.gui import Gui, State

from llm.catalog import default_catalog
from llm.errors import LocalChatError
from llm.fit import Fit, hub_file_fit, machine_status
from llm.gguf_file import human_size
from llm.hub import (
    DownloadProgress,
    HubError,
    list_gguf_files,
    search_models,
)
from web.context import app
from web.per_tab import PerTab

from . import model_actions, refresh
from .wording import coded_text, error_text

SLOTS = 4  # downloads shown at once (unfinished first, then the latest finished)
PUSHES_PER_SECOND = 4  # progress updates sent to the tabs while a download runs
SEARCH_LIMIT = 20

# Page variables: module-level defaults that `init_state` replaces for every tab.
machine_line = ""
catalog_table: Any = pd.DataFrame()
hub_query = ""
hub_results: Any = pd.DataFrame()
has_results = False
results_line = ""
hub_files: Any = pd.DataFrame()
has_files = False
files_line = ""
chosen_repo = ""
chosen_file = ""
chosen_fit = ""  # fits | tight | does_not_fit | no_disk
chosen_line = ""
confirm_big = False
hub_error = ""
dl_count = 0  # download slots in use
dl_title: list[str] = [""] * SLOTS
dl_pct: list[float] = [0.0] * SLOTS
dl_line: list[str] = [""] * SLOTS
dl_open: list[bool] = [False] * SLOTS
dl_kind: list[str] = [""] * SLOTS  # "running", "failed", "ended" (done or cancelled), ""

_FRAME = inspect.currentframe()  # binds the page to this module's variables
_lock = threading.Lock()
_last_push = 0.0
_last_states: dict[str, str] = {}


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


# --- initial state ----------------------------------------------------------------------------
def init_state(state: State) -> None:
    """Fill the page for a new tab: machine line, catalog, current downloads."""
    state.machine_line = _machine_line()
    state.catalog_table, _rows(state).catalog = _catalog_table()
    # Tables take their columns from their first value: give them the right ones, empty.
    t = app().labels
    state.hub_results = pd.DataFrame(columns=[t[k] for k in _RESULT_COLUMNS])
    state.hub_files = pd.DataFrame(columns=[t[k] for k in _FILE_COLUMNS])
    _apply_downloads(state, _downloads_view())


def watch(gui: Gui) -> None:
    """Show the download queue's progress in every tab (once, at start-up)."""
    app().downloads.subscribe(lambda progress: _on_progress(gui, progress))


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
        repo_id, file_name, size, machine, n_ctx=ctx.config.n_ctx, catalog=default_catalog()
    )


def _catalog_table() -> tuple[pd.DataFrame, list[list[Any]]]:
    t = app().labels
    rows, keys = [], []
    for entry in default_catalog().entries:
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


# --- search and listing -----------------------------------------------------------------------
_RESULT_COLUMNS = ("col_repo", "col_downloads", "col_likes", "col_access")
_FILE_COLUMNS = ("col_file", "col_quant", "col_size", "col_ram", "col_fit")


def hub_search(state: State, var_name: str = "", payload: dict[str, Any] | None = None) -> None:
    """Search button (or Enter): GGUF repositories, or the files of an `owner/name` typed in."""
    args = payload.get("args") if isinstance(payload, dict) else None
    # Enter in the box carries the text itself (the bound value may lag by the change delay).
    typed = args[2] if isinstance(args, list) and len(args) > 2 else state.hub_query
    query = typed.strip() if isinstance(typed, str) else ""
    state.hub_query = query
    state.hub_error = ""
    state.confirm_big = False
    try:
        if "/" in query:  # a repository id: go straight to its files
            _show_files(state, query)
            return
        found = search_models(query, limit=SEARCH_LIMIT)
    except LocalChatError as exc:
        _fail(state, error_text(exc, app().labels))
        return
    t = app().labels
    state.hub_results = pd.DataFrame(
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
    state.has_results = True
    state.results_line = t["results_line"].format(n=len(found), query=query or "*")


def hub_pick_repo(state: State, var_name: str, payload: dict[str, Any]) -> None:
    """A click on a search result: list that repository's GGUF files."""
    index = payload.get("index") if isinstance(payload, dict) else None
    ids = _rows(state).repos
    if not isinstance(index, int) or not 0 <= index < len(ids):
        return
    state.hub_error = ""
    try:
        _show_files(state, ids[index])
    except LocalChatError as exc:
        _fail(state, error_text(exc, app().labels))


def _show_files(state: State, repo_id: str) -> None:
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
    state.hub_files = pd.DataFrame(rows, columns=[t[k] for k in _FILE_COLUMNS])
    _rows(state).files = keys
    state.has_files = True
    gated = f" · {t['gated']}" if listing.gated else ""
    state.files_line = t["files_line"].format(repo=listing.repo_id, n=len(keys)) + gated
    if len(keys) == 1:  # nothing to choose: select it
        _select(state, *keys[0])


def hub_pick_file(state: State, var_name: str, payload: dict[str, Any]) -> None:
    """A click on a file (or catalog) row: select it for Download."""
    index = payload.get("index") if isinstance(payload, dict) else None
    rows = _rows(state)
    keys = rows.catalog if var_name == "catalog_table" else rows.files
    if isinstance(index, int) and 0 <= index < len(keys):
        _select(state, *keys[index])


def _select(state: State, repo_id: str, file_name: str, size: int) -> None:
    t = app().labels
    fit = _fit(repo_id, file_name, size)
    state.chosen_repo = repo_id
    state.chosen_file = file_name
    state.chosen_fit = fit.ram if fit.disk_ok else "no_disk"
    state.confirm_big = False
    state.chosen_line = t["pick_line"].format(
        file=file_name.rsplit("/", 1)[-1], repo=repo_id, size=human_size(size), fit=fit.message
    )


# --- downloads --------------------------------------------------------------------------------
def hub_download(state: State, *_: Any) -> None:
    """Download button: queue the selected file (a file that does not fit asks first)."""
    if not state.chosen_file:
        return
    if state.chosen_fit in ("does_not_fit", "no_disk") and not state.confirm_big:
        state.confirm_big = True  # the warning shows, with "Download anyway"
        return
    state.confirm_big = False
    _queue_download(state, state.chosen_repo, state.chosen_file)


def hub_download_anyway(state: State, *_: Any) -> None:
    """ "Download anyway" after the warning."""
    state.confirm_big = False
    _queue_download(state, state.chosen_repo, state.chosen_file)


def hub_cancel_confirm(state: State, *_: Any) -> None:
    state.confirm_big = False


def _queue_download(state: State, repo_id: str, file_name: str) -> None:
    if model_actions.download_model(state, repo_id, file_name):
        _apply_downloads(state, _downloads_view())


def hub_cancel_download(state: State, button_id: str, *_: Any) -> None:
    """A slot's Cancel button (`dl_cancel_<slot>`): stop that download, delete its part."""
    try:
        slot = int(str(button_id).rsplit("_", 1)[-1])
        job_id = _rows(state).downloads[slot]
    except (ValueError, IndexError):
        return
    if job_id:
        try:
            app().downloads.cancel(job_id)
        except HubError as exc:
            _fail(state, error_text(exc, app().labels))


def hub_retry_download(state: State, button_id: str, *_: Any) -> None:
    """A failed slot's Retry button (`dl_retry_<slot>`): queue that download again."""
    job_id = _slot_job(state, button_id)
    if job_id:
        try:
            app().downloads.retry(job_id)
        except HubError as exc:
            _fail(state, error_text(exc, app().labels))


def hub_dismiss_download(state: State, button_id: str, *_: Any) -> None:
    """A finished slot's Dismiss button (`dl_dismiss_<slot>`): take it off the list."""
    job_id = _slot_job(state, button_id)
    if job_id and app().downloads.dismiss(job_id):
        app().gui.broadcast_callback(_show_downloads, [False])  # type: ignore[union-attr]


def _slot_job(state: State, button_id: str) -> str:
    """The job a slot's button acts on: the slot is in the button's id, the job in what the
    server showed this tab (a client can send any id)."""
    try:
        slot = int(str(button_id).rsplit("_", 1)[-1])
        return _rows(state).downloads[slot] if slot >= 0 else ""
    except (ValueError, IndexError):
        return ""


def _downloads_view() -> dict[str, list[Any]]:
    """What the download slots show (padded to SLOTS), in the current tab's language."""
    t = app().labels
    jobs = app().downloads.jobs()
    running = [j for j in jobs if not j.finished]
    finished = [j for j in jobs if j.finished][::-1]
    shown = (running + finished)[:SLOTS]
    view: dict[str, list[Any]] = {
        "ids": [],
        "title": [],
        "pct": [],
        "line": [],
        "open": [],
        "kind": [],
    }
    for job in shown:
        view["ids"].append(job.job_id)
        view["title"].append(f"{job.file_name} · {job.repo_id}")
        view["pct"].append(round(job.percent, 1) if job.state != "done" else 100.0)
        view["line"].append(_progress_line(job, t))
        view["open"].append(not job.finished)
        # running: Cancel and a bar; failed: Retry and Dismiss; done or cancelled: Dismiss
        view["kind"].append(
            "running" if not job.finished else "failed" if job.state == "failed" else "ended"
        )
    empties = (("ids", ""), ("title", ""), ("pct", 0.0), ("line", ""), ("open", False))
    for _ in range(SLOTS - len(shown)):
        for key, empty in (*empties, ("kind", "")):
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
        error = coded_text(job.error_code, {}, job.message or "?", t) if job.error_code else ""
        return t["dl_failed"].format(error=error or job.message or "?")
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
    _rows(state).downloads = view["ids"]
    state.dl_title = view["title"]
    state.dl_pct = view["pct"]
    state.dl_line = view["line"]
    state.dl_open = view["open"]
    state.dl_kind = view["kind"]
    state.dl_count = view["count"][0]


def _on_progress(gui: Gui, progress: DownloadProgress) -> None:
    """Download thread: send the slots to every tab, at most PUSHES_PER_SECOND a second
    (changes of state always)."""
    global _last_push
    now = time.monotonic()
    with _lock:
        changed = _last_states.get(progress.job_id) != progress.state
        _last_states[progress.job_id] = progress.state
        if not changed and now - _last_push < 1.0 / PUSHES_PER_SECOND:
            return
        _last_push = now
    gui.broadcast_callback(_show_downloads, [progress.finished])


def _show_downloads(state: State, finished: bool) -> None:
    _apply_downloads(state, _downloads_view())  # in each tab: its language
    if finished:  # the disk's free space changed, and maybe a file's "in the folder" mark
        state.machine_line = _machine_line()


def _models_changed(state: State) -> None:
    files = _rows(state).files
    if state.has_files and files:
        with contextlib.suppress(LocalChatError):
            _show_files(state, files[0][0])  # "in the folder" marks


refresh.subscribe(refresh.MODELS, _models_changed)


def _fail(state: State, message: str) -> None:
    state.hub_error = message  # shown under the search box (a toast would cover the page)


# --- layout -----------------------------------------------------------------------------------
def build_page() -> tgb.Page:
    """The page, labelled in the configured language."""
    t = app().labels
    with (
        tgb.Page(frame=_FRAME) as page,
        tgb.part(class_name="lc-card lc-hub", id="hub_panel"),
    ):
        tgb.text(t["hub_title"], class_name="lc-card-title")
        with tgb.part(id="machine_line"):
            tgb.text("{machine_line}", mode="md")
        _download_rows(t)
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
                change_delay=0,  # typed then Search clicked at once: the button finds the text
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
    return page


def _download_rows(t: Any) -> None:
    """A row per download slot: title, Cancel, progress bar and line."""
    with tgb.part(render="{dl_count > 0}", class_name="lc-downloads", id="downloads"):
        tgb.text(t["downloads_title"], class_name="lc-hub-subtitle")
        for slot in range(SLOTS):
            with tgb.part(render=f"{{dl_count > {slot}}}", class_name="lc-download"):
                with tgb.layout("1fr auto", class_name="lc-download-head"):
                    tgb.text(f"{{dl_title[{slot}]}}", class_name="lc-download-title")
                    with tgb.part(class_name="lc-download-actions"):
                        _slot_button(t["cancel"], "cancel", slot, "running", hub_cancel_download)
                        _slot_button(t["dl_retry"], "retry", slot, "failed", hub_retry_download)
                        with tgb.part(render=f"{{dl_kind[{slot}] != 'running'}}"):
                            tgb.button(
                                t["dl_dismiss"],
                                id=f"dl_dismiss_{slot}",
                                on_action=hub_dismiss_download,
                            )
                # A bar only while it runs (or once done): a failed one says why instead.
                with tgb.part(render=f"{{dl_kind[{slot}] != 'failed'}}"):
                    tgb.progress(f"{{dl_pct[{slot}]}}", linear=True, id=f"dl_bar_{slot}")
                tgb.text(
                    f"{{dl_line[{slot}]}}",
                    id=f"dl_line_{slot}",
                    class_name=f"lc-dl-line lc-dl-{{dl_kind[{slot}]}}",
                )


def _slot_button(label: str, action: str, slot: int, kind: str, on_action: Any) -> None:
    with tgb.part(render=f"{{dl_kind[{slot}] == '{kind}'}}"):
        tgb.button(label, id=f"dl_{action}_{slot}", on_action=on_action)


def hub_fit_class(state: State, index: int, row: Any) -> str:
    t = app().labels
    verdict = str(row.get(t["col_fit"], ""))
    if verdict == t["in_folder"]:
        return "lc-fit-here"
    for key in ("does_not_fit", "tight", "fits"):
        if verdict.startswith(t[f"fit_{key}"]):
            return f"lc-fit-{key}" + (" lc-fit-nodisk" if t["fit_no_disk"] in verdict else "")
    return ""
