"""Preferences the user sets in the app and expects remembered: the chat format and the load
settings (context length, threads) chosen per model, and the system prompt new chats start with.

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
from .load_settings import AUTO_THREADS, MAX_CONTEXT, MIN_CONTEXT, LoadSettings

# The widest values a stored load setting may have: each model's own bounds are checked where
# the value is chosen (llm.load_settings.check_load_settings); these guard a hand-edited file.
_LOAD_LIMITS = {"n_ctx": (MIN_CONTEXT, MAX_CONTEXT), "n_threads": (AUTO_THREADS, 1024)}

FILE_NAME = "preferences.json"
MAX_PROMPT_CHARS = 1_000_000  # as llm.session.MAX_MESSAGE_CHARS (a system prompt is a message)


class Preferences:
    """The user's remembered choices, read once from `path` and saved on every change."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._chat_formats: dict[str, str] = {}
        self._system_prompt: str | None = None  # None: none chosen (config.toml's applies)
        self._load: dict[str, dict[str, int]] = {}  # model file -> {"n_ctx", "n_threads"}
        if self.path.exists():
            self._chat_formats, self._system_prompt, self._load = _read(self.path)

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
        _check_file_name(model_file)
        with self._lock:
            formats = dict(self._chat_formats)
            if name == "auto":
                formats.pop(model_file, None)
            else:
                formats[model_file] = name
            self._save(formats, self._system_prompt, self._load)
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
            self._save(self._chat_formats, prompt, self._load)
            self._system_prompt = prompt

    def load_settings(self, model_file: str) -> dict[str, int]:
        """The load settings chosen for `model_file`: {"n_ctx", "n_threads"}, either missing
        when not chosen (`llm.load_settings.settings_for` fills in config.toml's)."""
        with self._lock:
            return dict(self._load.get(model_file, {}))

    def set_load_settings(self, model_file: str, settings: LoadSettings | None) -> None:
        """Remember `settings` for `model_file` (checked against the model first, with
        `check_load_settings`); None forgets them (config.toml's apply again)."""
        _check_file_name(model_file)
        chosen = None
        if settings is not None:
            chosen = {"n_ctx": settings.n_ctx, "n_threads": settings.n_threads}
            if not _valid_load(chosen):
                raise ConfigError(f"load settings {chosen} are out of range")
        with self._lock:
            load = dict(self._load)
            if chosen is None:
                load.pop(model_file, None)
            else:
                load[model_file] = chosen
            self._save(self._chat_formats, self._system_prompt, load)
            self._load = load

    def _save(
        self, formats: dict[str, str], prompt: str | None, load: dict[str, dict[str, int]]
    ) -> None:
        data: dict[str, Any] = {"chat_formats": formats}
        if prompt is not None:
            data["system_prompt"] = prompt
        if load:
            data["load_settings"] = load
        _write(self.path, data)


def _check_file_name(model_file: str) -> None:
    if not isinstance(model_file, str) or not model_file or "/" in model_file:
        raise ConfigError(f"{model_file!r} is not a model file name")
    if os.sep in model_file:
        raise ConfigError(f"{model_file!r} is not a model file name")


def _valid_load(values: Any) -> bool:
    return (
        isinstance(values, dict)
        and set(values) <= set(_LOAD_LIMITS)
        and all(
            type(v) is int and _LOAD_LIMITS[k][0] <= v <= _LOAD_LIMITS[k][1]
            for k, v in values.items()
        )
    )


def _read(path: Path) -> tuple[dict[str, str], str | None, dict[str, dict[str, int]]]:
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
    load = data.get("load_settings", {})
    if not isinstance(load, dict) or not all(
        isinstance(k, str) and _valid_load(v) for k, v in load.items()
    ):
        raise ConfigError(
            f"{path}: load_settings must map model file names to n_ctx ({MIN_CONTEXT} to "
            f"{MAX_CONTEXT}) and n_threads (0 to 1024)"
        )
    return dict(formats), prompt, {k: dict(v) for k, v in load.items()}


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
