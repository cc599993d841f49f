"""The documents page (`/documents`): collections of files the chat can answer from.

A collection is made here, given files by upload (`file_selector`, several at once, bounded by
web/uploads.py) or folders by path, and indexed in the background by the app's one
`IndexingService` (`AppContext.indexing`: a helper process that pauses while a reply streams).
Its progress — files, passages, time left — is read from the documents database, so a reloaded
tab or another tab shows the same bar; while any collection is indexing, `watch` pushes it to
every tab once a second. Cancel stops at the next batch (what is indexed stays), Remove asks
first. The files table lists each file with its state, and the reason a skipped file was
skipped.

Every bound variable is input from whoever holds the tab (docs/SECURITY.md): the collection a
tab works on is kept by the server (`_DocsTab`), names and folder paths are checked by the
library (`Library.add_typed_paths` holds the rule for paths typed here), and an embedder must be
one the server offered to this tab.
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
from taipy.gui import Gui, State, get_state_id, notify

from llm.documents import DEFAULT_EMBEDDER, CollectionInfo, PathRefusedError
from llm.documents.library import UPLOADS_FOLDER
from llm.documents.loaders import READERS
from llm.errors import LocalChatError
from llm.model_files import model_paths
from web.context import app
from web.per_tab import PerTab
from web.uploads import UploadError, take_upload

from . import refresh

PUSH_EVERY_S = 1.0  # progress sent to the tabs while a collection is indexing
MAX_PATH_CHARS = 4096
MAX_UPLOADS = 100  # files taken from one upload action
EXTENSIONS = ",".join(sorted(READERS))

# Page variables: module-level defaults that `init_state` replaces for every tab.
doc_lov: list[tuple[str, str]] = []  # (name, "name · state · counts")
doc_selected = ""  # shown only: the tab's collection is kept by the server
has_collection = False
new_name = ""
new_embedder = DEFAULT_EMBEDDER
embedder_lov: list[tuple[str, str]] = []
doc_embedder = DEFAULT_EMBEDDER  # the selected collection's embedder (a choice to apply)
doc_info = ""  # markdown: embedder, folders
doc_pct = 0.0
doc_line = ""  # files, passages, time left
doc_running = False
upload_paths: Any = ""  # where Taipy wrote the uploads (checked by take_upload)
folder_path = ""
doc_files: Any = pd.DataFrame()
doc_error = ""
confirm_remove = False
remove_question = ""

_FRAME = inspect.currentframe()  # binds the page to this module's variables


@dataclass
class _DocsTab:
    """What the server keeps for a tab: the collection it works on and the embedders it was
    offered (a client can set the bound variables to anything)."""

    selected: str = ""
    embedders: list[str] = field(default_factory=lambda: [DEFAULT_EMBEDDER])
    files_shown: list[list[Any]] | None = None  # the files table's rows last sent


_tab = PerTab(_DocsTab)


# --- what the page shows -----------------------------------------------------------------------
def init_state(state: State) -> None:
    """Fill the page for a new (or reloaded) tab from the library."""
    state.new_name = ""
    state.folder_path = ""
    state.upload_paths = ""
    state.doc_error = ""
    state.confirm_remove = False
    infos = _collections()
    tab = _tab.reset(state)
    _show_embedders(state)
    # A reloaded tab shows the collection being indexed, if one is, with its progress.
    running = [i.name for i in infos if i.state == "running"]
    tab.selected = (running or [i.name for i in infos] or [""])[0]
    # A table takes its columns from its first value: give it the right ones, maybe empty.
    _show_files(state, tab.selected)
    _show(state, infos)


def _collections() -> list[CollectionInfo]:
    try:
        return app().library.collections()
    except LocalChatError:
        return []


def _show_embedders(state: State) -> None:
    """Offer WordLlama, every GGUF file of the models folder and each backend's default
    model (the server keeps the list: only these are accepted)."""
    ctx = app()
    t = ctx.labels
    options = [(DEFAULT_EMBEDDER, t["docs_embedder_default"])]
    options += [
        (f"gguf:{path.name}", t["docs_embedder_gguf"].format(file=path.name))
        for path in model_paths(ctx.config.models_dir)
    ]
    options += [
        (f"remote:{b.name}/{b.default_model}", f"{b.default_model} · {b.name}")
        for b in ctx.config.backends
        if b.default_model
    ]
    _tab(state).embedders = [spec for spec, _ in options]
    state.embedder_lov = options
    state.new_embedder = DEFAULT_EMBEDDER


refresh.subscribe(refresh.MODELS, _show_embedders)  # a model was downloaded or removed


def _state_word(info: CollectionInfo) -> str:
    t = app().labels
    return t.get(f"docs_state_{info.state}", info.state)


def _lov(infos: list[CollectionInfo]) -> list[tuple[str, str]]:
    t = app().labels
    return [
        (
            i.name,
            t["docs_lov_line"].format(
                name=i.name, state=_state_word(i), files=i.files_indexed, chunks=i.chunks
            ),
        )
        for i in infos
    ]


def _progress(info: CollectionInfo) -> tuple[float, str]:
    """The bar's percentage and its line: files, passages, time left (or how it ended)."""
    t = app().labels
    p = info.progress
    if p.state == "idle":
        return 0.0, t["docs_never_indexed"]
    parts = [
        t["docs_files_of"].format(done=p.files_done, total=p.files_total),
        t["docs_passages"].format(n=p.chunks_done),
    ]
    if p.state == "running":
        if p.seconds_left is not None:
            parts.append(t["docs_left"].format(time=_duration(p.seconds_left)))
        if p.current:
            parts.append(p.current.rsplit("/", 1)[-1])
    else:
        parts.append(_state_word(info))
    if p.error:
        parts.append(p.error)
    return round(100.0 * p.fraction, 1), " · ".join(parts)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return (
        f"{minutes} min {seconds:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60} min"
    )


def _files_table(name: str) -> pd.DataFrame:
    t = app().labels
    columns = [t["docs_col_file"], t["docs_col_state"], t["docs_col_passages"], t["docs_col_note"]]
    rows = []
    if name:
        with contextlib.suppress(LocalChatError):
            records = app().library.files(name)
            # Skipped files first (with why), then those still to do, then the indexed ones.
            order = {"failed": 0, "pending": 1}
            records.sort(key=lambda r: (order.get(r.status, 2), r.path))
            for record in records:
                rows.append(
                    [
                        record.path.rsplit("/", 1)[-1],
                        t.get(f"docs_file_{record.status}", record.status),
                        record.chunk_count,
                        record.error or record.note,
                    ]
                )
    return pd.DataFrame(rows, columns=columns)


def _set(state: State, name: str, value: Any) -> None:
    """Assign only what changed: every assignment re-renders the page in the browser."""
    if getattr(state, name) != value:
        setattr(state, name, value)


def _show(state: State, infos: list[CollectionInfo] | None = None, *, files: bool = True) -> None:
    """Show the collections and the tab's collection (a removed one: the first, or none)."""
    t = app().labels
    infos = _collections() if infos is None else infos
    tab = _tab(state)
    by_name = {i.name: i for i in infos}
    if tab.selected not in by_name:
        tab.selected = infos[0].name if infos else ""
    lov = _lov(infos)
    if [tuple(row) for row in state.doc_lov or []] != lov:
        state.doc_lov = lov
    info = by_name.get(tab.selected)
    _set(state, "doc_selected", tab.selected)
    _set(state, "has_collection", info is not None)
    if info is None:
        _set(state, "doc_running", False)
        return
    pct, line = _progress(info)
    folders = ", ".join(_folder_label(p) for p in info.paths) or t["docs_no_folders"]
    _set(
        state,
        "doc_info",
        t["docs_info"].format(
            embedder=info.embedder,
            files=info.files_indexed,
            failed=info.files_failed,
            pending=info.files_pending,
            chunks=info.chunks,
            folders=folders,
        ),
    )
    _set(state, "doc_pct", pct)
    _set(state, "doc_line", line)
    _set(state, "doc_running", info.state == "running")
    if files:
        _show_files(state, info.name)
        _set(state, "doc_embedder", info.embedder)


def _show_files(state: State, name: str) -> None:
    """Send the files table when its rows changed (not at every push of the progress)."""
    table = _files_table(name)
    rows = table.values.tolist()
    tab = _tab(state)
    if rows != tab.files_shown:
        tab.files_shown = rows
        state.doc_files = table


def _typed(payload: Any, bound: Any) -> str:
    """The text Enter handed over (the input's own change may not have arrived yet), else the
    bound value; anything but text (a client can send anything) counts as empty."""
    args = payload.get("args") if isinstance(payload, dict) else None
    given = args[2] if isinstance(args, list) and len(args) > 2 else None
    value = bound if given is None else given
    return value.strip() if isinstance(value, str) else ""


def _folder_label(path: str) -> str:
    """A folder of a collection as the page names it (uploads by what they are)."""
    uploads = app().config.data_dir.resolve() / UPLOADS_FOLDER
    if Path(path).parent == uploads:
        return app().labels["docs_uploads_folder"]
    return "`" + path.replace("`", "'") + "`"


def _fail(state: State, message: str) -> None:
    state.doc_error = message
    notify(state, "error", message)


def _ok(state: State, message: str) -> None:
    _set(state, "doc_error", "")
    notify(state, "success", message)


def _changed(state: State) -> None:
    """The collections changed: this page here, the chat pages' choices in every tab."""
    _show(state)
    gui = app().gui
    if gui is not None:
        refresh.publish_everywhere(gui, refresh.DOCUMENTS)


# --- callbacks ---------------------------------------------------------------------------------
def choose_collection(state: State, var_name: str, value: Any) -> None:
    """A click in the collections list: work on that collection."""
    names = [i.name for i in _collections()]
    if isinstance(value, str) and value in names:
        _tab(state).selected = value
        _set(state, "doc_error", "")
    _show(state)


def create_collection(state: State, var_name: str = "", payload: Any = None) -> None:
    """Create button (or Enter in the name): a new, empty collection, then selected."""
    ctx = app()
    t = ctx.labels
    name = _typed(payload, state.new_name)
    spec = state.new_embedder
    if spec not in _tab(state).embedders:
        spec = DEFAULT_EMBEDDER
    try:
        info = ctx.library.create(name, embedder=spec)
    except LocalChatError as exc:
        notify(state, "error", t["docs_create_failed"].format(error=exc))
        return
    _tab(state).selected = info.name
    state.new_name = ""
    _ok(state, t["docs_created"].format(name=info.name))
    _changed(state)


def _start(state: State, name: str) -> None:
    app().indexing.start(name)
    _show(state)
    watch_now()


def upload_files(state: State) -> None:
    """Files were uploaded: keep each (bounded, checked) in the collection and index it.

    The paths come from a page variable any client can set: only files this tab's own upload
    wrote into the app's uploads folder are read (`take_upload`), and then deleted."""
    ctx = app()
    t = ctx.labels
    values = state.upload_paths
    state.upload_paths = ""  # a new value: Taipy appends the next upload's paths to a list
    paths = [v for v in (values if isinstance(values, list) else [values]) if v != ""]
    name = _tab(state).selected
    if not name:
        for value in paths[:MAX_UPLOADS]:  # the uploads are not kept
            with contextlib.suppress(UploadError):
                take_upload(get_state_id(state) or "", value)
        _fail(state, t["docs_choose_first"])
        return
    added, problems = [], []
    for value in paths[:MAX_UPLOADS]:
        try:
            file_name, data = take_upload(get_state_id(state) or "", value)
            added.append(ctx.library.add_upload(name, file_name, data).name)
        except (UploadError, LocalChatError) as exc:
            problems.append(str(exc))
    if problems:
        _fail(state, t["docs_upload_failed"].format(errors="; ".join(problems)))
    if added:
        if not problems:
            _ok(state, t["docs_uploaded"].format(files=", ".join(added), name=name))
        _start(state, name)
        _changed(state)


def add_folder(state: State, var_name: str = "", payload: Any = None) -> None:
    """Add button (or Enter in the path): add that folder or file, then index.

    The path is text from whoever holds the page: `Library.add_typed_paths` accepts any
    folder but LocalChat's own when only this machine reaches the app, else only one under
    `[documents] roots`. A refused path changes nothing."""
    ctx = app()
    t = ctx.labels
    name = _tab(state).selected
    given = _typed(payload, state.folder_path)
    if not name:
        _fail(state, t["docs_choose_first"])
        return
    if not given or len(given) > MAX_PATH_CHARS or "\0" in given:
        _fail(state, t["docs_path_bad"])
        return
    try:
        ctx.library.add_typed_paths(
            name, [given], reachable_from_others=ctx.reachable_from_others()
        )
    except PathRefusedError as exc:
        _fail(state, _refusal(exc))
        return
    except LocalChatError as exc:
        _fail(state, str(exc))
        return
    state.folder_path = ""
    _ok(state, t["docs_folder_added"].format(path=given, name=name))
    _start(state, name)
    _changed(state)


def _refusal(exc: PathRefusedError) -> str:
    """Why a typed path was refused, in the page's language."""
    t = app().labels
    key = f"docs_refused_{exc.reason}"
    return t[key].format(path=exc.path) if key in t else str(exc)


def index_now(state: State) -> None:
    """Index button: bring the collection up to date (only changed files are read)."""
    name = _tab(state).selected
    if name:
        _start(state, name)


def cancel_indexing(state: State) -> None:
    """Cancel button: stop at the next batch; what is indexed stays, Index carries on."""
    name = _tab(state).selected
    if name:
        app().indexing.cancel(name)
        notify(state, "info", app().labels["docs_cancelling"])


def apply_embedder(state: State) -> None:
    """Use the chosen embedder for the collection: its vectors are made again."""
    ctx = app()
    t = ctx.labels
    name, spec = _tab(state).selected, state.doc_embedder
    if not name or spec not in _tab(state).embedders:
        _fail(state, t["docs_embedder_unknown"])
        return
    try:
        ctx.library.set_embedder(name, spec)
    except LocalChatError as exc:
        _fail(state, str(exc))
        return
    _ok(state, t["docs_embedder_set"].format(name=name, embedder=spec))
    _start(state, name)


def ask_remove(state: State) -> None:
    """Remove button: ask first."""
    name = _tab(state).selected
    if name:
        state.remove_question = app().labels["docs_remove_question"].format(name=name)
        state.confirm_remove = True


def remove_answer(state: State, var_name: str, payload: Any) -> None:
    """The confirmation: button 0 removes the collection and its index (files stay)."""
    state.confirm_remove = False
    args = payload.get("args") if isinstance(payload, dict) else None
    name = _tab(state).selected
    if not isinstance(args, list) or not args or args[0] != 0 or not name:
        return
    ctx = app()
    ctx.indexing.cancel(name)
    ctx.indexing.wait(name, timeout=10.0)
    try:
        ctx.library.remove(name)
    except LocalChatError as exc:
        _fail(state, str(exc))
        return
    _ok(state, ctx.labels["docs_removed"].format(name=name))
    _changed(state)


# --- progress in every tab ---------------------------------------------------------------------
_wake = threading.Event()


def watch(gui: Gui) -> None:
    """Push indexing progress to every tab while a collection indexes (once, at start-up)."""

    def loop() -> None:
        was_running = False
        while True:
            _wake.wait(PUSH_EVERY_S)
            _wake.clear()
            try:
                running = bool(app().indexing.running())
            except RuntimeError:  # the app is stopping
                return
            if running or was_running:  # the last push shows how the run ended
                gui.broadcast_callback(_push)
            if was_running and not running:
                refresh.publish_everywhere(gui, refresh.DOCUMENTS)
            was_running = running

    threading.Thread(target=loop, name="documents-progress", daemon=True).start()


def watch_now() -> None:
    """Push soon (a run just started)."""
    _wake.set()


def _push(state: State) -> None:
    _show(state, files=not app().indexing.running() or _every_few_seconds())


def _every_few_seconds() -> bool:
    return int(time.monotonic()) % 5 == 0  # the files table is the costly part


# --- layout ------------------------------------------------------------------------------------
def build_page() -> tgb.Page:
    """The page, labelled in the configured language."""
    t = app().labels
    with (
        tgb.Page(frame=_FRAME) as page,
        tgb.layout("280px 1fr", columns__mobile="1", class_name="lc-docs-layout"),
    ):
        _collections_column(t)
        with tgb.part(class_name="lc-docs-main"):
            with tgb.part(render="{not has_collection}", id="docs_empty", class_name="lc-card"):
                tgb.text(t["docs_empty"], mode="md")
            with tgb.part(render="{has_collection}", id="docs_collection"):
                _collection_card(t)
                _add_card(t)
                _files_card(t)
    return page


def _collections_column(t: Any) -> None:
    with tgb.part(class_name="lc-docs-list"):
        tgb.text(t["docs_collections"], class_name="h6")
        tgb.selector(
            "{doc_selected}",
            lov="{doc_lov}",
            value_by_id=True,
            on_change=choose_collection,
            id="doc_list",
            height="40vh",
            class_name="fullwidth",
        )
        tgb.text(t["docs_new"], class_name="lc-hub-subtitle")
        tgb.input(
            "{new_name}",
            label=t["docs_name"],
            id="new_collection_name",
            on_action=create_collection,
            class_name="fullwidth",
        )
        tgb.selector(
            "{new_embedder}",
            lov="{embedder_lov}",
            value_by_id=True,
            dropdown=True,
            label=t["docs_embedder"],
            id="new_collection_embedder",
            class_name="fullwidth",
        )
        tgb.button(t["docs_create"], id="create_collection", on_action=create_collection)


def _collection_card(t: Any) -> None:
    with tgb.part(class_name="lc-card", id="doc_card"):
        tgb.text("{doc_selected}", class_name="lc-card-title", id="doc_title")
        # The buttons stay in one row on a phone too.
        with tgb.layout(
            "auto auto auto 1fr", columns__mobile="auto auto auto 1fr", class_name="lc-load-bar"
        ):
            tgb.button(
                t["docs_index"], id="index_now", on_action=index_now, active="{not doc_running}"
            )
            tgb.button(
                t["cancel"],
                id="cancel_indexing",
                on_action=cancel_indexing,
                active="{doc_running}",
            )
            tgb.button(t["docs_remove"], id="remove_collection", on_action=ask_remove)
        with tgb.part(id="doc_info"):
            tgb.text("{doc_info}", mode="md")
        tgb.progress("{doc_pct}", linear=True, show_value=True, id="doc_bar")
        tgb.text("{doc_line}", id="doc_line", class_name="lc-dl-line")
        with tgb.layout("1fr auto", class_name="lc-load-bar"):
            tgb.selector(
                "{doc_embedder}",
                lov="{embedder_lov}",
                value_by_id=True,
                dropdown=True,
                label=t["docs_embedder"],
                id="doc_embedder",
                class_name="fullwidth",
            )
            tgb.button(t["docs_apply"], id="apply_embedder", on_action=apply_embedder)
        with tgb.dialog(
            "{confirm_remove}",
            title=t["docs_remove_title"],
            labels=f"{t['docs_remove']};{t['keep']}",
            on_action=remove_answer,
            id="remove_dialog",
        ):
            tgb.text("{remove_question}")


def _add_card(t: Any) -> None:
    with tgb.part(class_name="lc-card lc-docs-add", id="doc_add"):
        tgb.text(t["docs_add"], class_name="lc-card-title")
        tgb.file_selector(
            "{upload_paths}",
            label=t["docs_upload"],
            multiple=True,
            extensions=EXTENSIONS,
            on_action=upload_files,
            notify=False,  # the page says how it went ("Uploaded" would precede a refusal)
            id="doc_upload",
            drop_message=t["docs_upload"],
        )
        with tgb.layout("1fr auto", class_name="lc-load-bar"):
            tgb.input(
                "{folder_path}",
                label=t["docs_folder"],
                id="folder_path",
                on_action=add_folder,
                class_name="fullwidth",
            )
            tgb.button(t["docs_add_folder"], id="add_folder", on_action=add_folder)
        tgb.text(t["docs_folder_hint"], class_name="lc-dl-line")
        # Why the last path or upload was refused, under the field it came from.
        with tgb.part(render="{doc_error != ''}", class_name="lc-error"):
            tgb.text("{doc_error}", id="doc_error")


def _files_card(t: Any) -> None:
    with tgb.part(class_name="lc-card", id="doc_files_card"):
        tgb.text(t["docs_files"], class_name="lc-card-title")
        tgb.table(
            "{doc_files}",
            id="doc_files",
            page_size=25,  # a folder may hold thousands of files
            page_size_options=[25, 100, 500],
            class_name="lc-model-table lc-docs-files",
        )
