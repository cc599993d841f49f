"""The models folder: finding GGUF files, resolving a model name safely, picking its format.

Like GPT4All's models folder, users may drop files in by hand, or links to files kept elsewhere
(LM Studio and GPT4All users link models between apps): a `.gguf` entry of the folder is a
model wherever a link points, because the user put it there. A *name* typed or sent from a page
is only ever an entry's file name, never a path: no separators, no `..`. Listing and loading go
through `model_paths`, so whatever is listed loads and nothing else does. Unfinished downloads
(`*.incomplete`, `*.part`) are never models.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError, ModelNotFoundError, PromptError
from .gguf_file import ModelFile, read_gguf_header
from .prompts import FORMATS, ChatFormat, format_from_gguf, get_format, guess_format_name

_header_cache: dict[tuple[str, int, int], ModelFile] = {}
_LONGEST_NAME = 255  # a file name's limit on common file systems: anything longer names nothing


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
    """`read_gguf_header`, cached by path, size and modification time.

    The path is not resolved: a link is a model of its own name (its `file_name` and `path`
    are the link's), even when the file it points to is read under another name too."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return read_gguf_header(path)  # raises the precise error
    key = (str(path.absolute()), stat.st_size, stat.st_mtime_ns)
    if key not in _header_cache:
        _header_cache[key] = read_gguf_header(path)
    return _header_cache[key]


def model_paths(models_dir: str | Path) -> Iterator[Path]:
    """The folder's models: every `*.gguf` entry that is a file or a link to one (wherever it
    points), sorted by name. Dangling links and folders named `*.gguf` are not models."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.gguf"), key=lambda p: p.name.lower()):
        if path.is_file():  # follows a link
            yield path


def models_folder_empty(models_dir: str | Path) -> bool:
    """True when the folder holds no model (the pages then offer a first one)."""
    return next(model_paths(models_dir), None) is None


def scan_models(models_dir: str | Path) -> list[ModelEntry]:
    """Every model in `models_dir` (see `model_paths`); unreadable ones included with their
    error so the user sees why."""
    entries = []
    for path in model_paths(models_dir):
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
    """The file a model argument names: a model of `models_dir` by its file name (`.gguf`
    optional), or, if allowed, a path.

    A name has no separators and is not `..`, so it only ever names an entry of the folder,
    and it resolves exactly when `model_paths` lists that entry (a link in the folder is
    followed, as it is listed).
    """
    if not model:
        raise ModelNotFoundError("no model given")
    if len(model) > _LONGEST_NAME and not allow_paths:
        raise ModelNotFoundError(f"model not found: a name of {len(model):,} characters")
    folder = Path(models_dir).resolve()
    is_name = os.sep not in model and "/" not in model and model not in (".", "..")
    if is_name and len(model) <= _LONGEST_NAME:
        file_name = model if model.endswith(".gguf") else f"{model}.gguf"
        candidate = folder / file_name
        if _is_file(candidate):  # a link in the folder is followed, as it is listed
            return candidate
        if not allow_paths or not _is_file(Path(model)):
            hint = _suggestions(model, folder)
            raise ModelNotFoundError(f"model not found: {model!r} is not a file in {folder}{hint}")
    if not allow_paths:
        raise ModelNotFoundError(f"model not found: {model!r} must be a file name in {folder}")
    path = Path(model).expanduser()
    if not _is_file(path):
        raise ModelNotFoundError(f"model not found: no file at {path}")
    return path


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, say: no such file
        return False


def closest_names(model: str, names: list[str], n: int = 3) -> list[str]:
    """Up to `n` of `names` that `model` most likely meant: names containing it (case
    ignored), then names spelled alike."""
    if not model or len(model) > _LONGEST_NAME:
        return []
    key = model.lower().removesuffix(".gguf")
    lowered = {name.lower().removesuffix(".gguf"): name for name in names}
    found = [name for low, name in lowered.items() if key in low]
    for low in difflib.get_close_matches(key, list(lowered), n=n, cutoff=0.6):
        if lowered[low] not in found:
            found.append(lowered[low])
    return found[:n]


def _suggestions(model: str, folder: Path) -> str:
    names = [path.name for path in model_paths(folder)]
    close = closest_names(model, names)
    if close:
        return f" (did you mean {_either(close)}?)"
    if not names:
        return " (the folder has no models)"
    return f" (models there: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def only_model(models_dir: str | Path) -> str | None:
    """The file name of the folder's one usable model; None when it has none or several."""
    usable = [entry.file_name for entry in scan_models(models_dir) if entry.info is not None]
    return usable[0] if len(usable) == 1 else None


def model_to_use(named: str | None, configured: str, models_dir: str | Path) -> str | None:
    """Which model to load: the one named, else the configured default, else the folder's
    only usable model; None when that leaves no choice (the web app then starts without)."""
    return named or configured or only_model(models_dir)


def pick_model(named: str | None, configured: str, models_dir: str | Path) -> str:
    """`model_to_use`, for callers that need a model: ModelNotFoundError says what to do."""
    model = model_to_use(named, configured, models_dir)
    if model:
        return model
    names = [entry.file_name for entry in scan_models(models_dir) if entry.info is not None]
    if not names:
        raise ModelNotFoundError(
            f"no model in {models_dir}: python -m llm starter gets a small one, "
            f"or put a .gguf file there"
        )
    raise ModelNotFoundError(
        f"which model? {models_dir} has {len(names)} models ({', '.join(names)}): "
        f"name one, or set [models] default in config.toml"
    )


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
