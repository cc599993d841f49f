"""Rendering a Jinja chat template as Hugging Face transformers does, with the text that came
from the template told apart from the text of the messages.

Plain values in and out (`render_segments`), so both the prompt formats (llm/prompts.py, for
LocalChat's own templates) and the helper process that renders a model file's template within
limits (llm/template_sandbox.py) use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


@cache
def _compile(template: str) -> jinja2.Template:
    # As transformers renders chat templates (apply_chat_template).
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def _placeholder(i: int) -> str:
    # Private-use characters: never produced by a template, unlikely in user text.
    return f"\ue000{i}\ue001"


_PLACEHOLDER_RE = re.compile("\ue000(\\d+)\ue001")


def render_segments(
    template_text: str,
    bos_token: str,
    eos_token: str,
    messages: Sequence[Mapping[str, str]],
    add_generation_prompt: bool = True,
) -> list[tuple[str, bool]]:
    """Render with content swapped for placeholders, then split template text from content:
    (text, is_content) pairs. Plain values in and out, so a helper process can run it.
    `add_generation_prompt` False renders the conversation as it stands (no cue for a reply),
    as for continuing its last message."""
    template = _compile(template_text)
    variables = {
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
    }
    marked = [{"role": m["role"], "content": _placeholder(i)} for i, m in enumerate(messages)]
    skeleton = template.render(messages=marked, **variables)
    real = template.render(messages=[dict(m) for m in messages], **variables)
    segments: list[tuple[str, bool]] = []
    position = 0
    for match in _PLACEHOLDER_RE.finditer(skeleton):
        if match.start() > position:
            segments.append((skeleton[position : match.start()], False))
        segments.append((messages[int(match.group(1))]["content"], True))
        position = match.end()
    if position < len(skeleton):
        segments.append((skeleton[position:], False))
    if "".join(text for text, _ in segments) != real:
        # The template transforms message text in a way placeholders cannot follow.
        raise jinja2.TemplateError("template changes message text; cannot separate it safely")
    return [(text, is_content) for text, is_content in segments if text]
