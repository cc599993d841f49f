"""Prompt formats: conversations rendered exactly as each model's official chat template does.

Each built-in `ChatFormat` holds the official Jinja template from the model's Hugging Face
`tokenizer_config.json` (files in `llm/templates/`), rendered the way transformers renders it.
A template stored in a GGUF file is rendered the same way, but in a helper process with limits
on time and memory (`llm.template_sandbox`): it is code from whoever made the file. Rendering
returns `Segment`s that say which text came from the template and which from the user, so that
only template text is ever tokenized as control tokens.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from .errors import LocalChatError, PromptError
from .template_render import render_segments
from .template_sandbox import render_segments_limited

TEMPLATE_DIR = Path(__file__).parent / "templates"
ROLES = ("system", "user", "assistant")
Message = dict[str, str]


@dataclass(frozen=True)
class ChatFormat:
    """A named chat template with the special tokens it uses and its stop markers."""

    name: str
    template: str
    bos_token: str = "<s>"
    eos_token: str = "</s>"
    stop: tuple[str, ...] = ()
    # False: the template rejects a system role; it is merged into the first user turn.
    system_role: bool = True
    # Strip message content before rendering (the template trims it itself).
    trims_content: bool = False
    source: str = "built-in"
    # A template that is not LocalChat's own (from a model file): rendered within limits.
    untrusted: bool = False


def _builtin(name: str, **kwargs: Any) -> ChatFormat:
    template = (TEMPLATE_DIR / f"{name}.jinja").read_text(encoding="utf-8")
    return ChatFormat(name=name, template=template, **kwargs)


FORMATS: dict[str, ChatFormat] = {
    f.name: f
    for f in (
        # TinyLlama-1.1B-Chat-v1.0 (HuggingFaceH4/zephyr style)
        _builtin("zephyr", stop=("</s>", "<|user|>", "<|system|>")),
        # Mistral-7B-Instruct-v0.2 (the template its GGUF files carry)
        _builtin("mistral-instruct", stop=("</s>", "[INST]"), system_role=False),
        _builtin("chatml", eos_token="<|im_end|>", stop=("<|im_end|>", "<|im_start|>")),
        # Meta-Llama-3-8B-Instruct
        _builtin(
            "llama-3",
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            stop=("<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>"),
            trims_content=True,
        ),
    )
}

# Markers that end a turn in common templates; used as stop strings for GGUF templates.
_KNOWN_END_MARKERS = (
    "</s>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|user|>",
)


@dataclass(frozen=True)
class Segment:
    """A piece of a rendered prompt: template text (may hold control tokens) or message text."""

    text: str
    is_content: bool


@dataclass
class RenderedPrompt:
    """The exact prompt text plus its segments, the format used and any warnings."""

    segments: list[Segment]
    format: ChatFormat
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def validate_messages(data: Any) -> list[Message]:
    """Check a conversation given as `[{"role": ..., "content": ...}]`; return a clean copy."""
    if not isinstance(data, list) or not data:
        raise PromptError('messages must be a non-empty JSON list of {"role", "content"} objects')
    messages: list[Message] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or set(item) - {"role", "content"}:
            raise PromptError(f'message {i} must be an object with only "role" and "content"')
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise PromptError(f"message {i}: role {role!r} must be one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise PromptError(f"message {i}: content must be a string")
        if role == "system" and i != 0:
            raise PromptError(f"message {i}: a system message may only come first")
        # A lone surrogate (from a broken paste or a bad JSON escape) cannot be encoded.
        messages.append({"role": role, "content": _LONE_SURROGATE.sub("\ufffd", content)})
    turns = [m for m in messages if m["role"] != "system"]
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise PromptError(
                f"turns must alternate user/assistant starting with user; turn {i} is "
                f"{message['role']!r}"
            )
    if not turns or turns[-1]["role"] != "user":
        raise PromptError("the conversation must end with a user message")
    return messages


def load_messages(path: str | Path) -> list[Message]:
    """Read and validate a messages JSON file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"cannot read messages file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PromptError(f"messages file {path} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptError(f"messages file {path} is not valid JSON: {exc}") from None
    return validate_messages(data)


def _render_jinja(
    fmt: ChatFormat, messages: Sequence[Message], add_generation_prompt: bool = True
) -> list[Segment]:
    render = render_segments_limited if fmt.untrusted else render_segments
    pairs = render(fmt.template, fmt.bos_token, fmt.eos_token, messages, add_generation_prompt)
    return [Segment(text, is_content) for text, is_content in pairs]


def _render_open(fmt: ChatFormat, messages: list[Message]) -> list[Segment]:
    """`messages` ending with an assistant reply, rendered up to the end of its text and no
    further: no end-of-turn marker, so generation continues the reply (what transformers
    calls `continue_final_message`)."""
    segments = _render_jinja(fmt, messages, add_generation_prompt=False)
    last = max((i for i, s in enumerate(segments) if s.is_content), default=-1)
    if last < 0 or segments[last].text != messages[-1]["content"]:
        # The template leaves the reply out or moves it: it cannot be continued safely.
        raise jinja2.TemplateError("the template does not end the conversation with the reply")
    return segments[: last + 1]


def _prepare(fmt: ChatFormat, messages: Sequence[Message]) -> list[Message]:
    prepared = [dict(m) for m in messages]
    if fmt.trims_content:
        for m in prepared:
            m["content"] = m["content"].strip()
    if not fmt.system_role and prepared and prepared[0]["role"] == "system":
        system = prepared.pop(0)["content"]
        if prepared:
            first = prepared[0]["content"]
            prepared[0]["content"] = f"{system}\n\n{first}" if system else first
    return prepared


def fallback_for(fmt: ChatFormat) -> ChatFormat | None:
    """What replaces a model's own template when it fails to render: ChatML, the format most
    chat models were tuned on. LocalChat's built-in formats have none (they do not fail)."""
    return FORMATS["chatml"] if fmt.source == "gguf" else None


_OWN_FALLBACK: Any = object()


def render_prompt(
    fmt: ChatFormat,
    messages: Sequence[Message],
    *,
    fallback: ChatFormat | None = _OWN_FALLBACK,
    open_reply: str = "",
) -> RenderedPrompt:
    """Render `messages` (validated, ending with a user turn) followed by the generation cue.

    With `open_reply`, the cue is followed by that text as the start of the assistant's
    reply, left open (no end-of-turn marker) so that generation continues it; the text is
    message text, never control tokens.

    If `fmt` fails to render and has a fallback (by default `fallback_for(fmt)`; None: none),
    the fallback is used and a warning saying why is attached; else the error is raised.
    """
    if fallback is _OWN_FALLBACK:
        fallback = fallback_for(fmt)
    try:
        if open_reply:
            reply = {"role": "assistant", "content": _LONE_SURROGATE.sub("\ufffd", open_reply)}
            segments = _render_open(fmt, _prepare(fmt, [*messages, reply]))
            return RenderedPrompt(segments, fmt)
        return RenderedPrompt(_render_jinja(fmt, _prepare(fmt, messages)), fmt)
    except jinja2.TemplateError as exc:
        if fallback is None or fallback is fmt:
            raise PromptError(f"chat template {fmt.name!r} failed to render: {exc}") from None
        warning = (
            f"the {fmt.name} chat template failed to render ({exc}); "
            f"using the {fallback.name} format instead"
        )
        rendered = render_prompt(fallback, messages, open_reply=open_reply)
        rendered.warnings.insert(0, warning)
        return rendered


def format_from_gguf(template: str, bos_token: str, eos_token: str) -> ChatFormat:
    """A ChatFormat for a template stored in a GGUF file (or the built-in one it equals)."""
    for builtin in FORMATS.values():
        if template.strip() == builtin.template.strip():
            return dataclasses.replace(
                builtin,
                bos_token=bos_token or builtin.bos_token,
                eos_token=eos_token or builtin.eos_token,
                source="gguf",
            )
    stop = [eos_token, *(m for m in _KNOWN_END_MARKERS if m in template)]
    return ChatFormat(
        name="gguf",
        template=template,
        bos_token=bos_token,
        eos_token=eos_token,
        stop=tuple(s for s in dict.fromkeys(stop) if s),
        source="gguf",
        untrusted=True,
    )


# Substrings of a model's name (lower case) that identify its chat format.
_NAME_HINTS: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda n: "llama-3" in n or "llama3" in n, "llama-3"),
    (lambda n: "mistral" in n and "instruct" in n, "mistral-instruct"),
    (lambda n: "mixtral" in n and "instruct" in n, "mistral-instruct"),
    (lambda n: "tinyllama" in n or "zephyr" in n, "zephyr"),
    (lambda n: any(k in n for k in ("qwen", "chatml", "hermes", "dolphin", "smollm")), "chatml"),
)


def guess_format_name(model_name: str) -> str | None:
    """The built-in format a model's name suggests, or None."""
    name = model_name.lower()
    for matches, format_name in _NAME_HINTS:
        if matches(name):
            return format_name
    return None


def get_format(name: str) -> ChatFormat:
    """A built-in format by name."""
    try:
        return FORMATS[name]
    except KeyError:
        choices = ", ".join(["auto", *FORMATS])
        raise PromptError(f"unknown chat format {name!r} (choose from {choices})") from None


def template_system_prompt(fmt: ChatFormat) -> str:
    """The system prompt `fmt`'s template adds when a chat has none ("" if it adds none).

    SmolLM2's ChatML template, for one, writes "You are a helpful AI assistant named SmolLM,
    trained by Hugging Face" then. Found by rendering a chat with and without a system
    message: where the template writes the one given, it wrote its own."""
    user: Message = {"role": "user", "content": "\x1fU"}
    try:
        given = render_prompt(fmt, [{"role": "system", "content": "\x1fS"}, user], fallback=None)
        alone = render_prompt(fmt, [user], fallback=None)
    except LocalChatError:
        return ""
    with_system, without = given.text, alone.text
    if "\x1fS" not in with_system or "\x1fU" not in without:
        return ""  # the system prompt went elsewhere (merged into the first user turn)
    before, after = with_system.split("\x1fS", 1)
    after = after.split("\x1fU", 1)[0]  # from the system prompt's end to the user's message
    head = without.split("\x1fU", 1)[0]
    if not after or not head.startswith(before) or not head.endswith(after):
        return ""
    return head[len(before) : len(head) - len(after)].strip()
