"""RAM arithmetic: what a model needs to run, and whether this machine has it free."""

from __future__ import annotations

import psutil

from .errors import ModelFileError
from .gguf_file import ModelFile, human_size

# llama.cpp's compute buffers, the tokenizer and the worker's Python: measured ~150-250 MB for
# 1B-7B models at 4k context; rounded up.
RUNTIME_OVERHEAD_BYTES = 300_000_000


class InsufficientMemoryError(ModelFileError):
    """The model (weights + KV cache) needs more RAM than is available."""


def ram_needed_bytes(file_size: int, kv_cache_bytes: int) -> int:
    """RAM to run a model: its weights (the file, memory-mapped), the KV cache, overhead."""
    return file_size + kv_cache_bytes + RUNTIME_OVERHEAD_BYTES


def available_ram_bytes() -> int:
    """RAM that can be used without swapping out other programs."""
    return int(psutil.virtual_memory().available)


def check_fits_in_ram(info: ModelFile, n_ctx: int, available: int | None = None) -> int:
    """Raise InsufficientMemoryError (both numbers in the message) unless the model fits.

    Returns the bytes needed. `available` defaults to the machine's available RAM.
    """
    kv = info.kv_cache_bytes(n_ctx)
    needed = ram_needed_bytes(info.size_bytes, kv)
    free = available_ram_bytes() if available is None else available
    if needed > free:
        raise InsufficientMemoryError(
            f"{info.file_name} needs about {human_size(needed)} of RAM "
            f"({human_size(info.size_bytes)} weights + {human_size(kv)} context cache for "
            f"{n_ctx} tokens + overhead) but only {human_size(free)} is available; close other "
            f"programs, choose a smaller context or quantization, or load it anyway"
        )
    return needed
