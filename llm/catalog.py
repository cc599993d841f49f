"""The curated model catalog: llm/catalog.toml read into typed entries, one per GGUF file.

The catalog is data (repository, file, quantization, size, RAM, chat format, license); this
module only reads and checks it. Sizes there are the Hub's byte counts where known, and RAM
is file size plus the f16 KV cache at the default context (see the comment in the TOML).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import FORMAT_CHOICES
from .errors import LocalChatError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

CATALOG_PATH = Path(__file__).with_name("catalog.toml")
SIZE_SOURCES = ("hub", "computed")


class CatalogError(LocalChatError):
    """catalog.toml is missing a field or has a bad value."""


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable GGUF file of a catalog model."""

    model_id: str
    name: str
    repo_id: str
    file_name: str
    quantization: str
    size_bytes: int
    size_source: str  # "hub" (the Hub's byte count) or "computed" (see catalog.toml)
    ram_bytes: int  # size + KV cache at the catalog's default context
    chat_format: str
    license: str
    description: str
    note: str
    recommended: bool
    n_layer: int
    n_head_kv: int
    head_dim: int
    context_length: int

    def kv_cache_bytes(self, n_ctx: int) -> int:
        """Bytes of an f16 KV cache for `n_ctx` tokens, capped at the trained context."""
        tokens = min(n_ctx, self.context_length)
        return 2 * 2 * self.n_layer * tokens * self.n_head_kv * self.head_dim

    def ram_bytes_at(self, n_ctx: int) -> int:
        """RAM needed at another context size: the file plus its KV cache."""
        return self.size_bytes + self.kv_cache_bytes(n_ctx)


@dataclass(frozen=True)
class Catalog:
    default_context: int
    entries: tuple[CatalogEntry, ...]

    def recommended(self) -> CatalogEntry:
        """The first model to offer when the models folder is empty."""
        for entry in self.entries:
            if entry.recommended:
                return entry
        return self.entries[0]

    def find(self, repo_id: str, file_name: str) -> CatalogEntry | None:
        """The entry for a Hub file, matched without regard to case, or None."""
        key = (repo_id.lower(), file_name.lower())
        for entry in self.entries:
            if (entry.repo_id.lower(), entry.file_name.lower()) == key:
                return entry
        return None


def _field(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise CatalogError(f"{where}: missing {key}")
    value = table[key]
    # bool is an int in Python; a TOML `true` is not a size.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CatalogError(f"{where}: {key} = {value!r} must be {kind.__name__}")
    return value


@functools.cache
def default_catalog() -> Catalog:
    """llm/catalog.toml, read once per process."""
    return load_catalog()


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and check the catalog (default: llm/catalog.toml)."""
    path = Path(path) if path else CATALOG_PATH
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read the model catalog {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    default_context = _field(data, "default_context", int, path.name)
    entries = []
    for model in data.get("models", []):
        where = f"{path.name}: model {model.get('id', '?')}"
        common = {
            key: _field(model, key, str, where)
            for key in ("id", "name", "repo_id", "chat_format", "license", "description")
        }
        shape = {
            key: _field(model, key, int, where)
            for key in ("n_layer", "n_head_kv", "head_dim", "context_length")
        }
        if common["chat_format"] not in FORMAT_CHOICES:
            raise CatalogError(f"{where}: unknown chat_format {common['chat_format']!r}")
        for file in model.get("files", []):
            fwhere = f"{where}, file {file.get('file_name', '?')}"
            source = _field(file, "size_source", str, fwhere)
            if source not in SIZE_SOURCES:
                raise CatalogError(f"{fwhere}: size_source must be one of {SIZE_SOURCES}")
            entries.append(
                CatalogEntry(
                    model_id=common["id"],
                    name=common["name"],
                    repo_id=common["repo_id"],
                    file_name=_field(file, "file_name", str, fwhere),
                    quantization=_field(file, "quantization", str, fwhere),
                    size_bytes=_field(file, "size_bytes", int, fwhere),
                    size_source=source,
                    ram_bytes=_field(file, "ram_bytes", int, fwhere),
                    chat_format=common["chat_format"],
                    license=common["license"],
                    description=common["description"],
                    note=str(file.get("note", "")),
                    recommended=bool(file.get("recommended", False)),
                    **shape,
                )
            )
    if not entries:
        raise CatalogError(f"{path.name}: no models")
    return Catalog(default_context, tuple(entries))
