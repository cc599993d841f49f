"""Preferences the user sets in the app and expects remembered: the chat format chosen per
model, and the system prompt new chats start with.

Stored as a small JSON file in the data folder (`Config.data_dir`), written atomically so a
crash never leaves half a file. Thread-safe: the web app's clients share one instance.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from .config import FORMAT_CHOICES
from .errors import ConfigError

FILE_NAME = "preferences.json"
MAX_PROMPT_CHARS = 1_000_000  # as llm.session.MAX_MESSAGE_CHARS (a system prompt is a message)


class Preferences:
    """The user's remembered choices, read once from `path` and saved on every change."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._chat_formats: dict[str, str] = {}
        self._system_prompt: str | None = None  # None: none chosen (config.toml's applies)
        if self.path.exists():
            self._chat_formats, self._system_prompt = _read(self.path)

    @classmethod
    def in_folder(cls, data_dir: str | Path) -> Preferences:
        """The preferences file of a data folder (the folder is created on first save)."""
        return cls(Path(data_dir) / FILE_NAME)

    def chat_format(self, model_file: str) -> str | None:
        """The format chosen for `model_file` (a file name), or None if none was chosen."""
        with self._lock:
            return self._chat_formats.get(model_file)

    def set_chat_format(self, model_file: str, name: str) -> None:
        """Remember `name` for `model_file`; "auto" forgets the choice."""
        if name not in FORMAT_CHOICES:
            raise ConfigError(f"chat format {name!r} must be one of {', '.join(FORMAT_CHOICES)}")
        if not model_file or "/" in model_file or os.sep in model_file:
            raise ConfigError(f"{model_file!r} is not a model file name")
        with self._lock:
            formats = dict(self._chat_formats)
            if name == "auto":
                formats.pop(model_file, None)
            else:
                formats[model_file] = name
            self._save(formats, self._system_prompt)
            self._chat_formats = formats  # only once saved: a failed write changes nothing

    def system_prompt(self) -> str | None:
        """The system prompt chosen for new chats ("" for none), or None if none was chosen."""
        with self._lock:
            return self._system_prompt

    def set_system_prompt(self, prompt: str | None) -> None:
        """Remember `prompt` for new chats ("" : start with none); None forgets the choice."""
        if prompt is not None and not isinstance(prompt, str):
            raise ConfigError("the system prompt must be text")
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            raise ConfigError(
                f"the system prompt is too long: it has {len(prompt):,} characters, and it can "
                f"have at most {MAX_PROMPT_CHARS:,}",
                code="too_long",
                field="system_prompt",
                n=len(prompt),
                max=MAX_PROMPT_CHARS,
            )
        with self._lock:
            self._save(self._chat_formats, prompt)
            self._system_prompt = prompt

    def _save(self, formats: dict[str, str], prompt: str | None) -> None:
        data: dict[str, Any] = {"chat_formats": formats}
        if prompt is not None:
            data["system_prompt"] = prompt
        _write(self.path, data)


def _read(path: Path) -> tuple[dict[str, str], str | None]:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read preferences ({exc}); fix or delete it") from None
    formats = data.get("chat_formats", {}) if isinstance(data, dict) else None
    if not isinstance(formats, dict) or not all(
        isinstance(k, str) and v in FORMAT_CHOICES for k, v in formats.items()
    ):
        raise ConfigError(f"{path}: chat_formats must map model file names to format names")
    prompt = data.get("system_prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ConfigError(f"{path}: system_prompt must be text")
    return dict(formats), prompt


def _write(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".preferences-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot save preferences ({exc})") from None
