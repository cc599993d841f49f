"""The models folder: finding GGUF files, resolving a model name safely, picking its format.

Like GPT4All's models folder, users may drop files in by hand; unfinished downloads
(`*.incomplete`, `*.part`) are never models. A name resolves only to a file inside the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError, ModelNotFoundError, PromptError
from .gguf_file import ModelFile, read_gguf_header
from .prompts import FORMATS, ChatFormat, format_from_gguf, get_format, guess_format_name

_header_cache: dict[tuple[str, int, int], ModelFile] = {}


@dataclass(frozen=True)
class ModelEntry:
    """One `.gguf` file in the models folder: its header, or why it cannot be read."""

    file_name: str
    path: str
    size_bytes: int
    info: ModelFile | None
    error: str | None
    chat_format: str


def read_model_file(path: str | Path) -> ModelFile:
    """`read_gguf_header`, cached by path, size and modification time."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return read_gguf_header(path)  # raises the precise error
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _header_cache:
        _header_cache[key] = read_gguf_header(path)
    return _header_cache[key]


def scan_models(models_dir: str | Path) -> list[ModelEntry]:
    """Every `*.gguf` file directly in `models_dir`, sorted by name; unreadable ones included
    with their error so the user sees why."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.glob("*.gguf"), key=lambda p: p.name.lower()):
        if not path.is_file():
            continue
        try:
            info = read_model_file(path)
            entries.append(
                ModelEntry(path.name, str(path), info.size_bytes, info, None, detect_format(info))
            )
        except ModelFileError as exc:
            size = path.stat().st_size if path.exists() else 0
            entries.append(ModelEntry(path.name, str(path), size, None, str(exc), ""))
    return entries


def resolve_model(model: str, models_dir: str | Path, *, allow_paths: bool = True) -> Path:
    """The file a model argument names: a file name in `models_dir` or (if allowed) a path.

    A bare name never escapes the models folder: no separators, no `..`, and a symlink
    pointing outside is refused.
    """
    if not model:
        raise ModelNotFoundError("no model given")
    folder = Path(models_dir).resolve()
    is_name = os.sep not in model and "/" not in model and model not in (".", "..")
    if is_name:
        candidates = (
            [folder / model]
            if model.endswith(".gguf")
            else [
                folder / f"{model}.gguf",
                folder / model,
            ]
        )
        for candidate in candidates:
            if candidate.is_file():
                real = candidate.resolve()
                if folder not in real.parents:
                    raise ModelFileError(f"{model}: links outside the models folder {folder}")
                return candidate
        if not allow_paths or not Path(model).is_file():
            raise ModelNotFoundError(f"model not found: {model!r} is not a file in {folder}")
    if not allow_paths:
        raise ModelNotFoundError(f"model not found: {model!r} must be a file name in {folder}")
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"model not found: no file at {path}")
    return path


def detect_format(info: ModelFile) -> str:
    """The name `auto` resolves to for this model: a built-in name, or "gguf"."""
    return auto_format(info).name


def auto_format(info: ModelFile) -> ChatFormat:
    """The GGUF's own template, else a format guessed from the model's name, else ChatML."""
    if info.chat_template:
        return format_from_gguf(info.chat_template, info.bos_token, info.eos_token)
    guessed = guess_format_name(f"{info.name} {info.file_name}")
    return FORMATS[guessed or "chatml"]


def choose_format(name: str, info: ModelFile | None) -> ChatFormat:
    """Resolve a format name (`auto` or a built-in) for a model."""
    if name != "auto":
        return get_format(name)
    if info is None:
        raise PromptError("format 'auto' needs a model to read its template from")
    return auto_format(info)
