"""Answers of the OpenAI API in OpenAI's shapes: model lists, completions, streamed chunks as
server-sent events, embeddings. Plain dicts and bytes; no engine, no web framework."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SSE_DONE = b"data: [DONE]\n\n"
# How the engine says a reply ended -> OpenAI's finish_reason.
_FINISH = {"stop": "stop", "length": "length"}


@dataclass(frozen=True)
class ModelEntry:
    """A model /v1/models lists."""

    id: str
    backend: str  # "local" or a [[backends]] name
    loaded: bool = False  # the model the local engine holds now
    n_ctx: int = 0  # its context, when known


@dataclass(frozen=True)
class Usage:
    """Tokens of one request: the prompt as tokenized (after trimming) and the reply."""

    prompt_tokens: int
    completion_tokens: int

    def body(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def new_id(prefix: str) -> str:
    """A response id such as "chatcmpl-3f9c..." (random: ids reveal nothing)."""
    return f"{prefix}-{secrets.token_hex(12)}"


def finish_reason(engine_reason: str) -> str:
    """OpenAI's finish_reason for how the engine ended a reply."""
    return _FINISH.get(engine_reason, "stop")


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"


def model_list(models: Sequence[ModelEntry]) -> dict[str, Any]:
    """GET /v1/models. `loaded` and `backend` are LocalChat's own fields; `max_model_len` (as
    vLLM names it) is the loaded model's context, which LocalChat's remote engine trims to."""
    created = int(time.time())
    rows = []
    for m in models:
        row: dict[str, Any] = {
            "id": m.id,
            "object": "model",
            "created": created,
            "owned_by": "localchat" if m.backend == "local" else m.backend,
            "backend": m.backend,
            "loaded": m.loaded,
        }
        if m.n_ctx:
            row["max_model_len"] = m.n_ctx
        rows.append(row)
    return {"object": "list", "data": rows}


class ChatShapes:
    """The bodies and chunks of one chat completion (one id and time for all of them)."""

    object_name = "chat.completion"

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = new_id("chatcmpl")
        self.created = int(time.time())

    def _head(self, suffix: str = "") -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object_name + suffix,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
        }

    def response(self, text: str, reason: str, usage: Usage) -> dict[str, Any]:
        """The whole answer (stream false)."""
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": finish_reason(reason),
        }
        return {**self._head(), "choices": [choice], "usage": usage.body()}

    def chunk(
        self, delta: dict[str, Any], reason: str | None = None, *, usage: bool = False
    ) -> dict[str, Any]:
        """A streamed piece; with include_usage every chunk carries "usage": null."""
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": None if reason is None else finish_reason(reason),
        }
        body = {**self._head(".chunk"), "choices": [choice]}
        if usage:
            body["usage"] = None
        return body

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        """The last chunk when stream_options.include_usage is set: no choices, the usage."""
        return {**self._head(".chunk"), "choices": [], "usage": usage.body()}


class CompletionShapes(ChatShapes):
    """The bodies and chunks of one text completion."""

    object_name = "text_completion"

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.id = new_id("cmpl")

    def response(self, text: str, reason: str, usage: Usage) -> dict[str, Any]:
        choice = {
            "index": 0,
            "text": text,
            "logprobs": None,
            "finish_reason": finish_reason(reason),
        }
        return {**self._head(), "choices": [choice], "usage": usage.body()}

    def chunk(
        self, delta: dict[str, Any], reason: str | None = None, *, usage: bool = False
    ) -> dict[str, Any]:
        choice = {
            "index": 0,
            "text": delta.get("content", ""),
            "logprobs": None,
            "finish_reason": None if reason is None else finish_reason(reason),
        }
        body = {**self._head(), "choices": [choice]}  # OpenAI streams "text_completion" too
        if usage:
            body["usage"] = None
        return body

    def usage_chunk(self, usage: Usage) -> dict[str, Any]:
        return {**self._head(), "choices": [], "usage": usage.body()}


def embeddings(
    vectors: np.ndarray, model: str, encoding_format: str, prompt_tokens: int
) -> dict[str, Any]:
    """POST /v1/embeddings: one row per input, as floats or base64 float32 (what OpenAI's
    Python client asks for by default)."""
    rows = []
    for i, vector in enumerate(np.asarray(vectors, dtype="<f4")):
        if encoding_format == "base64":
            value: Any = base64.b64encode(vector.tobytes()).decode("ascii")
        else:
            value = vector.tolist()
        rows.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"object": "list", "data": rows, "model": model, "usage": usage}
