"""The models page (`/models`): where models run, the models folder as a table, loading a
model, its chat format.

Loading runs in a thread (a real model takes seconds) with a visible loading state; a file that
fails keeps the previous model in use and shows the engine's reason (a model too big for the
free RAM is refused unless the user ticks the override). The chat format can be overridden per
model (remembered in the preferences file), with the exact prompt it produces.

The backend selector switches between llama.cpp on this computer and config.toml's
`[[backends]]` servers: choosing a server lists its models (its /v1/models, asked in a thread);
"Use this model" makes it answer new chats, as loading a local model does.

The "Get models" page (pages/downloads.py) and, for an empty folder, the first-model offers
(pages/first_model.py) are shown inside it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import pandas as pd
import taipy.gui.builder as tgb
from taipy.gui import State, notify

from llm.config import FORMAT_CHOICES, LOCAL_BACKEND
from llm.errors import LocalChatError
from llm.gguf_file import human_size
from llm.model_files import ModelEntry, choose_format, detect_format, resolve_model, scan_models
from llm.prompts import render_prompt
from web.context import app, in_background
from web.per_tab import PerTab

from . import model_actions, model_settings, refresh
from .wording import error_text

# Page variables: module-level defaults that `init_state` replaces for every tab.
backend_choice = LOCAL_BACKEND  # the backend whose models this tab shows
backend_lov: list[tuple[str, str]] = []
active_line = ""  # where new chats are answered
remote_models: list[str] = []  # the chosen server's models
remote_model = ""
remote_busy = False  # asking the server
remote_error = ""
ignore_memory = False  # load even if the RAM check says the model does not fit
folder_line = ""
model_table: Any = pd.DataFrame()
model_names: list[str] = []
has_models = False
selected_model = ""
loading = False
loading_line = ""
loaded_line = ""
load_error = ""
format_choice = "auto"
format_lov: list[tuple[str, str]] = []
format_title = ""
prompt_preview = ""
# The selected model's context length and threads (pages/model_settings.py).
globals().update(model_settings.PANEL_DEFAULTS)

_FRAME = inspect.currentframe()  # binds the page to this module's variables
_table_names = PerTab(list)  # the file name of each row of this tab's table (a click: an index)


def init_state(state: State) -> None:
    """Fill the page for a new tab."""
    ctx = app()
    t = ctx.labels
    state.backend_lov = [(LOCAL_BACKEND, t["backend_local"])] + [
        (b.name, t["backend_remote"].format(name=b.name, url=b.base_url))
        for b in ctx.config.backends
    ]
    state.backend_choice = ctx.engines.active.backend_name
    state.remote_models = []
    state.remote_error = ""
    state.remote_busy = False
    refresh_page(state)
    if state.backend_choice != LOCAL_BACKEND:
        _ask_for_models(state)


def refresh_page(state: State) -> None:
    """Rescan the folder and redraw everything (after a load, a rescan, a format change)."""
    ctx = app()
    t = ctx.labels
    entries = scan_models(ctx.config.models_dir)
    loaded = ctx.engines.local.loaded
    loaded_path = loaded.info.path if loaded else None
    state.folder_line = t["models_folder"].format(folder=ctx.config.models_dir)
    state.model_table = _table(entries, loaded_path)
    names = [e.file_name for e in entries]
    _table_names(state)[:] = names
    state.model_names = names
    state.has_models = bool(entries)
    if state.selected_model not in state.model_names:
        state.selected_model = (
            loaded.info.file_name
            if loaded and loaded.info.file_name in state.model_names
            else (entries[0].file_name if entries else "")
        )
    if loaded:
        state.loaded_line = t["current_model"].format(
            model=loaded.info.file_name, n_ctx=loaded.n_ctx, threads=loaded.n_threads or "?"
        )
    else:
        state.loaded_line = t["current_none"]
    remote = ctx.engines.active_remote
    if remote is not None and remote.loaded is not None:
        state.active_line = t["active_remote"].format(
            model=remote.loaded.info.id, backend=remote.backend_name
        )
    elif loaded:
        state.active_line = t["active_local"].format(model=loaded.info.file_name)
    else:
        state.active_line = t["current_none"]
    _show_format(state, entries)
    _show_model_settings(state)


def _show_model_settings(state: State, note: str = "") -> None:
    """The panel for the selected model (a page variable: checked by `panel_for`)."""
    panel = model_settings.panel_for(state.selected_model, app().labels, note=note)
    _show_panel(state, panel)


def _show_panel(state: State, panel: model_settings.Panel) -> None:
    """Put `panel` on this page (only what changed: each assignment redraws)."""
    for name, value in model_settings.fields(panel).items():
        if getattr(state, name) != value:
            setattr(state, name, value)


def model_settings_changed(state: State, var_name: str = "", value: Any = None) -> None:
    """A settings field changed: the memory that context needs, or why the value is wrong."""
    typed = (state.ms_ctx, state.ms_threads)
    panel = model_settings.panel_for(state.selected_model, app().labels, typed=typed)
    _show_panel(state, panel)


def _save_typed(state: State) -> str:
    """Save the fields' values for the selected model if they changed; "" or why not.
    Without a panel for it (a file that cannot be read), nothing: Load then says why."""
    t = app().labels
    model = state.selected_model
    if not model or state.ms_model != model:
        return ""
    try:
        saved = model_settings.saved_settings(model_settings.model_info(model))
        typed = model_settings.check(model, state.ms_ctx, state.ms_threads)
        if typed != saved:
            model_settings.save(model, typed.n_ctx, typed.n_threads)
            _show_model_settings(state, model_settings.saved_note(str(model), typed, t))
    except LocalChatError as exc:
        return error_text(exc, t)
    return ""


def save_model_settings(state: State) -> None:
    """Save: remember the fields' values for the selected model (checked; a bad one changes
    nothing). It loads with them next time (Load, or Reload when it is loaded now)."""
    error = _save_typed(state)
    if error:
        state.ms_error = error


def reset_model_settings(state: State) -> None:
    """Defaults: forget the values chosen for the selected model (config.toml's apply)."""
    t = app().labels
    try:
        model_settings.reset(state.selected_model)
    except LocalChatError as exc:
        state.ms_error = error_text(exc, t)
        return
    _show_model_settings(state, t["ms_reset_done"].format(model=state.selected_model))


def reload_model(state: State) -> None:
    """Reload to apply: the selected model, loaded now, loads again with its settings."""
    load_model(state)


_COLUMNS = (
    "col_file",
    "col_name",
    "col_arch",
    "col_params",
    "col_quant",
    "col_size",
    "col_context",
    "col_format",
    "col_status",
)


def _table(entries: list[ModelEntry], loaded_path: str | None) -> pd.DataFrame:
    t = app().labels
    rows = []
    for e in entries:
        info = e.info
        status = e.error or (t["status_loaded"] if e.path == loaded_path else t["status_ok"])
        rows.append(
            {
                t["col_file"]: e.file_name,
                t["col_name"]: info.name if info else "",
                t["col_arch"]: info.architecture if info else "",
                t["col_params"]: _count(info.parameter_count) if info else "",
                t["col_quant"]: info.file_type if info else "",
                t["col_size"]: human_size(e.size_bytes),
                t["col_context"]: f"{info.context_length:,}" if info else "",
                t["col_format"]: e.chat_format,
                t["col_status"]: status,
            }
        )
    return pd.DataFrame(rows, columns=[t[key] for key in _COLUMNS])


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _show_format(state: State, entries: list[ModelEntry] | None = None) -> None:
    """The format choice for the selected model and the exact prompt it gives."""
    ctx = app()
    t = ctx.labels
    name = state.selected_model
    if entries is None:
        entries = scan_models(ctx.config.models_dir)
    info = next((e.info for e in entries if e.file_name == name), None)
    if info is None:
        state.format_title = ""
        state.format_lov = []
        state.prompt_preview = ""
        return
    detected = detect_format(info)
    auto_label = t["format_auto"].format(
        detected=t["format_gguf"] if detected == "gguf" else detected
    )
    state.format_lov = [("auto", auto_label), *((f, f) for f in FORMAT_CHOICES if f != "auto")]
    choice = ctx.engines.chosen_format(name)
    state.format_choice = choice
    state.format_title = t["format_for"].format(model=name)
    # A model's own template is code from its file and may take up to the sandbox's time
    # limit: rendered in a thread, never on the way to showing the page.
    state.prompt_preview = t["preview_rendering"]
    words = dict(t)  # the tab's language, read here: the thread has no tab
    in_background(state, f"{name}\n{choice}", lambda: _preview(choice, info, words), _preview_done)


def _preview(choice: str, info: Any, t: Mapping[str, str]) -> str:
    """The exact prompt `choice` gives for a short sample conversation (with any warning), the
    sample in the labels' language."""
    ctx = app()
    system_prompt = ctx.default_system_prompt()
    sample = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": t["sample_question"]},
        {"role": "assistant", "content": t["sample_answer"]},
        {"role": "user", "content": t["sample_follow_up"]},
    ]
    if not system_prompt:  # the template may add its own (SmolLM2's does): the preview shows it
        sample = sample[1:]
    try:
        fmt = choose_format(choice, info)
        rendered = render_prompt(fmt, sample)
    except LocalChatError as exc:
        return str(exc)
    return rendered.text + "".join(f"\n# {w}" for w in rendered.warnings)


def _preview_done(state: State, key: str, error: str, text: Any) -> None:
    if key == f"{state.selected_model}\n{state.format_choice}":  # still the one shown
        state.prompt_preview = error or str(text)


def select_model(state: State, *_: Any) -> None:
    """A new model chosen in the selector: show its format and load settings."""
    _show_format(state)
    _show_model_settings(state)


def pick_row(state: State, var_name: str, payload: dict[str, Any]) -> None:
    """A click on a table row selects that model."""
    index = payload.get("index") if isinstance(payload, dict) else None
    names = _table_names(state)
    if isinstance(index, int) and 0 <= index < len(names):
        state.selected_model = names[index]
        _show_format(state)
        _show_model_settings(state)


def rescan(state: State) -> None:
    """Rescan button: files put in the folder by hand show up (in this tab's pages)."""
    refresh.publish(state, refresh.MODELS)


def change_format(state: State, *_: Any) -> None:
    """Remember the chosen format for the selected model; chats use it from the next reply."""
    ctx = app()
    try:
        # Only a model in the folder has a choice to remember (the name comes from the page).
        resolve_model(str(state.selected_model or ""), ctx.config.models_dir, allow_paths=False)
        ctx.prefs.set_chat_format(state.selected_model, state.format_choice)
    except LocalChatError as exc:
        notify(state, "error", str(exc))
        state.format_choice = ctx.engines.chosen_format(state.selected_model)
        return
    _show_format(state)
    fmt = state.format_choice
    notify(state, "info", ctx.labels["format_saved"].format(model=state.selected_model, format=fmt))
    refresh.publish_everywhere(state.get_gui(), refresh.MODELS)


def choose_backend(state: State, *_: Any) -> None:
    """The backend selector: "local" answers new chats with llama.cpp here at once; a server
    has its models listed first (then "Use this model")."""
    ctx = app()
    state.remote_error = ""
    state.remote_models = []
    state.remote_model = ""
    state.remote_busy = False  # a list still on its way for another backend is dropped
    if state.backend_choice == LOCAL_BACKEND:
        if ctx.engines.active_remote is not None:
            ctx.engines.use_local()
            refresh.publish_everywhere(state.get_gui(), refresh.MODELS)
        return
    _ask_for_models(state)


def _ask_for_models(state: State) -> None:
    ctx = app()
    backend = str(state.backend_choice)
    try:
        engine = ctx.engines.remote(backend)
    except LocalChatError as exc:
        state.remote_error = str(exc)
        return
    state.remote_busy = True
    in_background(state, backend, engine.list_models, _models_listed)


def _models_listed(state: State, backend: str, error: str, models: Any) -> None:
    if backend != state.backend_choice:  # the user chose another backend meanwhile
        return
    state.remote_busy = False
    if error:
        state.remote_error = error
        return
    names = [m.id for m in models or []]
    if not names:
        state.remote_error = app().labels["remote_no_models"].format(backend=backend)
    state.remote_models = names
    active = app().engines.active_remote
    in_use = active.loaded.info.id if active and active.backend_name == backend else ""
    default = app().config.backend(backend).default_model
    first = names[0] if names else ""
    state.remote_model = next((n for n in (in_use, default) if n in names), first)


def use_remote_model(state: State) -> None:
    """ "Use this model": new chats are answered by the chosen model on the chosen server."""
    backend, model = str(state.backend_choice), str(state.remote_model or "")
    if state.remote_busy or backend == LOCAL_BACKEND or not model:
        return
    state.remote_busy = True
    state.remote_error = ""
    model_actions.use_remote_model(state, backend, model, _remote_used)


def _remote_used(state: State, backend: str, error: str) -> None:
    state.remote_busy = False
    if error:
        state.remote_error = error


def load_model(state: State) -> None:
    """Load button: load the selected model in a thread, with the context and threads in its
    settings panel (saved first; a bad value loads nothing); the page shows it is loading."""
    name = str(state.selected_model or "")
    if state.loading or not name:
        return
    error = _save_typed(state)
    if error:  # said under the fields and under Load (the panel may be folded)
        state.ms_error = error
        state.load_error = app().labels["load_failed"].format(error=error)
        return
    ignore = bool(state.ignore_memory)
    if model_actions.load_model(state, name, _load_done, ignore_memory_check=ignore):
        state.loading = True
        state.load_error = ""
        state.loading_line = app().labels["loading"].format(model=name)


def memory_override_changed(state: State) -> None:
    """The override toggle: turned on, the "does not fit" error it answers goes away."""
    if state.ignore_memory:
        state.load_error = ""


def _load_done(state: State, name: str, error: str) -> None:
    state.loading = False
    state.loading_line = ""
    if error:
        state.load_error = app().labels["load_failed"].format(error=error)
        refresh_page(state)
    else:
        state.backend_choice = LOCAL_BACKEND


def _model_added(state: State, file_name: str) -> None:
    """This tab asked for the model that was just downloaded: select it for Load."""
    if file_name in _table_names(state):
        state.selected_model = file_name
        _show_format(state)
        _show_model_settings(state)


refresh.subscribe(refresh.MODELS, refresh_page)
refresh.subscribe(refresh.MODEL_ADDED, _model_added)


def _row_class(state: State, index: int, row: Any) -> str:
    t = app().labels
    status = row[t["col_status"]]
    if status == t["status_loaded"]:
        return "lc-row-loaded"
    return "" if status == t["status_ok"] else "lc-row-error"


def build_page() -> tgb.Page:
    """The models page, labelled in the configured language."""
    t = app().labels
    with tgb.Page(frame=_FRAME) as page:
        _backend_card(t)
        with tgb.layout("1fr auto", class_name="lc-folder-bar"):
            with tgb.part(id="models_folder"):  # markdown text drops its own id
                tgb.text("{folder_line}", mode="md")
            tgb.button(t["rescan"], id="rescan", on_action=rescan)
        with tgb.part(render="{not has_models}"):
            tgb.text(t["no_models"], id="no_models")
            tgb.part(page="first_model")
        with tgb.part(render="{has_models}"):
            tgb.table(
                "{model_table}",
                id="model_table",
                show_all=True,
                height="auto",
                on_action=pick_row,
                row_class_name=_row_class,
                class_name="lc-model-table",
            )
        with tgb.layout("2fr 3fr", columns__mobile="1", class_name="lc-models-lower"):
            with tgb.part(class_name="lc-card"):
                tgb.text(t["load_title"], class_name="lc-card-title")
                with tgb.part(id="loaded_line"):  # markdown text drops its own id
                    tgb.text("{loaded_line}", mode="md")
                with tgb.layout("1fr auto", class_name="lc-load-bar"):
                    tgb.selector(
                        "{selected_model}",
                        lov="{model_names}",
                        dropdown=True,
                        label=t["choose_model"],
                        id="model_select",
                        on_change=select_model,
                        class_name="fullwidth",
                    )
                    tgb.button(
                        t["load"], id="load_model", on_action=load_model, active="{not loading}"
                    )
                model_settings.build_panel(
                    t,
                    on_change=model_settings_changed,
                    on_save=save_model_settings,
                    on_reset=reset_model_settings,
                    on_reload=reload_model,
                    active="{not loading}",
                )
                tgb.toggle(
                    "{ignore_memory}",
                    label=t["ignore_memory"],
                    id="ignore_memory",
                    on_change=memory_override_changed,
                )
                with tgb.part(render="{loading}", class_name="lc-loading"):
                    tgb.progress(linear=True)
                    tgb.text("{loading_line}", id="loading")
                with tgb.part(render="{load_error != ''}", class_name="lc-error"):
                    tgb.text("{load_error}", id="load_error")
            with tgb.part(class_name="lc-card", render="{format_title != ''}"):
                tgb.text(t["format_title"], class_name="lc-card-title")
                tgb.text("{format_title}", mode="md")
                tgb.selector(
                    "{format_choice}",
                    lov="{format_lov}",
                    value_by_id=True,
                    dropdown=True,
                    id="format_select",
                    on_change=change_format,
                    class_name="fullwidth",
                )
                tgb.text(t["preview_title"], class_name="lc-preview-title")
                tgb.text(
                    "{prompt_preview}", mode="pre", id="prompt_preview", class_name="lc-preview"
                )
        tgb.part(page="downloads")
    return page


def _backend_card(t: Any) -> None:
    """Where models run: llama.cpp here or a configured server, and what new chats use."""
    with tgb.part(class_name="lc-card lc-backend-card"):
        tgb.text(t["backend_title"], class_name="lc-card-title")
        with tgb.part(id="active_line"):  # markdown text drops its own id
            tgb.text("{active_line}", mode="md")
        tgb.selector(
            "{backend_choice}",
            lov="{backend_lov}",
            value_by_id=True,
            dropdown=True,
            label=t["backend_choose"],
            id="backend_select",
            on_change=choose_backend,
            class_name="fullwidth",
        )
        with tgb.part(render="{len(backend_lov) < 2}"):
            tgb.text(t["no_backends_hint"], class_name="lc-hint")
        with tgb.part(render="{backend_choice != 'local'}", id="remote_panel"):
            with tgb.part(render="{remote_busy}", class_name="lc-loading"):
                tgb.progress(linear=True)
            with tgb.layout("1fr auto", class_name="lc-load-bar"):
                tgb.selector(
                    "{remote_model}",
                    lov="{remote_models}",
                    dropdown=True,
                    label=t["remote_model"],
                    id="remote_model",
                    class_name="fullwidth",
                )
                tgb.button(
                    t["use_remote"],
                    id="use_remote",
                    on_action=use_remote_model,
                    active="{not remote_busy and remote_model != ''}",
                )
            with tgb.part(render="{remote_error != ''}", class_name="lc-error"):
                tgb.text("{remote_error}", id="remote_error")
