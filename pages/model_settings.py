"""The model settings panel: the context length and threads one model loads with, as the chat
page (for the model in use) and the models page (beside Load) show them. The library holds
the rules and the memory (llm/load_settings.py, the preferences file); this module words them
and builds the panel.

Each page binds its own `ms_*` variables (`PANEL_DEFAULTS`) and assigns a `Panel`'s
`fields`; the model it is for is never taken from a page variable unchecked: `panel_for` and
`save` resolve the name in the models folder first, and every typed value is a stranger's
(`check_load_settings`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import taipy.gui.builder as tgb

from llm.errors import LocalChatError
from llm.gguf_file import ModelFile, human_size
from llm.load_settings import (
    LoadSettings,
    check_load_settings,
    config_defaults,
    held_by,
    is_chosen,
    load_bounds,
    memory_at,
    needs_reload,
    settings_for,
)
from llm.model_files import read_model_file, resolve_model
from web.context import app

from .wording import error_text

# Page variables of the panel, with their defaults (each page declares them as its own).
PANEL_DEFAULTS: dict[str, Any] = {
    "ms_model": "",  # the model the panel is for ("" : no panel)
    "ms_title": "",
    "ms_ctx": 0,
    "ms_threads": 0,
    "ms_bounds": "",
    "ms_memory": "",
    "ms_error": "",
    "ms_note": "",
    "ms_reload": False,  # offer "Reload to apply"
}


@dataclass(frozen=True)
class Panel:
    """What the panel shows, in `PANEL_DEFAULTS`' names."""

    ms_model: str = ""
    ms_title: str = ""
    ms_ctx: Any = 0
    ms_threads: Any = 0
    ms_bounds: str = ""
    ms_memory: str = ""
    ms_error: str = ""
    ms_note: str = ""
    ms_reload: bool = False


def model_info(name: object) -> ModelFile:
    """The folder's model called `name` (a page sent it: only a file the folder lists)."""
    return read_model_file(
        resolve_model(str(name or ""), app().config.models_dir, allow_paths=False)
    )


def saved_settings(info: ModelFile) -> LoadSettings:
    """What `info` loads with now: the values chosen for it, else config.toml's."""
    ctx = app()
    return settings_for(info, config_defaults(ctx.config), ctx.prefs)


def panel_for(
    name: object, t: Mapping[str, str], *, typed: tuple[Any, Any] | None = None, note: str = ""
) -> Panel:
    """The panel for model `name`: its saved settings, or `typed` values being edited (their
    memory when valid, else why not); an empty Panel when `name` is no model of the folder."""
    try:
        info = model_info(name)
    except LocalChatError:
        return Panel()
    saved = saved_settings(info)
    shown: tuple[Any, Any] = (saved.n_ctx, saved.n_threads)
    error = ""
    n_ctx = saved.n_ctx
    if typed is not None:
        shown = typed
        try:
            n_ctx = check_load_settings(info, *typed).n_ctx
        except LocalChatError as exc:
            error = error_text(exc, t)
    loaded = app().engines.local.loaded
    this_loaded = loaded is not None and loaded.info.file_name == info.file_name
    reload = this_loaded and needs_reload(getattr(loaded, "settings", None), saved)
    if reload and not note:
        note = t["ms_reload_note"].format(
            model=info.file_name, n_ctx=f"{loaded.n_ctx:,}", threads=loaded.n_threads
        )
    return Panel(
        ms_model=info.file_name,
        ms_title=t["ms_title"].format(model=info.file_name),
        ms_ctx=shown[0],
        ms_threads=shown[1],
        ms_bounds=_bounds_line(info, t, chosen=is_chosen(info, app().prefs)),
        ms_memory="" if error else _memory_line(info, n_ctx, t, loaded if this_loaded else None),
        ms_error=error,
        ms_note=note,
        ms_reload=bool(reload),
    )


def _bounds_line(info: ModelFile, t: Mapping[str, str], *, chosen: bool) -> str:
    bounds = load_bounds(info)
    trained = (
        t["ms_trained"].format(trained=f"{bounds.trained_ctx:,}") if bounds.trained_ctx else ""
    )
    line = t["ms_bounds"].format(
        min=f"{bounds.min_ctx:,}",
        max=f"{bounds.max_ctx:,}",
        trained=trained,
        cpus=bounds.max_threads,
        auto=bounds.auto_threads,
    )
    return line + " " + t["ms_chosen" if chosen else "ms_defaults"]


def _memory_line(info: ModelFile, n_ctx: int, t: Mapping[str, str], loaded: Any) -> str:
    freed = held_by(loaded.info, loaded.n_ctx) if loaded is not None else 0
    memory = memory_at(info, n_ctx, freed=freed)
    return t["ms_memory"].format(
        n_ctx=f"{n_ctx:,}",
        total=human_size(memory.needed.total),
        kv=human_size(memory.needed.kv_cache),
        verdict=t[f"ms_{memory.verdict}"],
        available=human_size(memory.available),
    )


def check(name: object, n_ctx: Any, n_threads: Any) -> LoadSettings:
    """`n_ctx` and `n_threads` for model `name` if they are within its bounds (else a
    LocalChatError saying why)."""
    return check_load_settings(model_info(name), n_ctx, n_threads)


def save(name: object, n_ctx: Any, n_threads: Any) -> LoadSettings:
    """Remember `n_ctx` and `n_threads` for model `name` (each checked; a bad one raises a
    LocalChatError and changes nothing)."""
    info = model_info(name)
    settings = check_load_settings(info, n_ctx, n_threads)
    app().prefs.set_load_settings(info.file_name, settings)
    return settings


def reset(name: object) -> None:
    """Forget what was chosen for model `name`: config.toml's values apply again."""
    app().prefs.set_load_settings(model_info(name).file_name, None)


def saved_note(name: str, settings: LoadSettings, t: Mapping[str, str]) -> str:
    """The line after Save."""
    threads = str(settings.n_threads) if settings.n_threads else t["ms_auto"]
    return t["ms_saved"].format(model=name, n_ctx=f"{settings.n_ctx:,}", threads=threads)


def fields(panel: Panel) -> dict[str, Any]:
    """The page variables `panel` sets. The page assigns them itself: a state reads and writes
    the variables of the module its caller is in, so this module cannot."""
    return asdict(panel)


def build_panel(
    t: Mapping[str, str],
    *,
    on_change: Callable[..., Any],
    on_save: Callable[..., Any],
    on_reset: Callable[..., Any],
    on_reload: Callable[..., Any],
    active: str = "True",
) -> None:
    """The panel's fields, lines and buttons, bound to the page's `ms_*` variables, in a
    folded section titled for its model (shown only when there is one). No min/max on the
    fields: Taipy would silently keep the old value; the library's check says why."""
    with (
        tgb.part(render="{ms_model != ''}", id="model_settings_part"),
        tgb.expandable(title="{ms_title}", expanded=False, id="model_settings"),
        tgb.part(class_name="lc-model-settings"),
    ):
        with tgb.layout("1fr 1fr", columns__mobile="1 1", class_name="lc-ms-fields"):
            tgb.number(
                "{ms_ctx}",
                label=t["ms_ctx"],
                step=256,
                id="ms_ctx",
                class_name="fullwidth",
                change_delay=0,
                on_change=on_change,
            )
            tgb.number(
                "{ms_threads}",
                label=t["ms_threads"],
                step=1,
                id="ms_threads",
                class_name="fullwidth",
                change_delay=0,
                on_change=on_change,
            )
        tgb.text("{ms_bounds}", class_name="lc-help", id="ms_bounds")
        with tgb.part(render="{ms_memory != ''}", class_name="lc-help", id="ms_memory"):
            tgb.text("{ms_memory}")
        with tgb.part(render="{ms_error != ''}", class_name="lc-error", id="ms_error"):
            tgb.text("{ms_error}")
        with tgb.part(render="{ms_note != ''}", class_name="lc-help", id="ms_note"):
            tgb.text("{ms_note}")
        with tgb.part(class_name="lc-ms-buttons"):
            tgb.button(t["ms_save"], id="ms_save", on_action=on_save, active=active)
            tgb.button(t["ms_reset"], id="ms_reset", on_action=on_reset, active=active)
            with tgb.part(render="{ms_reload}", class_name="lc-ms-reload"):
                tgb.button(t["ms_reload"], id="ms_reload", on_action=on_reload, active=active)
