"""What every page shares: the settings, the engines, the chat store, the download queue, the
document library and its background indexing, the preferences and the labels; and running a
page's slow work in a thread.

`main.py` builds one `AppContext` and installs it before the pages are created; page callbacks
reach it with `app()`. Everything per browser tab lives in that tab's Taipy state, or on the
server beside it (web/per_tab.py). `close()` stops the downloads, the engines and the store.

Where new chats are answered is app-wide, like the loaded model, and decided by
`llm.engines.Engines`: the local llama.cpp engine, or a model on one of config.toml's
`[[backends]]` (chosen on the models page); a stored chat continues where it was written.

Documents (`llm.documents`): one `Library` for every tab, and one `IndexingService` that
indexes collections in a helper process, pausing whenever the local model is generating (so a
reply keeps its speed); it starts with the app, resumes the runs a stop or crash cut, and
stops at `close()` (what was indexed stays; the next start carries on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taipy.gui import Gui, State, get_state_id, invoke_callback

from llm.config import Config
from llm.documents import IndexingService, Library
from llm.engines import Engines
from llm.errors import LocalChatError
from llm.hub import DownloadQueue
from llm.preferences import Preferences
from llm.session import ChatSession
from llm.storage import ChatStore
from web.access import is_loopback


@dataclass
class AppContext:
    """The app-wide objects. `engines`, `store`, `downloads` and `prefs` are thread-safe."""

    config: Config
    engines: Engines
    prefs: Preferences
    labels: Mapping[str, str]
    store: ChatStore  # every conversation, in `config.data_dir`
    # Downloads from the Hub into the models folder, one at a time, for every tab.
    downloads: DownloadQueue = field(init=False)
    # Collections of documents, and their indexing in the background (see the module doc).
    library: Library = field(init=False)
    indexing: IndexingService = field(init=False)
    gui: Gui | None = None  # set once the pages are made, for pushes from other threads
    # How a page words an error in a language's labels (the pages install theirs).
    describe_error: Callable[[BaseException, Mapping[str, str]], str] = field(
        default=lambda error, labels: str(error) or type(error).__name__
    )

    def __post_init__(self) -> None:
        self.downloads = DownloadQueue(self.config.models_dir)
        self.library = Library(self.config)
        self.indexing = IndexingService(self.library, is_busy=self.generating)
        self.indexing.resume_interrupted()

    def generating(self) -> bool:
        """Whether the local model is writing a reply now (indexing yields to it)."""
        return bool(getattr(self.engines.local, "busy", False))

    def reachable_from_others(self) -> bool:
        """Whether other machines may reach the app: it listens beyond loopback, or a proxy
        name is allowed (`[app] allowed_hosts`). Paths typed in a page are then limited to
        `[documents] roots` (`Library.add_typed_paths`)."""
        return not is_loopback(self.config.host) or bool(self.config.allowed_hosts)

    def format_label(self) -> str:
        """The name of the format the loaded local model uses, as the pages show it."""
        engine = self.engines.local
        if engine.loaded is None:
            return ""
        try:
            fmt = engine.chat_format(self.engines.format_choice(engine))
        except LocalChatError as exc:
            return str(exc)
        return self.labels["format_gguf"] if fmt.name == "gguf" else fmt.name

    def default_system_prompt(self) -> str:
        """The system prompt new chats start with: the one chosen in the page, else
        config.toml's (which ships empty)."""
        chosen = self.prefs.system_prompt()
        return self.config.system_prompt if chosen is None else chosen

    def new_session(self, system_prompt: str | None = None) -> ChatSession:
        """A fresh conversation with the configured settings, where new chats go."""
        return ChatSession(
            self.engines.active,
            chat_format=self.config.chat_format,
            system_prompt=self.default_system_prompt() if system_prompt is None else system_prompt,
            params=self.config.sampling,
        )

    def close(self) -> None:
        """At exit: a running download and indexing stop (both resume next time), then the
        model worker, the servers' connections and the databases."""
        self.downloads.close()
        self.indexing.close()
        self.library.close()
        self.engines.close()
        self.store.close()


def in_background(
    state: State, name: str, work: Callable[[], Any], on_done: Callable[..., None]
) -> None:
    """Run `work` in a thread (it may wait seconds: a model loading, a server answering), then
    call `on_done(state, name, error, result)` in the same tab (a module-level function of
    the page, so it sees the page's variables); `error` is "" on success, else the error in
    the tab's words."""
    gui, state_id = state.get_gui(), get_state_id(state)
    ctx = app()
    labels = dict(ctx.labels)  # the tab's language, read here: the thread has no tab

    def run() -> None:
        error, result = "", None
        try:
            result = work()
        except Exception as exc:  # whatever happens, the page must leave its busy state
            error = ctx.describe_error(exc, labels)
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
        raise RuntimeError("web.context.install() was not called")
    return _app
