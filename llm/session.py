"""`ChatSession`: a conversation with a loaded model — history, system prompt, streaming replies.

The notebook entry point is `open_chat(model)`; the command line and the web pages use the
same class, so history trimming and figures behave the same everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, SamplingParams, load_config
from .engine import Engine
from .errors import PromptError
from .figures import Figures
from .model_files import pick_model, resolve_model
from .prompts import ChatFormat, Message, validate_messages

if TYPE_CHECKING:
    from .engines import ChatEngine

# Far beyond what any context holds; checked before the text reaches the tokenizer, so a
# pasted book is refused at once instead of being tokenized to be refused.
MAX_MESSAGE_CHARS = 1_000_000


class Reply:
    """A reply being streamed: iterate for text chunks; afterwards read `text` and `figures`.

    A continued reply starts with `start` (the text it continues): `text` and `raw_text`
    then hold the whole reply, and iterating yields only what is new."""

    def __init__(
        self,
        events: Iterator[dict[str, Any]],
        on_end: Callable[[Reply], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
        *,
        start: str = "",
    ) -> None:
        self._events = events
        self._on_end = on_end
        self._on_queue = on_queue
        self.queue_position = 0  # > 0 while waiting behind other requests
        self.start = start
        self.raw_text = start  # as generated: kept in the history so the next prompt's
        # tokens match the ones llama.cpp already holds (prefix cache reuse)
        self.text = start.lstrip()  # as shown: without the leading space SentencePiece puts
        # on a word
        self.figures = Figures()
        self.finish_reason = ""
        self.warnings: list[str] = []
        self.format_name = ""
        self.first_turn = 0

    def __iter__(self) -> Iterator[str]:
        with closing(self._events) as events:
            try:
                for event in events:
                    kind = event["type"]
                    if kind == "queued":
                        self.queue_position = event["position"]
                        if self._on_queue:
                            self._on_queue(self.queue_position)
                    elif kind == "start":
                        self.queue_position = 0
                        self.warnings = event["warnings"]
                        self.format_name = event["format"]
                        self.first_turn = event["first_turn"]
                    elif kind == "text":
                        self.raw_text += event["text"]
                        shown = self.raw_text.lstrip()
                        if len(shown) > len(self.text):
                            chunk, self.text = shown[len(self.text) :], shown
                            yield chunk
                    elif kind == "done":
                        self.finish_reason = event["finish_reason"]
                        self.figures = Figures(
                            **event["figures"],
                            dropped_turns=event["dropped_turns"],
                            finish_reason=event["finish_reason"],
                        )
            except GeneratorExit:  # the caller stopped reading
                self.finish_reason = self.finish_reason or "cancelled"
                raise
            except Exception:
                self.finish_reason = self.finish_reason or "failed"
                raise
            finally:
                self.finish_reason = self.finish_reason or "cancelled"
                if self._on_end:
                    self._on_end(self)

    def __str__(self) -> str:
        return self.text


def checked_system_prompt(value: object) -> str:
    """A system prompt given from outside (a page field, a file): text of at most
    MAX_MESSAGE_CHARS characters (PromptError otherwise); None is no prompt."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PromptError("the system prompt must be text")
    if len(value) > MAX_MESSAGE_CHARS:
        raise PromptError(
            f"the system prompt is too long: it has {len(value):,} characters, and it can "
            f"have at most {MAX_MESSAGE_CHARS:,}",
            code="too_long",
            field="system_prompt",
            n=len(value),
            max=MAX_MESSAGE_CHARS,
        )
    return value


class ChatSession:
    """One conversation: its system prompt, format, sampling settings and history."""

    def __init__(
        self,
        engine: ChatEngine,
        *,
        chat_format: str = "auto",
        system_prompt: str = "",
        params: SamplingParams | None = None,
        history: list[Message] | None = None,
    ) -> None:
        self.engine = engine
        self.chat_format = chat_format
        self.system_prompt = system_prompt
        self.params = params or SamplingParams()
        self.history: list[Message] = list(history or [])
        self._first_turn = 0

    @property
    def format(self) -> ChatFormat:
        """The chat format in use: the session's choice, as the engine resolves it (a server
        applies its own template)."""
        return self.engine.chat_format(self.chat_format)

    def messages_for(self, text: str) -> list[Message]:
        """The full conversation that asking `text` would send (before trimming)."""
        if len(text) > MAX_MESSAGE_CHARS:
            raise PromptError(
                f"the message is too long: it has {len(text):,} characters, and a message "
                f"can have at most {MAX_MESSAGE_CHARS:,}",
                code="too_long",
                field="message",
                n=len(text),
                max=MAX_MESSAGE_CHARS,
            )
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return validate_messages([*system, *self.history, {"role": "user", "content": text}])

    def ask(
        self,
        text: str,
        *,
        cancel: threading.Event | None = None,
        on_queue: Callable[[int], None] | None = None,
        context: str = "",
        **overrides: Any,
    ) -> Reply:
        """Stream a reply to `text`. Overrides: temperature, top_p, top_k, min_p,
        repeat_penalty, max_tokens, seed. `on_queue(position)` is called while the request
        waits behind others. The exchange joins the history when the reply ends, also when
        it was stopped early (what was written is kept); not when it never started.

        `context` (e.g. passages from documents) is put before `text` in the prompt of this
        message only; the history keeps `text` alone."""
        messages = self.messages_for(text)
        params = self.params.replace(**overrides)
        prompt = messages
        if context:
            prompt = [
                *messages[:-1],
                {"role": "user", "content": f"{context}\n\n{messages[-1]['content']}"},
            ]
        events = self.engine.generate(
            prompt, self.format, params, keep_from=self._first_turn, cancel=cancel
        )

        def remember(reply: Reply) -> None:
            # Kept: a finished reply, or any text written before a Stop or a failure.
            if reply.text or reply.finish_reason in ("stop", "length"):
                self.history += [
                    messages[-1],  # the new message as validated
                    {"role": "assistant", "content": reply.raw_text},
                ]
                self._first_turn = reply.first_turn

        return Reply(events, remember, on_queue)

    def continue_reply(
        self,
        *,
        cancel: threading.Event | None = None,
        on_queue: Callable[[int], None] | None = None,
        **overrides: Any,
    ) -> Reply:
        """Continue the history's last message, an assistant reply that was stopped or cut
        at the token limit: generation picks up at the end of its text, in the same turn.
        The reply's `text` is the whole message; iterating yields the new text. When it ends
        the history's last message holds the whole text. PromptError if the history does not
        end with a reply or the engine cannot continue replies (`can_continue`)."""
        if not self.history or self.history[-1]["role"] != "assistant":
            raise PromptError("there is no reply to continue")
        if not self.engine.can_continue:
            raise PromptError(self.engine.continue_refusal or "this engine cannot continue")
        start = self.history[-1]["content"]
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages = validate_messages([*system, *self.history[:-1]])
        params = self.params.replace(**overrides)
        events = self.engine.generate(
            messages,
            self.format,
            params,
            keep_from=self._first_turn,
            cancel=cancel,
            open_reply=start,
        )
        reply_index = len(self.history) - 1

        def remember(reply: Reply) -> None:
            if reply.raw_text != start and len(self.history) > reply_index:
                self.history[reply_index] = {"role": "assistant", "content": reply.raw_text}
                self._first_turn = reply.first_turn

        return Reply(events, remember, on_queue, start=start)

    def set_history(self, history: list[Message]) -> None:
        """Follow another branch of the conversation: `history` (user/assistant pairs,
        maybe ending with a reply to continue). Trimming keeps its first turn while the
        turns before it are the same, so llama.cpp's cache is still reused."""
        kept = 2 * self._first_turn
        if history[:kept] != self.history[:kept]:
            self._first_turn = 0
        self.history = list(history)

    def reset(self) -> None:
        """Start a new conversation (same model and settings)."""
        self.history = []
        self._first_turn = 0


_engines: dict[tuple[int, int, int, str], Engine] = {}


def open_chat(
    model: str | None = None,
    *,
    config: Config | None = None,
    chat_format: str | None = None,
    system_prompt: str | None = None,
    **sampling: Any,
) -> ChatSession:
    """Load `model` (a file name in the models folder, or a path) and return a chat session.

    Without `model`: the model loaded by an earlier call, else `[models] default`, else the
    folder's only model. The engine is shared per process, so calling this again with the
    same model reuses it. The model loads with the context and threads chosen for it (the
    data folder's preferences), else config's.
    """
    from .preferences import Preferences

    config = config or load_config()
    key = (config.n_ctx, config.n_threads, config.n_batch, str(config.data_dir))
    if key not in _engines:
        _engines[key] = Engine.from_config(config, Preferences.in_folder(config.data_dir))
    engine = _engines[key]
    if model is None and engine.loaded is not None:
        path: str | Path = engine.loaded.info.path
    else:
        path = resolve_model(
            pick_model(model, config.default_model, config.models_dir), config.models_dir
        )
    engine.load(path)
    return ChatSession(
        engine,
        chat_format=chat_format or config.chat_format,
        system_prompt=config.system_prompt if system_prompt is None else system_prompt,
        params=config.sampling.replace(**sampling),
    )
