"""The values a stored chat holds, and their checks: text made storable, titles, timestamps,
roles and statuses, the chat format, the backend name and generation settings.

Shared by the store (`llm.storage`) and import (`llm.chat_export`), so a chat is held to the
same rules however it arrives. Checks raise StorageError; import rewords them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .config import FORMAT_CHOICES, SamplingParams, valid_backend_name
from .errors import ConfigError, StorageError

ROLES = ("user", "assistant")
STATUSES = ("complete", "streaming", "stopped", "failed", "interrupted")
FIGURE_FIELDS = ("prompt_tokens", "completion_tokens", "time_to_first_token_s", "tokens_per_second")
TITLE_MAX_CHARS = 200
AUTO_TITLE_CHARS = 60

_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SAMPLING_TYPES = {f.name: type(f.default) for f in dataclasses.fields(SamplingParams)}


def now() -> str:
    """The current time as stored: ISO 8601, UTC, milliseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def clean_text(text: str) -> str:
    """`text` made storable: lone surrogates (invalid Unicode, e.g. from a browser or a JSON
    file) become U+FFFD. Null bytes and everything else are kept as they are."""
    if not isinstance(text, str):
        raise TypeError(f"expected text, got {type(text).__name__}")
    return _SURROGATES.sub("\ufffd", text)


def one_line(text: str) -> str:
    """`text` cleaned, with control characters and runs of white space made single spaces."""
    return " ".join(_CONTROL.sub(" ", clean_text(text)).split())


def title_from_message(text: str) -> str:
    """A chat title from its first message: one line, at most AUTO_TITLE_CHARS characters."""
    line = one_line(text)
    if len(line) <= AUTO_TITLE_CHARS:
        return line
    cut = line[: AUTO_TITLE_CHARS - 1]
    space = cut.rfind(" ")
    if space >= AUTO_TITLE_CHARS // 2:  # end on a whole word when one is near
        cut = cut[:space]
    return cut.rstrip() + "…"


def checked_title(title: str) -> str:
    """A title given by the user: one line, 1 to TITLE_MAX_CHARS characters."""
    line = one_line(title)
    if not line:
        raise StorageError("a chat title cannot be empty", code="title_empty")
    if len(line) > TITLE_MAX_CHARS:
        raise StorageError(
            f"a chat title can have at most {TITLE_MAX_CHARS} characters",
            code="too_long",
            field="chat_title",
            n=len(line),
            max=TITLE_MAX_CHARS,
        )
    return line


def checked_format(chat_format: str) -> str:
    """ "auto" or a registered format name."""
    if chat_format not in FORMAT_CHOICES:
        raise StorageError(
            f"chat format {chat_format!r} must be one of {', '.join(FORMAT_CHOICES)}"
        )
    return chat_format


def checked_backend(backend: str) -> str:
    """ "local" or a [[backends]] name (which need not be configured here)."""
    if not valid_backend_name(backend):
        raise StorageError(f"backend {backend!r} must be 1 to 64 letters, digits, '.', '_' or '-'")
    return backend


def checked_settings(settings: SamplingParams | Mapping[str, Any] | None) -> dict[str, Any]:
    """Generation settings as stored: known SamplingParams fields, each of its type and range."""
    if settings is None:
        return {}
    if isinstance(settings, SamplingParams):
        return dataclasses.asdict(settings)
    unknown = sorted(set(settings) - set(_SAMPLING_TYPES))
    if unknown:
        known = ", ".join(sorted(_SAMPLING_TYPES))
        raise StorageError(f"unknown generation setting {unknown[0]!r} (known: {known})")
    for key, value in settings.items():
        kind = _SAMPLING_TYPES[key]
        if kind is bool:
            ok, name = isinstance(value, bool), "true or false"
        elif kind is int:
            ok, name = isinstance(value, int) and not isinstance(value, bool), "an integer"
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            name = "a number"
        if not ok:
            raise StorageError(f"generation setting {key} = {value!r} must be {name}")
    try:
        SamplingParams().replace(**settings)
    except ConfigError as exc:
        raise StorageError(f"generation setting {exc}") from None
    return dict(settings)


def settings_from_json(text: str) -> dict[str, Any]:
    """Stored settings read back: only the fields this version knows (the config fills in the
    rest); unreadable text gives none."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return {k: v for k, v in data.items() if k in _SAMPLING_TYPES} if isinstance(data, dict) else {}
