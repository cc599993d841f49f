"""`python -m llm models settings NAME [--ctx N] [--threads N] [--reset] [--json]`: the
context length and threads one model loads with (llm/load_settings.py), as the pages set them.

Without a flag it prints the model's settings, their bounds and the RAM the context needs;
`--ctx` / `--threads` choose values (checked against the model and this machine; a bad value
changes nothing), `--reset` goes back to config.toml's. Wired into `llm.cli`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .config import Config
from .gguf_file import human_size
from .load_settings import (
    check_load_settings,
    config_defaults,
    is_chosen,
    load_bounds,
    memory_at,
    settings_for,
)
from .model_files import read_model_file, resolve_model
from .preferences import Preferences


def add_parser(models: argparse.ArgumentParser) -> None:
    """Add `settings` under the `models` command (`models` alone still lists the folder)."""
    verbs = models.add_subparsers(dest="models_verb", required=False)
    settings = verbs.add_parser(
        "settings", help="show or set the context length and threads a model loads with"
    )
    settings.add_argument("model", metavar="NAME", help="file name in the models folder")
    settings.add_argument("--ctx", help="context length in tokens (256 to the model's own)")
    settings.add_argument("--threads", help="CPU threads (0: automatic, 1 to this machine's)")
    settings.add_argument(
        "--reset", action="store_true", help="forget the values chosen: config.toml's apply"
    )
    settings.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_settings(args: argparse.Namespace, config: Config) -> int:
    """Show, set or reset one model's load settings."""
    info = read_model_file(resolve_model(args.model, config.models_dir, allow_paths=False))
    prefs = Preferences.in_folder(config.data_dir)
    defaults = config_defaults(config)
    if args.reset:
        prefs.set_load_settings(info.file_name, None)
    elif args.ctx is not None or args.threads is not None:
        current = settings_for(info, defaults, prefs)
        chosen = check_load_settings(
            info,
            args.ctx if args.ctx is not None else current.n_ctx,
            args.threads if args.threads is not None else current.n_threads,
        )
        prefs.set_load_settings(info.file_name, chosen)
    settings = settings_for(info, defaults, prefs)
    bounds = load_bounds(info)
    memory = memory_at(info, settings.n_ctx)
    row: dict[str, Any] = {
        "model": info.file_name,
        "n_ctx": settings.n_ctx,
        "n_threads": settings.n_threads,
        "chosen": is_chosen(info, prefs),
        "bounds": {
            "n_ctx": [bounds.min_ctx, bounds.max_ctx],
            "n_threads": [1, bounds.max_threads],
            "auto_threads": bounds.auto_threads,
            "trained_ctx": bounds.trained_ctx,
        },
        "ram_bytes": memory.needed.total,
        "kv_cache_bytes": memory.needed.kv_cache,
        "fit": memory.verdict,
    }
    if args.json:
        print(json.dumps(row, indent=2))
        return 0
    where = "chosen for this model" if row["chosen"] else "config.toml's defaults"
    threads = (
        f"{settings.n_threads}"
        if settings.n_threads
        else f"0 (automatic: {bounds.auto_threads} physical cores)"
    )
    trained = f", trained on {bounds.trained_ctx:,}" if bounds.trained_ctx else ""
    print(
        f"{info.file_name} ({where})\n"
        f"  context: {settings.n_ctx:,} tokens "
        f"(from {bounds.min_ctx:,} to {bounds.max_ctx:,}{trained})\n"
        f"  threads: {threads} (0, or 1 to {bounds.max_threads})\n"
        f"  RAM at this context: about {human_size(memory.needed.total)} "
        f"({human_size(memory.needed.kv_cache)} of it context cache): "
        f"{memory.verdict.replace('_', ' ')}, {human_size(memory.available)} available\n"
        f"  applies the next time the model loads"
    )
    return 0
