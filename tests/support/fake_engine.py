"""An engine that answers in this process, with no model and no worker: for page callbacks
tested without a browser. It is what `Engines(local=...)` takes in place of llama.cpp, and it
speaks the `ChatEngine` event protocol (start, text*, done) that `ChatSession` reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm.config import LOCAL_BACKEND, SamplingParams
from llm.engine import LoadedModel
from llm.gguf_file import ModelFile
from llm.prompts import ChatFormat, Message, get_format


@dataclass
class FakeEngine:
    """Replies `script`, one piece per event; records every conversation it was given."""

    script: Sequence[str]
    model_path: Path
    n_ctx: int = 2048
    calls: list[list[Message]] = field(default_factory=list)
    loaded: LoadedModel | None = None
    backend_name: str = LOCAL_BACKEND
    busy: bool = False
    can_continue: bool = True
    continue_refusal: str = ""
    open_replies: list[str] = field(default_factory=list)  # `open_reply` of each call

    def __post_init__(self) -> None:
        from llm.model_files import read_model_file

        info: ModelFile = read_model_file(self.model_path)
        self.loaded = LoadedModel(info, self.n_ctx)

    @property
    def model_name(self) -> str:
        return self.loaded.info.file_name if self.loaded else ""

    def chat_format(self, choice: str) -> ChatFormat:
        return get_format("chatml" if choice == "auto" else choice)

    def prepare(self) -> None:
        """Always ready: the model is 'loaded' from the start."""

    def context_for(self, info: ModelFile) -> int:
        return self.n_ctx

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
        self.calls.append(list(messages))
        self.open_replies.append(open_reply)
        yield {
            "type": "start",
            "prompt_tokens": sum(len(m["content"].split()) for m in messages),
            "dropped_turns": 0,
            "first_turn": keep_from,
            "format": fmt.name,
            "warnings": [],
        }
        sent = 0
        for piece in self.script[: params.max_tokens]:
            if cancel is not None and cancel.is_set():
                break
            sent += 1
            yield {"type": "text", "text": piece}
        finished = sent == len(self.script)
        cut = not finished and sent == params.max_tokens
        yield {
            "type": "done",
            "finish_reason": "stop" if finished else "length" if cut else "cancelled",
            "figures": {"prompt_tokens": 1, "completion_tokens": sent},
            "dropped_turns": 0,
        }

    def close(self) -> None:
        self.loaded = None
