"""How a local model is loaded: its context length and threads, chosen per model file.

config.toml's `[inference] n_ctx` and `n_threads` are the defaults for every model; the user may
choose other values for one model (the pages, `python -m llm models settings`), remembered in
the preferences file (`Preferences.load_settings`). The engine loads a model with
`settings_for` and reports what llama.cpp really took (`LoadedModel`).

Bounds, checked here as a stranger's input (a page variable can hold anything):
- context: `MIN_CONTEXT` to the model's training context (at most `MAX_CONTEXT`); a bigger one
  only allocates KV cache the model was never trained to use;
- threads: `AUTO_THREADS` (0: llama.cpp gets the physical cores) or 1 to `os.cpu_count()`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

from .errors import ConfigError
from .fit import RamNeeded, ram_for_file, ram_verdict
from .gguf_file import ModelFile

if TYPE_CHECKING:
    from .config import Config
    from .preferences import Preferences

MIN_CONTEXT = 256
MAX_CONTEXT = 1_048_576
AUTO_THREADS = 0
_WHOLE = re.compile(r"\s*[0-9]{1,9}\s*")


@dataclass(frozen=True)
class LoadSettings:
    """What a model is loaded with: context length in tokens, threads (0: automatic)."""

    n_ctx: int
    n_threads: int


@dataclass(frozen=True)
class LoadBounds:
    """The values one model accepts on this machine, and the facts they come from."""

    min_ctx: int
    max_ctx: int
    trained_ctx: int  # the model's training context (0: its file does not say)
    max_threads: int  # os.cpu_count()
    auto_threads: int  # what 0 means here: the physical cores


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp gains nothing from hyper-threads)."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def logical_cpus() -> int:
    """The most threads a model may be given: every logical CPU."""
    return os.cpu_count() or 1


def load_bounds(info: ModelFile) -> LoadBounds:
    """The bounds for `info` on this machine."""
    trained = info.context_length if info.context_length > 0 else 0
    max_ctx = min(trained, MAX_CONTEXT) if trained else MAX_CONTEXT
    return LoadBounds(
        min_ctx=min(MIN_CONTEXT, max_ctx),
        max_ctx=max_ctx,
        trained_ctx=trained,
        max_threads=logical_cpus(),
        auto_threads=physical_cores(),
    )


def whole_number(value: Any, field: str) -> int:
    """`value` (as a page or a flag sent it) as an int: an int, a float without a fraction,
    or digits; anything else raises ConfigError (`not_a_whole_number`, naming `field`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        return int(value)
    shown = repr(value)[:40]
    raise ConfigError(
        f"{field}: {shown} is not a whole number",
        code="not_a_whole_number",
        field=field,
        value=shown,
    )


def check_load_settings(info: ModelFile, n_ctx: Any, n_threads: Any) -> LoadSettings:
    """`n_ctx` and `n_threads` for `info` if both are within `load_bounds`, else ConfigError
    (codes `context_out_of_range`, `threads_out_of_range`, `not_a_whole_number`)."""
    bounds = load_bounds(info)
    ctx = whole_number(n_ctx, "n_ctx")
    threads = whole_number(n_threads, "n_threads")
    if not bounds.min_ctx <= ctx <= bounds.max_ctx:
        why = f"the model was trained on {bounds.trained_ctx:,}" if bounds.trained_ctx else ""
        raise ConfigError(
            f"context length {ctx:,} is out of range for {info.file_name}: "
            f"{bounds.min_ctx:,} to {bounds.max_ctx:,}" + (f" ({why})" if why else ""),
            code="context_out_of_range",
            field="n_ctx",
            value=ctx,
            min=bounds.min_ctx,
            max=bounds.max_ctx,
        )
    if threads != AUTO_THREADS and not 1 <= threads <= bounds.max_threads:
        raise ConfigError(
            f"threads {threads} is out of range: 0 (automatic) or 1 to {bounds.max_threads} "
            f"(this machine's CPUs)",
            code="threads_out_of_range",
            field="n_threads",
            value=threads,
            max=bounds.max_threads,
        )
    return LoadSettings(ctx, threads)


def config_defaults(config: Config) -> LoadSettings:
    """config.toml's values, the defaults of every model (`settings_for` caps the context)."""
    return LoadSettings(config.n_ctx, config.n_threads)


def settings_for(
    info: ModelFile, defaults: LoadSettings, prefs: Preferences | None
) -> LoadSettings:
    """What `info` loads with: the values chosen for its file name, else `defaults`
    (`config_defaults`); the context capped by the model's own (a chosen one too: the file
    may have been replaced since)."""
    chosen = prefs.load_settings(info.file_name) if prefs is not None else {}
    n_ctx = chosen.get("n_ctx", defaults.n_ctx)
    return LoadSettings(_capped(n_ctx, info), chosen.get("n_threads", defaults.n_threads))


def is_chosen(info: ModelFile, prefs: Preferences | None) -> bool:
    """Whether values were chosen for this model (else config.toml's apply)."""
    return bool(prefs is not None and prefs.load_settings(info.file_name))


def _capped(n_ctx: int, info: ModelFile) -> int:
    return min(n_ctx, info.context_length) if info.context_length > 0 else n_ctx


def needs_reload(loaded_with: LoadSettings | None, wanted: LoadSettings) -> bool:
    """Whether a model loaded with `loaded_with` must load again to take `wanted` (None: not
    known, e.g. an engine that does not say)."""
    return loaded_with is not None and loaded_with != wanted


@dataclass(frozen=True)
class MemoryEstimate:
    """RAM a model needs at one context, and the verdict on this machine now."""

    needed: RamNeeded
    available: int
    verdict: str  # "fits" | "tight" | "does_not_fit" (llm.fit.ram_verdict)


def memory_at(info: ModelFile, n_ctx: int, *, freed: int = 0) -> MemoryEstimate:
    """The RAM `info` needs at `n_ctx` tokens (llm.fit: weights, KV cache, runtime) and whether
    it fits. `freed`: bytes the model loaded now gives back first (`held_by`)."""
    needed = ram_for_file(info, n_ctx)
    memory = psutil.virtual_memory()
    available = int(memory.available) + freed
    return MemoryEstimate(needed, available, ram_verdict(needed.total, available, memory.total))


def held_by(info: ModelFile, n_ctx: int) -> int:
    """What a loaded model gives back when it unloads: its KV cache and runtime (its weights
    are a memory-mapped file, which the system already counts as available)."""
    needed = ram_for_file(info, n_ctx)
    return needed.kv_cache + needed.overhead
