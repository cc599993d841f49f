"""`OpenAIService`: what each /v1 endpoint does, with the app's own engines.

A request runs on the engine the pages use (`llm.engines.Engines`): the local model in the one
worker process, waiting its turn in the same first-come-first-served queue as the browser tabs
(`llm.engine.RequestQueue`), or a model on a configured [[backends]] server. A chat's messages
go through the same path as a message typed in the page: `validate_messages`, the chat format
the pages would use for the loaded model, rendering with user text tokenized as text, and
context trimming in the worker. So the same conversation gives the same prompt tokens.

Decisions:
- A model that is not loaded is answered with 404 naming the loaded one; it is never loaded on
  a request. The model is app-wide: a script loading another would swap the model under the
  person using the page (and loading takes seconds to minutes and the memory check may fail).
  `model` omitted, or the loaded file's name (with or without .gguf), is the local model;
  "BACKEND/MODEL" is a model on a configured backend.
- /v1/completions continues the prompt as plain text: it is tokenized as text, so control
  tokens cannot be written into it (`PLAIN_FORMAT`); chat templates are /v1/chat/completions'.
- Fields left out take the app's own sampling settings (config.toml's [inference]).
- `cancel` (set by the web layer when the client goes away) ends the request at once: while
  it waits in the queue it leaves the queue; while generating the worker stops after the
  current token, as Stop does in the page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from ..config import LOCAL_BACKEND, Config, RequestSampling
from ..documents.embedders import DEFAULT_EMBEDDER, Embedder, load_embedder
from ..engines import ChatEngine, Engines
from ..errors import (
    BackendError,
    BackendModelNotFoundError,
    ConfigError,
    LocalChatError,
    NoModelError,
    PromptError,
)
from ..model_files import model_paths
from ..prompts import ChatFormat, Message, validate_messages
from .responses import (
    SSE_DONE,
    ChatShapes,
    CompletionShapes,
    ModelEntry,
    Usage,
    embeddings,
    model_list,
    sse,
)
from .schema import ApiError, ChatRequest, CompletionRequest, EmbeddingRequest

# /v1/completions: the prompt alone, as message text (never control tokens), no stop markers
# but the model's end-of-generation token.
PLAIN_FORMAT = ChatFormat(name="plain", template="{{ messages[0]['content'] }}", stop=())


def _api_error(exc: LocalChatError, param: str) -> ApiError:
    """The HTTP answer for an error of the library."""
    if isinstance(exc, (PromptError, ConfigError)):
        code = "context_length_exceeded" if "context" in str(exc) else "invalid_value"
        if str(exc).startswith("max_tokens"):  # no room left for the prompt
            param = "max_tokens"
        return ApiError(400, str(exc), param=param, code=code)
    if isinstance(exc, NoModelError):
        return ApiError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, BackendModelNotFoundError):
        return ApiError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, BackendError):
        return ApiError(502, str(exc), kind="server_error", code="backend_error")
    return ApiError(500, str(exc), kind="server_error", code="engine_error")


class _Generation:
    """One reply from an engine's event stream: its text pieces, how it ended, its tokens."""

    def __init__(self, events: Iterator[dict[str, Any]], *, strip_start: bool, remote: bool):
        self._events = events
        self._strip_start = strip_start  # a chat reply is shown without its leading space
        self._remote = remote
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.reason = ""
        self._started = False
        self._raw = ""
        self._shown = 0

    def start(self, param: str) -> None:
        """Wait (in the queue, then for the prompt to be read) until the reply starts; an
        error before that (prompt too long, no model) is raised as an ApiError."""
        try:
            for event in self._events:
                if event["type"] == "start":
                    self._started = True
                    self.prompt_tokens = event["prompt_tokens"]
                    return
                if event["type"] == "done":  # cancelled while queued: the client left
                    self.reason = event["finish_reason"]
                    return
        except LocalChatError as exc:
            self.close()
            raise _api_error(exc, param) from None

    def pieces(self) -> Iterator[str]:
        """The reply's text as it comes (after `start`); raises LocalChatError on failure."""
        if not self._started:
            return
        for event in self._events:
            if event["type"] == "text":
                self._raw += event["text"]
                shown = self._raw.lstrip() if self._strip_start else self._raw
                offset = len(self._raw) - len(shown)
                if len(shown) > self._shown:
                    piece = self._raw[offset + self._shown :]
                    self._shown = len(shown)
                    yield piece
            elif event["type"] == "done":
                self.reason = event["finish_reason"]
                figures = event.get("figures") or {}
                self.completion_tokens = figures.get("completion_tokens", 0)
                if self._remote and figures.get("prompt_tokens"):
                    self.prompt_tokens = figures["prompt_tokens"]  # the server's own count
                # Free the worker for the next request now, not once the last chunks are
                # written to this client.
                self.close()
                return

    @property
    def cancelled(self) -> bool:
        return self.reason == "cancelled"

    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens)

    def close(self) -> None:
        """Stop the reply (the engine cancels it and frees the worker)."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()


class OpenAIService:
    """The /v1 endpoints on an app's `Engines`. Thread-safe: one instance serves every
    request (generation waits its turn in the engine's queue)."""

    def __init__(self, config: Config, engines: Engines) -> None:
        self.config = config
        self.engines = engines
        self._embedders: dict[str, Embedder] = {}
        self._embedder_lock = threading.Lock()

    # models ----------------------------------------------------------------------------
    def model_entries(self) -> list[ModelEntry]:
        """The loaded model first, the models folder's other files, then each backend's
        models as "BACKEND/MODEL" (a backend that does not answer is left out)."""
        local = self.engines.local
        entries = []
        if local.loaded is not None:
            entries.append(ModelEntry(local.model_name, LOCAL_BACKEND, True, local.loaded.n_ctx))
        entries += [
            ModelEntry(path.name, LOCAL_BACKEND)
            for path in model_paths(self.config.models_dir)
            if path.name != local.model_name
        ]
        active = self.engines.active_remote
        for backend in self.config.backends:
            try:
                offered = self.engines.remote(backend.name).list_models()
            except LocalChatError:
                continue
            for model in offered:
                chosen = active is not None and active.backend_name == backend.name
                loaded = chosen and active.model_name == model.id
                entries.append(ModelEntry(f"{backend.name}/{model.id}", backend.name, loaded))
        return entries

    def models(self) -> dict[str, Any]:
        """GET /v1/models."""
        return model_list(self.model_entries())

    def _not_loaded(self, model: str) -> ApiError:
        local = self.engines.local.model_name
        serves = f"the loaded model is {local!r}" if local else "no model is loaded"
        return ApiError(
            404,
            f"The model {model!r} is not loaded here: {serves}. LocalChat does not load "
            "models on API requests (the model is shared with the pages); load it on the "
            "models page, or name a configured backend's model as BACKEND/MODEL.",
            param="model",
            code="model_not_found",
        )

    def engine_for(self, model: str) -> tuple[ChatEngine, str]:
        """The engine that answers `model`, and the model's id as answers name it."""
        local = self.engines.local
        names = {local.model_name, Path(local.model_name).stem} if local.loaded else set()
        if model in names or (not model and self.engines.active is local):
            if local.loaded is None:
                raise self._not_loaded(model or "(none given)")
            return local, local.model_name
        remote = self.engines.active_remote
        if not model and remote is not None:
            return remote, f"{remote.backend_name}/{remote.model_name}"
        backend, slash, name = model.partition("/")
        if slash and name and any(b.name == backend for b in self.config.backends):
            engine = self.engines.remote(backend, name)
            try:
                engine.prepare()  # the server still offers it (asked once per engine)
            except LocalChatError as exc:
                raise _api_error(exc, "model") from None
            return engine, model
        raise self._not_loaded(model)

    def _format(self, engine: ChatEngine) -> ChatFormat:
        try:  # as the chat page: the format chosen for the loaded model
            return engine.chat_format(self.engines.format_choice(engine))
        except LocalChatError as exc:
            raise _api_error(exc, "model") from None

    def _params(self, overrides: dict[str, Any]) -> RequestSampling:
        base = RequestSampling(**vars(self.config.sampling))
        try:
            return base.replace(**overrides)
        except ConfigError as exc:  # outside the app's own ranges (already OpenAI's)
            raise ApiError(400, str(exc), code="invalid_value") from None

    # chat and completions --------------------------------------------------------------
    def chat_messages(self, request: ChatRequest) -> list[Message]:
        """The conversation as the page would send it (validated the same way)."""
        try:
            return validate_messages(request.messages)
        except PromptError as exc:
            raise ApiError(400, f"messages: {exc}", param="messages") from None

    def prompt_for_chat(
        self, request: ChatRequest
    ) -> tuple[ChatEngine, str, list[Message], ChatFormat]:
        """Engine, model id, messages and format a chat request is generated with."""
        engine, model = self.engine_for(request.model)
        return engine, model, self.chat_messages(request), self._format(engine)

    def chat(
        self, request: ChatRequest, cancel: threading.Event
    ) -> dict[str, Any] | Iterator[bytes]:
        """POST /v1/chat/completions: the answer, or (stream) its server-sent events. Errors
        before the reply starts raise ApiError; the stream starts only once it has."""
        engine, model, messages, fmt = self.prompt_for_chat(request)
        return self._run(
            engine, messages, fmt, request, ChatShapes(model), cancel, strip_start=True
        )

    def complete(
        self, request: CompletionRequest, cancel: threading.Event
    ) -> dict[str, Any] | Iterator[bytes]:
        """POST /v1/completions (see `chat`)."""
        engine, model = self.engine_for(request.model)
        if engine.backend_name != LOCAL_BACKEND:
            raise ApiError(
                400,
                "/v1/completions runs on the local model only; use /v1/chat/completions "
                "for a backend's model",
                param="model",
            )
        messages = [{"role": "user", "content": request.prompt}]
        return self._run(
            engine,
            messages,
            PLAIN_FORMAT,
            request,
            CompletionShapes(model),
            cancel,
            strip_start=False,
        )

    def _run(
        self,
        engine: ChatEngine,
        messages: list[Message],
        fmt: ChatFormat,
        request: ChatRequest | CompletionRequest,
        shapes: ChatShapes,
        cancel: threading.Event,
        *,
        strip_start: bool,
    ) -> dict[str, Any] | Iterator[bytes]:
        params = self._params(request.sampling)
        param = "messages" if isinstance(request, ChatRequest) else "prompt"
        try:
            events = engine.generate(messages, fmt, params, cancel=cancel)
        except LocalChatError as exc:
            raise _api_error(exc, param) from None
        generation = _Generation(
            events, strip_start=strip_start, remote=engine.backend_name != LOCAL_BACKEND
        )
        generation.start(param)
        if request.stream:
            return self._stream(generation, shapes, request.include_usage)
        with closing(generation):
            try:
                text = "".join(generation.pieces())
            except LocalChatError as exc:
                raise _api_error(exc, param) from None
        if generation.cancelled and cancel.is_set():
            raise ApiError(499, "the client closed the request", code="cancelled")
        return shapes.response(text, generation.reason, generation.usage())

    @staticmethod
    def _stream(
        generation: _Generation, shapes: ChatShapes, include_usage: bool
    ) -> Iterator[bytes]:
        """The reply as server-sent events ending in [DONE]; closing the iterator (the client
        went away) stops the reply."""
        with closing(generation):
            if generation.cancelled:
                return
            yield sse(shapes.chunk({"role": "assistant", "content": ""}, usage=include_usage))
            try:
                for piece in generation.pieces():
                    yield sse(shapes.chunk({"content": piece}, usage=include_usage))
            except LocalChatError as exc:  # after the headers: the error goes in the stream
                yield sse(_api_error(exc, "messages").body())
                return
            if generation.cancelled:
                return
            yield sse(shapes.chunk({}, generation.reason, usage=include_usage))
            if include_usage:
                yield sse(shapes.usage_chunk(generation.usage()))
            yield SSE_DONE

    # embeddings ------------------------------------------------------------------------
    def embedder_names(self) -> list[str]:
        """What /v1/embeddings takes as `model`: the documents' default embedder, and a
        configured backend's embedding model as remote:BACKEND/MODEL."""
        return [DEFAULT_EMBEDDER, *(f"remote:{b.name}/MODEL" for b in self.config.backends)]

    def _embedder(self, name: str) -> Embedder:
        backend, slash, model = name.removeprefix("remote:").partition("/")
        known = name == DEFAULT_EMBEDDER or (
            name.startswith("remote:")
            and slash
            and model
            and any(b.name == backend for b in self.config.backends)
        )
        if not known:
            raise ApiError(
                404,
                f"There is no embedder {name!r}: available: {', '.join(self.embedder_names())}",
                param="model",
                code="model_not_found",
            )
        with self._embedder_lock:
            if name not in self._embedders:
                self._embedders[name] = load_embedder(name, self.config)
            return self._embedders[name]

    def embed(self, request: EmbeddingRequest) -> dict[str, Any]:
        """POST /v1/embeddings: unit vectors from the named embedder (default: wordllama,
        offline)."""
        name = request.model or DEFAULT_EMBEDDER
        embedder = self._embedder(name)
        try:
            vectors = embedder.embed(request.inputs)
        except LocalChatError as exc:
            raise ApiError(502, str(exc), kind="server_error", code="embedder_error") from None
        tokens = embedder.count_tokens(request.inputs)
        return embeddings(vectors, name, request.encoding_format, tokens)

    def close(self) -> None:
        """Release the embedders (the engines belong to the app)."""
        with self._embedder_lock:
            for embedder in self._embedders.values():
                embedder.close()
            self._embedders.clear()
