"""Does a model fit this machine: the one rule, for loading (the engine), the command line and the
models page.

RAM needed = the weights (the file, memory-mapped) + the f16 KV cache at the context the model
runs with + `RUNTIME_OVERHEAD_BYTES`. The first two come from the GGUF header for a local file,
from the catalog for a Hub file it knows, else from an estimate (`ram_for_hub_file`).

The verdict (`ram_verdict`): "fits" when that is at most the RAM available now, "tight" when it is
within `RAM_HEADROOM` of all the RAM (close other programs first), else "does_not_fit". The engine
loads only what fits (`check_fits_in_ram`, which says both numbers); the pages and the command
line show the verdict with the disk check (`check_fit`, `hub_file_fit`).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from .catalog import Catalog
from .errors import InsufficientMemoryError
from .gguf_file import ModelFile, human_size

# llama.cpp's compute buffers, the tokenizer and the worker's Python: measured ~150-250 MB for
# 1B-7B models at 4k context; rounded up.
RUNTIME_OVERHEAD_BYTES = 300_000_000
# Even with every other program closed, the system keeps some memory for itself.
RAM_HEADROOM = 0.9
DISK_RESERVE = 100 * 1000 * 1000  # leave this much free after a download
# A file the catalog does not know: its KV cache taken as 15% of its size at this context (the
# catalog's models range from 7% to 67% at 4096 tokens, most between 10% and 25%).
ESTIMATE_KV_SHARE = 0.15
ESTIMATE_CONTEXT = 4096


@dataclass(frozen=True)
class RamNeeded:
    """What a model needs in RAM at one context size, and where the figures come from."""

    weights: int
    kv_cache: int
    n_ctx: int
    source: str  # "file" (its GGUF header), "catalog" or "estimate"
    overhead: int = RUNTIME_OVERHEAD_BYTES

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead

    @property
    def estimated(self) -> bool:
        return self.source == "estimate"


def ram_for_file(info: ModelFile, n_ctx: int) -> RamNeeded:
    """RAM for a local file at `n_ctx` tokens (the context the engine gives it), from its
    header: exact weights and KV cache."""
    return RamNeeded(info.size_bytes, info.kv_cache_bytes(n_ctx), n_ctx, "file")


def ram_for_hub_file(
    repo_id: str, file_name: str, size_bytes: int, *, n_ctx: int, catalog: Catalog | None = None
) -> RamNeeded:
    """RAM for a Hub file at `n_ctx` tokens: the catalog's KV cache when it knows the file
    (capped at the model's trained context, as the engine does), else an estimate."""
    entry = catalog.find(repo_id, file_name.rsplit("/", 1)[-1]) if catalog else None
    if entry is not None:
        return RamNeeded(entry.size_bytes, entry.kv_cache_bytes(n_ctx), n_ctx, "catalog")
    kv = round(size_bytes * ESTIMATE_KV_SHARE * n_ctx / ESTIMATE_CONTEXT)
    return RamNeeded(size_bytes, kv, n_ctx, "estimate")


# --- this machine ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Machine:
    """Memory and disk space right now."""

    ram_total: int
    ram_available: int
    disk_free: int
    models_dir: str


def machine_status(models_dir: str | Path) -> Machine:
    """RAM (psutil) and free disk space where the models folder is (or will be)."""
    folder = Path(models_dir).expanduser().resolve()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    memory = psutil.virtual_memory()
    return Machine(memory.total, memory.available, shutil.disk_usage(existing).free, str(folder))


def available_ram_bytes() -> int:
    """RAM that can be used without swapping out other programs."""
    return int(psutil.virtual_memory().available)


# --- the verdict ------------------------------------------------------------------------------
def ram_verdict(needed: int, available: int, total: int) -> str:
    """The verdict on `needed` bytes: "fits" (within the RAM available now), "tight" (within
    RAM_HEADROOM of all of it: close other programs first) or "does_not_fit"."""
    if needed <= available:
        return "fits"
    if needed <= total * RAM_HEADROOM:
        return "tight"
    return "does_not_fit"


def fits_on_disk(needed: int, free: int) -> bool:
    """Whether `needed` more bytes can be written and still leave DISK_RESERVE free."""
    return needed + DISK_RESERVE <= free


def check_fits_in_ram(info: ModelFile, n_ctx: int, available: int | None = None) -> int:
    """Before loading: raise InsufficientMemoryError (both numbers in the message) unless the
    model fits in the RAM available now. Returns the bytes needed.

    `available` defaults to the machine's available RAM."""
    need = ram_for_file(info, n_ctx)
    free = available_ram_bytes() if available is None else available
    total = int(psutil.virtual_memory().total)
    if ram_verdict(need.total, free, total) != "fits":
        raise InsufficientMemoryError(
            f"{info.file_name} needs about {human_size(need.total)} of RAM "
            f"({human_size(need.weights)} weights + {human_size(need.kv_cache)} context cache "
            f"for {n_ctx} tokens + overhead) but only {human_size(free)} is available; close "
            f"other programs, choose a smaller context or quantization, or load it anyway"
        )
    return need.total


@dataclass(frozen=True)
class Fit:
    """Whether a model file suits this machine."""

    ram: str  # "fits" | "tight" | "does_not_fit"
    ram_needed: int
    ram_estimated: bool
    disk_ok: bool
    disk_needed: int
    disk_free: int
    message: str

    @property
    def label(self) -> str:
        return self.ram.replace("_", " ")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "label": self.label}


def check_fit(
    size_bytes: int,
    machine: Machine,
    *,
    ram_bytes: int,
    ram_estimated: bool = False,
    already_bytes: int = 0,
) -> Fit:
    """The verdict for a file of `size_bytes` that needs `ram_bytes` of RAM (see RamNeeded):
    `ram_verdict`, and whether the rest of the file fits on disk."""
    about = "about " if ram_estimated else ""
    ram = ram_verdict(ram_bytes, machine.ram_available, machine.ram_total)
    needs = f"needs {about}{human_size(ram_bytes)} of RAM"
    if ram == "fits":
        text = f"fits: {needs}, {human_size(machine.ram_available)} free"
    elif ram == "tight":
        text = f"tight: {needs}, only {human_size(machine.ram_available)} free now; "
        text += "close other programs first"
    else:
        text = f"does not fit: {needs}, this machine has {human_size(machine.ram_total)}"
    disk_needed = max(size_bytes - already_bytes, 0)
    disk_ok = fits_on_disk(disk_needed, machine.disk_free)
    if not disk_ok:
        text += (
            f"; not enough disk space: needs {human_size(disk_needed)}, "
            f"{human_size(machine.disk_free)} free"
        )
    return Fit(ram, ram_bytes, ram_estimated, disk_ok, disk_needed, machine.disk_free, text)


def hub_file_fit(
    repo_id: str,
    file_name: str,
    size_bytes: int,
    machine: Machine,
    *,
    n_ctx: int,
    catalog: Catalog | None = None,
) -> Fit:
    """The verdict for a Hub file at the configured context (`ram_for_hub_file`): what the
    models page and `python -m llm files` / `catalog` show."""
    need = ram_for_hub_file(repo_id, file_name, size_bytes, n_ctx=n_ctx, catalog=catalog)
    return check_fit(size_bytes, machine, ram_bytes=need.total, ram_estimated=need.estimated)
