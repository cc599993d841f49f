"""Where replies come from: the interface every engine implements, and the one place that picks
the engine for a chat.

Two engines implement `ChatEngine`: `Engine` (llama.cpp in a worker process on this machine,
llm/engine.py) and `RemoteEngine` (a server speaking the OpenAI API, llm/remote.py). A
`ChatSession` talks to either through this interface alone.

`Engines` holds an app's engines: the one local engine, a `RemoteEngine` per (backend, model)
made on first use without contacting the server, and which engine answers new chats (the local
one unless a server's model was chosen). A stored chat continues where it was written: on its
own backend and model when that backend is still configured, else where new chats go. The web
pages, the command line and the API all ask it. `backend_models` holds what each server offers
(llm/backend_models.py), for the chat page's model picker. The local engine loads each model
with the context and threads chosen for it in `prefs` (llm/load_settings.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Protocol

from .backend_models import BackendModels
from .config import LOCAL_BACKEND, Config, SamplingParams
from .engine import Engine
from .errors import LocalChatError
from .preferences import Preferences
from .prompts import ChatFormat, Message
from .remote import RemoteEngine
from .storage import StoredChat


class ChatEngine(Protocol):
    """What a conversation needs from an engine."""

    @property
    def backend_name(self) -> str:
        """Where the model runs, as chats record it: "local" or a [[backends]] name."""

    @property
    def loaded(self) -> Any:
        """The model in use (its `info` has `file_name`; `n_ctx`), None when none is."""

    @property
    def model_name(self) -> str:
        """The model replies come from, as chats record it ("" when there is none)."""

    @property
    def can_continue(self) -> bool:
        """Whether a stopped or cut reply can be continued in place (`generate`'s
        `open_reply`)."""

    @property
    def continue_refusal(self) -> str:
        """Why not, when `can_continue` is False ("" otherwise): one sentence for the user."""

    def chat_format(self, choice: str) -> ChatFormat:
        """The format a chat's choice ("auto" or a format name) resolves to here."""

    def prepare(self) -> None:
        """Make sure the next message can be answered: NoModelError when no model is loaded
        here, a BackendError when the server no longer offers the model."""

    def generate(
        self,
        messages: list[Message],
        fmt: ChatFormat,
        params: SamplingParams,
        *,
        keep_from: int = 0,
        cancel: threading.Event | None = None,
        open_reply: str = "",
    ) -> Iterator[dict[str, Any]]:
        """Stream a reply as events: queued*, start, text*, done. With `open_reply` (only
        when `can_continue`), the reply continues that text: text events are what follows."""

    def close(self) -> None:
        """Let go of processes and connections."""


class Engines:
    """The local engine, the remote ones, and which answers new chats. Thread-safe."""

    def __init__(
        self, config: Config, prefs: Preferences | None = None, *, local: Engine | None = None
    ) -> None:
        """`local` replaces the llama.cpp engine the config describes (tests give an
        in-process one, so page callbacks run without a worker or a browser)."""
        self.config = config
        self.prefs = prefs
        self.local = local if local is not None else Engine.from_config(config, prefs)
        self._active_remote: RemoteEngine | None = None
        self._remotes: dict[tuple[str, str], RemoteEngine] = {}
        self._lock = threading.Lock()
        # What each server offers, for the chat page's picker (asked with a deadline, cached).
        self.backend_models = BackendModels(config, self.remote)

    @property
    def active(self) -> ChatEngine:
        """The engine new chats use."""
        return self._active_remote or self.local

    @property
    def active_remote(self) -> RemoteEngine | None:
        """The server model new chats use, None when it is the local engine."""
        return self._active_remote

    def remote(self, backend: str, model: str = "") -> RemoteEngine:
        """The engine for `model` on the [[backends]] entry `backend` (ConfigError if it is
        not configured). Made once per pair, without contacting the server."""
        with self._lock:
            key = (backend, model)
            if key not in self._remotes:
                self._remotes[key] = RemoteEngine.from_config(self.config, backend, model)
            return self._remotes[key]

    def for_chat(self, chat: StoredChat | None) -> ChatEngine:
        """Where `chat` continues: its own backend and model when that backend is configured;
        a new chat (None), or one of a backend no longer configured, goes where new chats go."""
        if chat is None:
            return self.active
        if chat.backend == LOCAL_BACKEND or not chat.model:
            return self.local
        try:
            return self.remote(chat.backend, chat.model)
        except LocalChatError:
            return self.active

    def use_remote(self, backend: str, model: str) -> RemoteEngine:
        """Answer new chats with `model` on `backend`; asks the server that it offers it
        (BackendError otherwise, and nothing changes)."""
        engine = self.remote(backend, model)
        engine.load(model)
        self._active_remote = engine
        return engine

    def use_local(self) -> None:
        """Answer new chats with the local engine again."""
        self._active_remote = None

    def chosen_format(self, model_file: str) -> str:
        """The chat format chosen for a local model file: the one the user picked for it
        (preferences), else config's."""
        remembered = self.prefs.chat_format(model_file) if self.prefs and model_file else None
        return remembered or self.config.chat_format

    def format_choice(self, engine: ChatEngine) -> str:
        """The chat format a new message on `engine` asks for: the one chosen for the loaded
        local model; a server applies its own template."""
        if engine.backend_name != LOCAL_BACKEND:
            return "auto"
        return self.chosen_format(engine.model_name)

    def close(self) -> None:
        """Stop the worker and close the servers' connections (at exit)."""
        self.local.close()
        with self._lock:
            for engine in self._remotes.values():
                engine.close()
