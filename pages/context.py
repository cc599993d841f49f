"""What every page shares: the settings, the one `Engine`, the chat store, the preferences and
the labels.

`main.py` builds one `AppContext` and installs it before the pages are created; page callbacks
reach it with `app()`. Everything per browser tab lives in that tab's Taipy state instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from taipy.gui import State, get_state_id, invoke_callback

from llm.config import Config
from llm.engine import Engine
from llm.errors import LocalChatError
from llm.model_files import choose_format
from llm.preferences import Preferences
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
        """A fresh conversation with the configured settings."""
        return ChatSession(
            self.engine,
            chat_format=self.config.chat_format,
            system_prompt=self.config.system_prompt if system_prompt is None else system_prompt,
            params=self.config.sampling,
        )


def load_in_background(state: State, name: str, path: str, on_done: Callable[..., None]) -> None:
    """Load a model in a thread (loading takes seconds), then call `on_done(state, name, error)`
    in the same tab; `error` is "" on success. Both pages load models this way."""
    gui, state_id = state.get_gui(), get_state_id(state)

    def load() -> None:
        error = ""
        try:
            app().engine.load(path)
        except Exception as exc:  # whatever happens, the page must leave its loading state
            error = str(exc) or type(exc).__name__
        invoke_callback(gui, state_id, on_done, [name, error])

    threading.Thread(target=load, name=f"load {name}", daemon=True).start()


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
