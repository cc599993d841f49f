"""What every page shares: the settings, the one `Engine`, the remote backends, the chat store,
the preferences and the labels.

`main.py` builds one `AppContext` and installs it before the pages are created; page callbacks
reach it with `app()`. Everything per browser tab lives in that tab's Taipy state instead.

Where new chats are answered is app-wide, like the loaded model: the local llama.cpp engine, or
a model on one of config.toml's `[[backends]]` (chosen on the models page). A stored chat
continues where it was written: each (backend, model) pair has its own `RemoteEngine`, made
without contacting the server (it connects on the first message).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taipy.gui import State, get_state_id, invoke_callback

from llm.config import LOCAL_BACKEND, Config
from llm.engine import Engine
from llm.errors import LocalChatError
from llm.model_files import choose_format
from llm.preferences import Preferences
from llm.remote import RemoteEngine
from llm.session import ChatSession
from llm.storage import ChatStore


@dataclass
class AppContext:
    """The app-wide objects. `engine`, `store` and `prefs` are thread-safe."""

    config: Config
    engine: Engine
    prefs: Preferences
    labels: Mapping[str, str]
    store: ChatStore  # every conversation, in `config.data_dir`
    # Where new chats are answered: None = the local engine, else a loaded RemoteEngine.
    active_remote: RemoteEngine | None = None
    _remotes: dict[tuple[str, str], RemoteEngine] = field(default_factory=dict)
    _remotes_lock: threading.Lock = field(default_factory=threading.Lock)

    def active_engine(self) -> Any:
        """The engine new chats use (an `Engine` or a `RemoteEngine`)."""
        return self.active_remote or self.engine

    def remote_engine(self, backend: str, model: str) -> RemoteEngine:
        """The engine for `model` on the [[backends]] entry `backend` (ConfigError if it is
        not configured). Made once per pair, without contacting the server."""
        with self._remotes_lock:
            key = (backend, model)
            if key not in self._remotes:
                self._remotes[key] = RemoteEngine.from_config(self.config, backend, model)
            return self._remotes[key]

    def engine_for_chat(self, backend: str, model: str) -> Any:
        """Where a stored chat continues: its own backend and model when that backend is
        configured; a chat of a backend no longer configured goes to the active engine."""
        if backend == LOCAL_BACKEND or not model:
            return self.engine
        try:
            return self.remote_engine(backend, model)
        except LocalChatError:
            return self.active_engine()

    def use_remote(self, backend: str, model: str) -> RemoteEngine:
        """Answer new chats with `model` on `backend`; asks the server that it offers it
        (BackendError otherwise, and nothing changes)."""
        engine = self.remote_engine(backend, model)
        engine.load(model)
        self.active_remote = engine
        return engine

    def use_local(self) -> None:
        """Answer new chats with the local engine again."""
        self.active_remote = None

    def close_remotes(self) -> None:
        """Close the remote engines' connections (at exit)."""
        with self._remotes_lock:
            for engine in self._remotes.values():
                engine.close()

    def format_choice(self, model_file: str | None) -> str:
        """The format name chosen for a model: the remembered one, else config's."""
        remembered = self.prefs.chat_format(model_file) if model_file else None
        return remembered or self.config.chat_format

    def format_label(self, model_file: str | None) -> str:
        """The name of the format the loaded model uses, as the pages show it."""
        loaded = self.engine.loaded
        if loaded is None:
            return ""
        try:
            fmt = choose_format(self.format_choice(model_file), loaded.info)
        except LocalChatError as exc:
            return str(exc)
        return self.labels["format_gguf"] if fmt.name == "gguf" else fmt.name

    def new_session(self, system_prompt: str | None = None) -> ChatSession:
        """A fresh conversation with the configured settings, on the active engine."""
        return ChatSession(
            self.active_engine(),
            chat_format=self.config.chat_format,
            system_prompt=self.config.system_prompt if system_prompt is None else system_prompt,
            params=self.config.sampling,
        )


def load_in_background(
    state: State,
    name: str,
    path: str,
    on_done: Callable[..., None],
    *,
    ignore_memory_check: bool = False,
) -> None:
    """Load a local model in a thread (loading takes seconds), then call
    `on_done(state, name, error, None)` in the same tab; `error` is "" on success. Both pages
    load models this way; a loaded local model answers new chats."""

    def load() -> None:
        app().engine.load(path, ignore_memory_check=ignore_memory_check)
        app().use_local()

    in_background(state, name, load, on_done)


def in_background(
    state: State, name: str, work: Callable[[], object], on_done: Callable[..., None]
) -> None:
    """Run `work` in a thread (it may wait seconds: a model loading, a server answering), then
    call `on_done(state, name, error, result)` in the same tab (a module-level function of
    the page, so it sees the page's variables); `error` is "" on success."""
    gui, state_id = state.get_gui(), get_state_id(state)

    def run() -> None:
        error, result = "", None
        try:
            result = work()
        except Exception as exc:  # whatever happens, the page must leave its busy state
            error = str(exc) or type(exc).__name__
        invoke_callback(gui, state_id, on_done, [name, error, result])

    threading.Thread(target=run, name=f"background {name}", daemon=True).start()


_app: AppContext | None = None


def install(context: AppContext) -> None:
    """Make `context` the one the pages use."""
    global _app
    _app = context


def app() -> AppContext:
    """The installed context (main.py installs it before the server starts)."""
    if _app is None:
        raise RuntimeError("pages.context.install() was not called")
    return _app
