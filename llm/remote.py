"""Remote backends: chat with a server that speaks the OpenAI API (llama.cpp's llama-server,
vLLM, Ollama's /v1, llama-cpp-python's server) through LangChain's `ChatOpenAI`.

`RemoteEngine` has the interface `ChatSession` uses on the local `Engine` (`loaded`,
`generate`, `close`), so history trimming, streaming, Stop and figures work the same. The only
module of LocalChat that imports langchain-openai.

Decisions, in one place:
- Role messages are sent as they are and the server applies the model's chat template, so the
  format is always `SERVER_FORMAT` ("server"); `--format` does not apply.
- History is trimmed with `llm.history.trim_history` against the server's context (the
  backend's `n_ctx`, else what the server reports, else `inference.n_ctx`). Tokens are counted
  with the server's own tokenizer when it has an endpoint for it (llama-cpp-python's
  `/extras/tokenize/count`, llama-server's and vLLM's `/tokenize`), once per distinct message
  (cached); otherwise estimated as UTF-8 bytes / 3, which over-counts English (about 4 bytes a
  token) so trimming errs towards dropping a turn early rather than overflowing the context.
  Each message adds `MESSAGE_OVERHEAD_TOKENS` for its template markers.
- A request runs on a reader thread that feeds a queue; `generate` polls the queue and the
  `cancel` event every 50 ms, so Stop ends the reply at once even while the server is silent
  (the socket is shut down, which also tells the server to stop generating).
- Figures: prompt and completion tokens from the server's `usage` when it sends it
  (`stream_options.include_usage`; llama-server and vLLM do, llama-cpp-python's server does not),
  else our prompt count and one token per streamed chunk. `prompt_tokens_per_second` is 0: the
  time to the first token includes the network and the server's queue. `tokens_per_second` is
  timed by when the bytes of the first and last token came off the network (`_TimedTransport`),
  not when they were parsed; it is 0 (not shown) when they came within `MIN_TIMED_S` of each
  other: a buffering proxy in between, or a reply of a few tokens, says nothing about the server.
- Errors are one sentence each (`llm.errors.Backend*`). A stream that breaks off midway raises
  `BackendStreamError` carrying `partial_text`; `Reply` then has finish_reason "failed" and keeps
  the partial text, and `ChatSession` keeps the exchange in its history.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

from .config import Backend, Config, SamplingParams
from .errors import (
    BackendAuthError,
    BackendError,
    BackendModelNotFoundError,
    BackendStreamError,
    BackendUnreachableError,
    ConfigError,
    EngineError,
    PromptError,
)
from .history import TrimResult, trim_history
from .prompts import ChatFormat, Message

# The server renders the prompt with the model's own template; nothing is rendered here.
SERVER_FORMAT = ChatFormat(name="server", template="", source="server")

CONNECT_TIMEOUT_S = 5.0
# Longest silence accepted while streaming: a busy server may queue a request for a while.
READ_TIMEOUT_S = 300.0
MESSAGE_OVERHEAD_TOKENS = 8  # role markers around each message (ChatML, Llama-3: 4 to 6)
REPLY_PRIMER_TOKENS = 8  # the assistant header the template adds before the reply
_POLL_S = 0.05
MIN_TIMED_S = 0.05  # a reply whose bytes came within this time has no measurable rate
_WAITED_S = 0.001  # a network read that took longer waited for the server
_CACHE_LIMIT = 4096
# Token-count endpoints tried in order; the first that answers is kept for the engine's life.
_TOKENIZERS = ("/extras/tokenize/count", "/tokenize")


@dataclass(frozen=True)
class RemoteModelInfo:
    """A model a server offers, as its /v1/models list describes it."""

    id: str
    backend: str
    base_url: str
    owned_by: str = ""
    context_length: int = 0  # 0: the list does not say

    @property
    def name(self) -> str:
        return self.id

    @property
    def file_name(self) -> str:  # what pages show for a local model
        return self.id

    @property
    def chat_template(self) -> None:  # applied by the server
        return None


@dataclass(frozen=True)
class RemoteModel:
    """The model a `RemoteEngine` talks to, with the context it trims the history to."""

    info: RemoteModelInfo
    n_ctx: int
    format: ChatFormat = SERVER_FORMAT  # ChatSession uses it instead of resolving a format


def _estimate_tokens(text: str) -> int:
    return len(text.encode("utf-8")) // 3 + 1


def _server_detail(body: Any) -> str:
    """The server's own error message from a JSON body (OpenAI, FastAPI or llama-server)."""
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if key in body:
                found = _server_detail(body[key])
                if found:
                    return found
        return ""
    if isinstance(body, list) and body:
        return _server_detail(body[0])
    text = " ".join(str(body or "").split())
    return text[:200]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class _TimedTransport(httpx2.BaseTransport):
    """The default transport, noting in `arrived` when response bytes last came off the
    network. Bytes are read only when the parser wants more, so a read that did not have to
    wait returns bytes that came with the previous ones: parsing a burst of 300 chunks takes
    0.1 s of its own, which must not count as the server's time."""

    def __init__(self) -> None:
        self.arrived = 0.0
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._inner.handle_request(request)
        response.stream = _TimedStream(response.stream, self)
        return response

    def close(self) -> None:
        self._inner.close()


class _TimedStream(httpx2.SyncByteStream):
    def __init__(self, inner: Any, transport: _TimedTransport) -> None:
        self._inner = inner
        self._transport = transport

    def __iter__(self) -> Iterator[bytes]:
        pieces = iter(self._inner)
        while True:
            asked = time.perf_counter()
            piece = next(pieces, None)
            if piece is None:
                return
            now = time.perf_counter()
            if now - asked > _WAITED_S or not self._transport.arrived:
                self._transport.arrived = now
            yield piece

    def close(self) -> None:
        self._inner.close()


class _StreamReader:
    """Reads a LangChain stream on a thread of its own into a queue, each chunk with when its
    bytes came off the network, so the caller can poll for chunks and for Stop alike."""

    def __init__(self) -> None:
        self._responses: list[httpx2.Response] = []
        self._transport = _TimedTransport()
        self.client = httpx2.Client(
            transport=self._transport, event_hooks={"response": [self._responses.append]}
        )
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()

    def start(self, chat: Any, messages: list[Any]) -> None:
        """Start streaming `chat`'s reply to `messages` (the chat model uses `self.client`)."""
        thread = threading.Thread(
            target=self._read, args=(chat, messages), name="localchat-remote-reader", daemon=True
        )
        thread.start()

    def _read(self, chat: Any, messages: list[Any]) -> None:
        try:
            for chunk in chat.stream(messages):
                if self._stop.is_set():
                    break
                self._events.put(("chunk", (chunk, self._transport.arrived)))
            self._events.put(("end", None))
        except BaseException as exc:  # handed to the caller's thread
            self._events.put(("error", exc))
        finally:
            self.client.close()

    def next(self, timeout: float) -> tuple[str, Any] | None:
        """("chunk", (chunk, arrived)), ("end", None) or ("error", exception); None if
        nothing came within `timeout` seconds."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def abort(self) -> None:
        """Stop reading now."""
        # Shutting the socket down wakes the reader at once and tells the server to stop.
        self._stop.set()
        for response in self._responses:
            with contextlib.suppress(Exception):
                stream = response.extensions["network_stream"]
                stream.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        if not self._responses:
            self.client.close()


class _ReplyTally:
    """What has come of a streamed reply, and the figures it makes."""

    def __init__(self, prompt_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens  # our count, when the server sends no usage
        self.started = time.perf_counter()
        self.first_at = 0.0
        self.first_arrived = self.last_arrived = 0.0  # network times of the first and last token
        self.text = ""
        self.n_chunks = 0
        self.finish_reason = ""
        self.usage: dict[str, Any] = {}

    def add(self, chunk: Any, arrived: float) -> str:
        """Take one streamed chunk (its bytes came off the network at `arrived`); its text."""
        piece = str(chunk.text)
        self.finish_reason = chunk.response_metadata.get("finish_reason") or self.finish_reason
        if chunk.usage_metadata:
            self.usage = dict(chunk.usage_metadata)
        if piece:
            self.first_at = self.first_at or time.perf_counter()
            self.first_arrived = self.first_arrived or arrived
            self.last_arrived = arrived
            self.n_chunks += 1
            self.text += piece
        return piece

    def figures(self) -> dict[str, Any]:
        """The reply's figures so far (see the module docstring for where each comes from)."""
        completion = self.usage.get("output_tokens") or self.n_chunks
        decode_s = self.last_arrived - self.first_arrived
        details = self.usage.get("input_token_details") or {}
        return {
            "prompt_tokens": self.usage.get("input_tokens") or self.prompt_tokens,
            "cached_tokens": details.get("cache_read") or 0,
            "completion_tokens": completion,
            "time_to_first_token_s": round(self.first_at - self.started, 3)
            if self.first_at
            else 0.0,
            "tokens_per_second": round((completion - 1) / decode_s, 2)
            if decode_s >= MIN_TIMED_S and completion > 1
            else 0.0,
            "prompt_tokens_per_second": 0.0,
        }


class RemoteEngine:
    """Chat with one model on an OpenAI-compatible server. Thread-safe; requests run in
    parallel (the server decides how many it serves at once, e.g. llama-server's `-np`)."""

    # Continuing a reply is not offered here. The only portable way is to send the partial
    # reply as the last assistant message ("prefill"), and servers disagree on what that
    # means: llama-server continues it, vLLM needs its own `continue_final_message` flag,
    # OpenAI and others answer it with a new turn. The wrong one looks like a continuation
    # that repeats or contradicts itself, so the action is hidden, with this reason.
    can_continue = False
    continue_refusal = (
        "continuing a reply works with models run by LocalChat itself; a server applies its "
        "own chat template, and OpenAI-compatible servers differ on whether they continue a "
        "partial reply or answer it with a new one"
    )

    def __init__(self, backend: Backend, *, default_n_ctx: int = 4096, model: str = "") -> None:
        self.backend = backend
        self.default_n_ctx = default_n_ctx
        self.model = model  # what `load()` picks when not told ("": the backend's default)
        self.loaded: RemoteModel | None = None
        self._client: httpx2.Client | None = None  # for /models, /props, tokenizing
        self._tokenizer: str | None = None  # endpoint path, "" when the server has none
        self._counts: dict[str, int] = {}

    @classmethod
    def from_config(cls, config: Config, name: str, model: str = "") -> RemoteEngine:
        """The engine for the [[backends]] entry `name` (ConfigError if there is none)."""
        backend = config.backend(name)
        if backend is None:
            raise ConfigError("backend 'local' is llama.cpp in LocalChat itself: use Engine")
        return cls(backend, default_n_ctx=config.n_ctx, model=model)

    @property
    def backend_name(self) -> str:
        """The [[backends]] name, as chats record it."""
        return self.backend.name

    @property
    def model_name(self) -> str:
        """The model chosen on the server (before `load`, the one it will ask for)."""
        return self.loaded.info.id if self.loaded else self.model

    def chat_format(self, choice: str) -> ChatFormat:
        """Always `SERVER_FORMAT`: the server applies the model's own template."""
        return SERVER_FORMAT

    def prepare(self) -> None:
        """Before a chat's first message here: check the server still offers the model."""
        if self.loaded is None:
            self.load()

    # HTTP helpers --------------------------------------------------------------------
    @property
    def where(self) -> str:
        """How errors name this server."""
        return f"backend {self.backend.name!r} at {self.backend.base_url}"

    @property
    def _root(self) -> str:
        # llama-server's /props and /tokenize live beside /v1, not under it.
        return self.backend.base_url.removesuffix("/v1")

    @property
    def _http(self) -> httpx2.Client:
        if self._client is None or self._client.is_closed:
            timeout = httpx2.Timeout(30.0, connect=CONNECT_TIMEOUT_S)
            self._client = httpx2.Client(timeout=timeout, follow_redirects=True)
        return self._client

    def _headers(self) -> dict[str, str]:
        key = self.backend.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        try:
            return self._http.request(method, url, headers=self._headers(), **kwargs)
        except httpx2.HTTPError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: BaseException, *, model: str = "", partial: str = "") -> EngineError:
        """One clear sentence for an exception from httpx2, openai or LangChain."""
        import openai

        if isinstance(exc, EngineError):
            return exc
        status = getattr(exc, "status_code", None)
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(status, _server_detail(exc.body) or exc.message, model)
        for cause in _chain(exc):
            if isinstance(cause, httpx2.ConnectTimeout):
                reason = f"no answer within {CONNECT_TIMEOUT_S:g} s"
                return BackendUnreachableError(f"cannot reach {self.where}: {reason}")
            if isinstance(cause, ConnectionRefusedError):
                reason = "connection refused (is the server running?)"
                return BackendUnreachableError(f"cannot reach {self.where}: {reason}")
            if isinstance(cause, socket.gaierror):
                host = httpx2.URL(self.backend.base_url).host
                reason = f"the host name {host!r} was not found"
                return BackendUnreachableError(f"cannot reach {self.where}: {reason}")
        causes = list(_chain(exc))
        timed_out = any(isinstance(c, httpx2.ReadTimeout) for c in causes)
        if isinstance(exc, httpx2.ConnectError | openai.APIConnectionError) and not partial:
            if timed_out:  # connected, but no answer: a stuck or very busy server
                return BackendUnreachableError(
                    f"{self.where} did not answer within {READ_TIMEOUT_S:g} s"
                )
            reason = str(causes[-1]) or str(exc)  # the root cause, e.g. "Server disconnected"
            return BackendUnreachableError(f"cannot reach {self.where}: {reason}")
        # Anything else happened while the reply was streaming.
        if timed_out:
            how = f"it sent nothing for {READ_TIMEOUT_S:g} s"
        elif isinstance(exc, openai.APIConnectionError) or any(
            isinstance(c, httpx2.TransportError | OSError) for c in causes
        ):
            how = "the connection was closed"
        elif isinstance(exc, openai.APIError):
            how = f"it reported an error: {_server_detail(exc.body) or exc.message}"
        else:
            how = f"{type(exc).__name__}: {exc}"
        got = f"after {len(partial)} characters" if partial else "before any text"
        return BackendStreamError(f"{self.where} broke off the reply {got}: {how}", partial)

    def _status_error(self, status: int | None, detail: str, model: str) -> BackendError:
        if status in (401, 403):
            env = self.backend.api_key_env
            if env:
                return BackendAuthError(
                    f"{self.where} refused the API key from ${env} ({status}: {detail})"
                )
            return BackendAuthError(
                f"{self.where} wants an API key ({status}: {detail}): put it in an environment "
                f"variable and name that variable in the backend's api_key_env"
            )
        if status == 404 and model:
            return BackendModelNotFoundError(f"{self.where} has no model {model!r} ({detail})")
        return BackendError(f"{self.where} answered HTTP {status}: {detail}")

    def _json(self, response: httpx2.Response, what: str) -> Any:
        if response.status_code >= 400:
            try:
                detail = _server_detail(response.json())
            except ValueError:
                detail = _server_detail(response.text)
            if response.status_code == 404:
                raise BackendError(
                    f"{self.where} has no {what} endpoint (404): check base_url, which usually "
                    f"ends in /v1"
                )
            raise self._status_error(response.status_code, detail, "")
        try:
            return response.json()
        except ValueError:
            snippet = _server_detail(response.text)[:60]
            raise BackendError(
                f"{self.where} did not answer {what} with JSON (got {snippet!r}): is base_url "
                f"an OpenAI-compatible API?"
            ) from None

    # models --------------------------------------------------------------------------
    def list_models(self, *, timeout: float | None = None) -> list[RemoteModelInfo]:
        """The models the server offers (its /v1/models); `timeout` (seconds) bounds each
        step of the request instead of the engine's own timeouts."""
        options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        url = f"{self.backend.base_url}/models"
        data = self._json(self._call("GET", url, **options), "/models")
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise BackendError(f"{self.where} answered /models without a 'data' list")
        models = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                continue
            meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
            # vLLM: max_model_len; llama-server: meta.n_ctx_train (the model's, not the slot's)
            context = row.get("max_model_len") or meta.get("n_ctx_train") or 0
            models.append(
                RemoteModelInfo(
                    id=row["id"],
                    backend=self.backend.name,
                    base_url=self.backend.base_url,
                    owned_by=str(row.get("owned_by") or ""),
                    context_length=context if isinstance(context, int) else 0,
                )
            )
        return models

    def _slot_context(self) -> int:
        # llama-server's /props: the context of one slot (-c divided by -np); no key needed.
        with contextlib.suppress(httpx2.HTTPError, ValueError, AttributeError):
            response = self._http.get(f"{self._root}/props", headers=self._headers())
            if response.status_code == 200:
                n_ctx = response.json().get("default_generation_settings", {}).get("n_ctx")
                if isinstance(n_ctx, int) and n_ctx > 0:
                    return n_ctx
        return 0

    def load(self, model: str = "") -> RemoteModel:
        """Choose `model` (default: the backend's default_model, else the server's first) after
        checking the server offers it; a failure keeps the previous choice."""
        offered = self.list_models()
        wanted = model or self.model or self.backend.default_model
        wanted = wanted or (offered[0].id if offered else "")
        if not offered:
            raise BackendModelNotFoundError(f"{self.where} offers no models")
        info = next((m for m in offered if m.id == wanted), None)
        if info is None:
            names = ", ".join(m.id for m in offered[:10])
            raise BackendModelNotFoundError(
                f"{self.where} has no model {wanted!r} (it offers: {names})"
            )
        n_ctx = (
            self.backend.n_ctx or self._slot_context() or info.context_length or self.default_n_ctx
        )
        if self.loaded is None or self.loaded.info != info:
            self._counts.clear()  # another model may tokenize differently
        self.loaded = RemoteModel(info, n_ctx)
        return self.loaded

    # token counting ------------------------------------------------------------------
    def _server_count(self, path: str, text: str) -> int | None:
        model = self.loaded.info.id if self.loaded else ""
        body = {"input": text, "content": text, "prompt": text, "model": model}
        body |= {"add_special": False, "add_special_tokens": False}
        response = self._call("POST", f"{self._root}{path}", json=body)
        if response.status_code in (401, 403):
            raise self._status_error(response.status_code, _server_detail(response.text), "")
        if response.status_code != 200:
            return None
        try:
            data = response.json()
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("count"), int):
            return data["count"]
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        return None

    def _count_text(self, text: str) -> int:
        if text in self._counts:
            return self._counts[text]
        count: int | None = None
        if self._tokenizer is None:
            for path in _TOKENIZERS:
                count = self._server_count(path, text)
                if count is not None:
                    self._tokenizer = path
                    break
            else:
                self._tokenizer = ""
        elif self._tokenizer:
            count = self._server_count(self._tokenizer, text)
        if count is None:
            count = _estimate_tokens(text)
        if len(self._counts) > _CACHE_LIMIT:
            self._counts.clear()
        self._counts[text] = count
        return count

    def count_tokens(self, messages: list[Message]) -> int:
        """Tokens `messages` take in the prompt: the server's tokenizer, else an estimate."""
        return REPLY_PRIMER_TOKENS + sum(
            self._count_text(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages
        )

    @property
    def counts_exactly(self) -> bool:
        """True once the server's tokenizer is used (False: byte-based estimates)."""
        return bool(self._tokenizer)

    # chat ----------------------------------------------------------------------------
    def _chat_model(self, model: str, params: SamplingParams, client: httpx2.Client) -> Any:
        from langchain_openai import ChatOpenAI

        extra: dict[str, Any] = {
            # llama-cpp-python's server ignores max_completion_tokens (what ChatOpenAI sends)
            "max_tokens": params.max_tokens,
            "top_k": params.top_k,
            "min_p": params.min_p,
            "repeat_penalty": params.repeat_penalty,  # llama.cpp's name
            "repetition_penalty": params.repeat_penalty,  # vLLM's name
        }
        if params.ignore_eos:  # benchmarks: llama-server and vLLM honour it
            extra["ignore_eos"] = True
        return ChatOpenAI(
            model=model,
            base_url=self.backend.base_url,
            # Never empty: ChatOpenAI would fall back to $OPENAI_API_KEY and send it here.
            api_key=self.backend.api_key() or "no-key",
            streaming=True,
            stream_usage=True,
            max_retries=0,  # a retry would restart a reply the user is watching
            timeout=httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            http_client=client,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed if params.seed >= 0 else None,
            # Set only by a request of LocalChat's own API passed on (llm.config.RequestSampling).
            presence_penalty=getattr(params, "presence_penalty", 0.0) or None,
            frequency_penalty=getattr(params, "frequency_penalty", 0.0) or None,
            stop=list(getattr(params, "stop", ())) or None,
            extra_body=extra,
        )

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
        """Stream a reply as events: start, text*, done (finish_reason "stop", "length" or
        "cancelled"). `fmt` is ignored: the server applies its own template. Raises a
        `BackendError`; `BackendStreamError.partial_text` when the stream broke off.
        `open_reply` (continuing a reply) is refused: see `continue_refusal`."""
        if open_reply:
            raise PromptError(self.continue_refusal)
        loaded = self.loaded
        if loaded is None:
            raise EngineError(f"no model is chosen on {self.where}")
        budget = loaded.n_ctx - params.max_tokens
        if budget < 1:
            raise PromptError(
                f"max_tokens {params.max_tokens} leaves no room for the prompt in the "
                f"context of {loaded.n_ctx} tokens"
            )
        trimmed = trim_history(messages, self.count_tokens, budget, keep_from=keep_from)
        yield {
            "type": "start",
            "prompt_tokens": trimmed.prompt_tokens,
            "dropped_turns": trimmed.dropped_turns,
            "first_turn": trimmed.first_turn,
            "format": SERVER_FORMAT.name,
            "warnings": [],
        }
        yield from self._stream(loaded.info.id, trimmed.messages, params, trimmed, cancel)

    def _stream(
        self,
        model: str,
        messages: list[Message],
        params: SamplingParams,
        trimmed: TrimResult,
        cancel: threading.Event | None,
    ) -> Iterator[dict[str, Any]]:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
        lc_messages = [kinds[m["role"]](content=m["content"]) for m in messages]
        reader = _StreamReader()
        chat = self._chat_model(model, params, reader.client)
        tally = _ReplyTally(trimmed.prompt_tokens)
        reader.start(chat, lc_messages)
        finished = False
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    reader.abort()
                    finished = True
                    yield self._done("cancelled", tally.figures(), trimmed)
                    return
                event = reader.next(_POLL_S)
                if event is None:
                    continue
                kind, item = event
                if kind == "error":
                    finished = True
                    if cancel is not None and cancel.is_set():  # the abort's own read error
                        yield self._done("cancelled", tally.figures(), trimmed)
                        return
                    raise self._translate(item, model=model, partial=tally.text) from None
                if kind == "end":
                    break
                piece = tally.add(*item)
                if piece:
                    yield {"type": "text", "text": piece}
            finished = True
            if not tally.finish_reason:  # the stream ended without saying why: cut off
                raise BackendStreamError(
                    f"{self.where} ended the reply without finishing it "
                    f"(after {len(tally.text)} characters)",
                    tally.text,
                )
            yield self._done(tally.finish_reason, tally.figures(), trimmed)
        finally:
            if not finished:
                reader.abort()  # the caller stopped reading (closed the generator)

    @staticmethod
    def _done(finish_reason: str, figures: dict[str, Any], trimmed: TrimResult) -> dict[str, Any]:
        return {
            "type": "done",
            "finish_reason": finish_reason,
            "figures": figures,
            "dropped_turns": trimmed.dropped_turns,
        }

    def close(self) -> None:
        """Close the connection pool (replies in progress are not affected; the engine
        stays usable and opens a new pool when needed)."""
        if self._client is not None:
            self._client.close()

    @property
    def worker_pid(self) -> None:
        """No local worker process for a remote backend."""
        return None
