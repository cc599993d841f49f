"""Requests of the OpenAI API, checked as a stranger's input: every field's type, size, count
and range, before anything reaches the engine.

Each `parse_*` takes the decoded JSON body and returns a typed request, or raises `ApiError`
(OpenAI's error shape, naming the field). Unknown fields are ignored, as OpenAI does; known
fields LocalChat cannot honour (`n` > 1, tools, log probabilities, JSON mode) are refused
rather than silently ignored, so a client never gets an answer to a different question.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..prompts import Message
from ..session import MAX_MESSAGE_CHARS

MAX_BODY_BYTES = 16 * 1024 * 1024  # the web layer reads no more (the chat page's own limit)
MAX_MESSAGES = 10_000
MAX_MODEL_CHARS = 256
MAX_STOP_STRINGS = 4  # as OpenAI
MAX_STOP_CHARS = 256
MAX_EMBED_INPUTS = 2048  # as OpenAI
MAX_EMBED_CHARS = 100_000  # one input
MAX_EMBED_TOTAL_CHARS = 2_000_000
MAX_TOKENS_LIMIT = 1_000_000  # as SamplingParams.max_tokens

# OpenAI's "developer" role is its newer name for "system".
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ApiError(Exception):
    """An answer in OpenAI's error shape: `{"error": {message, type, param, code}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind
        self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI's clients read the error from."""
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def bad(param: str, message: str) -> ApiError:
    """A 400 naming `param`."""
    return ApiError(400, f"{param}: {message}", param=param, code="invalid_value")


@dataclass(frozen=True)
class ChatRequest:
    """POST /v1/chat/completions, checked."""

    model: str
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False
    # Overrides of the app's sampling settings (llm.config.RequestSampling fields).
    sampling: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompletionRequest:
    """POST /v1/completions, checked: one prompt, continued as plain text."""

    model: str
    prompt: str
    stream: bool = False
    include_usage: bool = False
    sampling: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbeddingRequest:
    """POST /v1/embeddings, checked."""

    model: str  # "" : the default embedder
    inputs: list[str]
    encoding_format: str = "float"  # or "base64": little-endian float32, as OpenAI


# field checks --------------------------------------------------------------------------


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def _present(body: dict[str, Any], name: str) -> bool:
    return body.get(name) is not None  # null means "not given", as in OpenAI's clients


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"{name}: missing required field", param=name, code="missing")
        return ""
    if not isinstance(value, str):
        raise bad(name, f"must be a string, not {_kind(value)}")
    if len(value) > limit:
        raise bad(name, f"is too long ({len(value):,} characters; at most {limit:,})")
    return value


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad(name, f"must be a boolean, not {_kind(value)}")
    return value


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    # bool is an int in Python; in JSON it is not a number.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(name, f"must be a number, not {_kind(value)}")
    if not low <= value <= high:
        raise bad(name, f"{value} is out of range ({low:g} to {high:g})")
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 256.0 from a client that writes every number as a float
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(name, f"must be an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise bad(name, f"{value} is out of range ({low} to {high})")
    return value


def _stream_options(body: dict[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise bad("stream_options", f"must be an object, not {_kind(options)}")
    if not stream:
        raise bad("stream_options", "is only allowed when stream is true")
    include = options.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise bad("stream_options.include_usage", f"must be a boolean, not {_kind(include)}")
    return bool(include)


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise bad("stop", f"must be a string or an array of strings, not {_kind(value)}")
    if len(items) > MAX_STOP_STRINGS:
        raise bad("stop", f"has {len(items)} strings; at most {MAX_STOP_STRINGS}")
    for item in items:
        if not isinstance(item, str):
            raise bad("stop", f"must hold strings only, not {_kind(item)}")
        if not 1 <= len(item) <= MAX_STOP_CHARS:
            raise bad("stop", f"each string must have 1 to {MAX_STOP_CHARS} characters")
    return tuple(items)


def _unsupported(body: dict[str, Any]) -> None:
    """Known OpenAI fields whose request LocalChat cannot honour: refused, not ignored."""
    n = _integer(body, "n", 1, 128)
    if n not in (None, 1):
        raise bad("n", "LocalChat writes one answer per request: n must be 1")
    for name in ("tools", "functions"):
        if body.get(name):
            raise bad(name, "tool calling is not supported by LocalChat")
    if body.get("logprobs") not in (None, False, 0) or body.get("top_logprobs") not in (None, 0):
        raise bad("logprobs", "log probabilities are not supported by LocalChat")
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind != "text":
            raise bad("response_format", 'only {"type": "text"} is supported by LocalChat')


def _sampling(body: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    """The sampling fields given, as llm.config.RequestSampling overrides."""
    _unsupported(body)
    top_p = _number(body, "top_p", 0.0, 1.0)
    max_tokens = _integer(body, "max_tokens", 1, MAX_TOKENS_LIMIT)
    if chat:  # OpenAI's newer name, what LangChain's ChatOpenAI sends
        newer = _integer(body, "max_completion_tokens", 1, MAX_TOKENS_LIMIT)
        max_tokens = newer if newer is not None else max_tokens
    seed = _integer(body, "seed", -(2**63), 2**63 - 1)
    values = {
        "temperature": _number(body, "temperature", 0.0, 2.0),
        # top_p 0 (OpenAI allows it) means "only the likeliest token"; llama.cpp wants > 0.
        "top_p": None if top_p is None else max(top_p, 1e-6),
        "max_tokens": max_tokens,
        # llama.cpp's seed is 31 bits; any integer a client sends maps onto one.
        "seed": None if seed is None else seed % 2**31,
        "presence_penalty": _number(body, "presence_penalty", -2.0, 2.0),
        "frequency_penalty": _number(body, "frequency_penalty", -2.0, 2.0),
        # llama.cpp's own fields, as llama-server takes them (LocalChat's remote engine sends
        # them to any server).
        "top_k": _integer(body, "top_k", 0, 10_000),
        "min_p": _number(body, "min_p", 0.0, 0.999),
        "repeat_penalty": _number(body, "repeat_penalty", 0.5, 5.0),
        "ignore_eos": _bool(body, "ignore_eos") or None,
    }
    stop = _stop(body)
    if stop:
        values["stop"] = stop
    return {k: v for k, v in values.items() if v is not None}


# messages ------------------------------------------------------------------------------


def _content(item: dict[str, Any], where: str, role: str) -> str:
    content = item.get("content")
    if content is None and role == "assistant":
        return ""  # an assistant turn that only called tools: nothing to show
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = []
        for j, part in enumerate(content[:MAX_MESSAGES]):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad(f"{where}.content[{j}]", "only text parts are supported by LocalChat")
            text = part.get("text")
            if not isinstance(text, str):
                raise bad(f"{where}.content[{j}].text", f"must be a string, not {_kind(text)}")
            parts.append(text)
        if len(content) > MAX_MESSAGES:
            raise bad(f"{where}.content", f"has more than {MAX_MESSAGES} parts")
        content = "".join(parts)
    if not isinstance(content, str):
        raise bad(
            f"{where}.content", f"must be a string or an array of text parts, not {_kind(content)}"
        )
    if len(content) > MAX_MESSAGE_CHARS:
        raise bad(
            f"{where}.content",
            f"is too long ({len(content):,} characters; at most {MAX_MESSAGE_CHARS:,})",
        )
    return content


def _messages(body: dict[str, Any]) -> list[Message]:
    """The conversation as LocalChat's pages hold it: one system message first at most, then
    user and assistant turns alternating, ending with the user's.

    Several system messages are joined into the first; consecutive messages of one role are
    joined with a blank line (the page cannot send two in a row, OpenAI's clients can)."""
    data = body.get("messages")
    if data is None:
        raise ApiError(400, "messages: missing required field", param="messages", code="missing")
    if not isinstance(data, list):
        raise bad("messages", f"must be an array, not {_kind(data)}")
    if not 1 <= len(data) <= MAX_MESSAGES:
        raise bad("messages", f"must hold 1 to {MAX_MESSAGES:,} messages (it holds {len(data)})")
    system: list[str] = []
    turns: list[Message] = []
    for i, item in enumerate(data):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise bad(where, f"must be an object, not {_kind(item)}")
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            shown = role if isinstance(role, str) else _kind(role)
            raise bad(
                f"{where}.role",
                f"{shown!r} is not supported (use system, developer, user or assistant)",
            )
        if item.get("tool_calls"):
            raise bad(f"{where}.tool_calls", "tool calling is not supported by LocalChat")
        content = _content(item, where, role)
        role = _ROLES[role]
        if role == "system":
            system.append(content)
        elif turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": f"{turns[-1]['content']}\n\n{content}"}
        else:
            turns.append({"role": role, "content": content})
    if not turns or turns[-1]["role"] != "user":
        raise bad("messages", "the last message must be the user's (or the only ones system)")
    if turns[0]["role"] != "user":  # chat templates start with a user turn
        raise bad("messages", "the first message after the system ones must be the user's")
    joined = "\n\n".join(system)
    if len(joined) > MAX_MESSAGE_CHARS:
        raise bad(
            "messages",
            f"the system messages are too long (at most {MAX_MESSAGE_CHARS:,} characters together)",
        )
    return ([{"role": "system", "content": joined}] if system else []) + turns


# requests ------------------------------------------------------------------------------


def parse_chat(body: Any) -> ChatRequest:
    """A chat completion request, checked (ApiError otherwise)."""
    body = _object(body)
    stream = _bool(body, "stream")
    return ChatRequest(
        model=_text(body, "model", MAX_MODEL_CHARS),
        messages=_messages(body),
        stream=stream,
        include_usage=_stream_options(body, stream),
        sampling=_sampling(body, chat=True),
    )


def parse_completion(body: Any) -> CompletionRequest:
    """A text completion request, checked: one prompt string (OpenAI also takes a list of
    prompts or of token ids: one string, alone or in a list, is what LocalChat answers)."""
    body = _object(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if prompt is None:
        raise ApiError(400, "prompt: missing required field", param="prompt", code="missing")
    if not isinstance(prompt, str):
        raise bad("prompt", "must be a string (or an array holding one string)")
    if len(prompt) > MAX_MESSAGE_CHARS:
        raise bad(
            "prompt", f"is too long ({len(prompt):,} characters; at most {MAX_MESSAGE_CHARS:,})"
        )
    if _bool(body, "echo"):
        raise bad("echo", "echoing the prompt is not supported by LocalChat")
    if body.get("suffix"):
        raise bad("suffix", "a suffix (fill in the middle) is not supported by LocalChat")
    best_of = _integer(body, "best_of", 1, 128)
    if best_of not in (None, 1):
        raise bad("best_of", "LocalChat writes one answer per request: best_of must be 1")
    stream = _bool(body, "stream")
    return CompletionRequest(
        model=_text(body, "model", MAX_MODEL_CHARS),
        prompt=prompt,
        stream=stream,
        include_usage=_stream_options(body, stream),
        sampling=_sampling(body, chat=False),
    )


def parse_embedding(body: Any) -> EmbeddingRequest:
    """An embeddings request, checked: a string or an array of strings."""
    body = _object(body)
    value = body.get("input")
    if value is None:
        raise ApiError(400, "input: missing required field", param="input", code="missing")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
        raise bad(
            "input",
            "must be a string or an array of strings (token arrays are not supported by LocalChat)",
        )
    if not 1 <= len(inputs) <= MAX_EMBED_INPUTS:
        raise bad("input", f"must hold 1 to {MAX_EMBED_INPUTS} strings (it holds {len(inputs)})")
    for i, text in enumerate(inputs):
        if not text:
            raise bad(f"input[{i}]", "must not be empty")
        if len(text) > MAX_EMBED_CHARS:
            raise bad(
                f"input[{i}]",
                f"is too long ({len(text):,} characters; at most {MAX_EMBED_CHARS:,})",
            )
    if sum(len(t) for t in inputs) > MAX_EMBED_TOTAL_CHARS:
        raise bad("input", f"is too long (at most {MAX_EMBED_TOTAL_CHARS:,} characters together)")
    encoding = _text(body, "encoding_format", 16) or "float"
    if encoding not in ("float", "base64"):
        raise bad("encoding_format", f"{encoding!r} must be float or base64")
    if body.get("dimensions") is not None:
        raise bad("dimensions", "shortened embeddings are not supported by LocalChat")
    return EmbeddingRequest(
        model=_text(body, "model", MAX_MODEL_CHARS), inputs=inputs, encoding_format=encoding
    )
